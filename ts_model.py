"""The V2S model: tile a series into 1 s of 16 kHz audio, add a trainable program, map labels.

    series (n, L) --tile_segments--> waveform (n, 16000) --ARTLayer (+ theta)--> frozen AM
        --> source probabilities (n, 36) --LabelMap (mean of each target's source classes)--> (n, K)

`--mod 0` skips the label map (one-to-one, the AM's 36-way output), `--mod 1` freezes the AM
(the paper's V2S), `--mod 2` fine-tunes the AM as well (the original code's default).

`--mod tfa` is the paper's TFa baseline (`build_tfa`): no program and no label map,

    series (n, L) --tile_segments (1 copy)--> waveform (n, 16000) --> trainable AM --> (n, 36)
        --> Dense(K, softmax) `tfa_head` --> (n, K)
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from settings import N_SOURCE
from utils import WAVE_LEN, V2SError, max_segments

TFA = "tfa"  # the --mod of the paper's TFa baseline
V2S_MODS = {"0": "one-to-one, AM frozen", "1": "many-to-one, AM frozen (V2S)", "2": "many-to-one, AM fine-tuned"}
MODS = {**V2S_MODS, TFA: "TFa baseline: no program, AM fine-tuned with a dense head"}


def segment_starts(length: int, segments: int, offset: int = 0) -> list[int]:
    """Sample offsets of the `segments` copies of a length-`length` series.

    The original's placement, shifted by `offset` zero samples: with `fit = (16000 - offset) // length`
    whole copies fitting after the offset and `seg_len = fit // segments`, copy s starts at
    `offset + s * seg_len * length` (L=500, m=3, offset 0: 0, 5000, 10000).
    """
    if length > WAVE_LEN:
        raise V2SError(f"series of length {length} exceed the AM's input of {WAVE_LEN} samples (1 s at 16 kHz)")
    if segments < 1:
        raise V2SError(f"--seg must be at least 1, got {segments}")
    if not 0 <= offset <= WAVE_LEN - length:
        raise V2SError(f"--offset {offset} leaves no room for a series of length {length} in {WAVE_LEN} samples")
    fit = max_segments(length, offset)
    if segments > fit:
        raise V2SError(
            f"--seg {segments} is too large: a series of length {length} fits at most {fit} times in "
            f"{WAVE_LEN - offset} samples"
        )
    step = (fit // segments) * length
    return [offset + s * step for s in range(segments)]


def tile_segments(x: np.ndarray, segments: int = 1, offset: int = 0) -> np.ndarray:
    """Place `segments` copies of each series in a zero waveform (see `segment_starts`).

    Args:
        x: series, shape (n, L), L <= 16000.
    Returns:
        float32 waveforms, shape (n, 16000), zero outside the copies.
    """
    n, length = x.shape
    out = np.zeros((n, WAVE_LEN), dtype=np.float32)
    for start in segment_starts(length, segments, offset):
        out[:, start : start + length] = x
    return out


def program_mask(length: int, segments: int = 1, offset: int = 0) -> np.ndarray:
    """The paper's mask M (eq. 1): 1 where the program may act, 0 where a series copy sits. Shape (16000,)."""
    mask = np.ones(WAVE_LEN, dtype=np.float32)
    for start in segment_starts(length, segments, offset):
        mask[start : start + length] = 0.0
    return mask


def label_mapping(n_classes: int, per_class: int, kind: str = "first", seed: int = 0) -> list[list[int]]:
    """Source classes assigned to each target class (many-to-one, non-overlapping).

    `first` (the original code): target t <- sources t*m .. t*m+m-1.
    `random` (the paper): a seeded random choice of K*m distinct sources, m per target.

    Returns:
        K lists of m source-class indices.
    """
    if per_class < 1:
        raise V2SError(f"--mapping must be at least 1, got {per_class}")
    needed = n_classes * per_class
    if needed > N_SOURCE:
        raise V2SError(
            f"--mapping {per_class} with {n_classes} classes needs {needed} source labels but the AM has "
            f"{N_SOURCE}: the maximum mapping number is {N_SOURCE // n_classes}"
        )
    if kind == "first":
        sources = np.arange(needed)
    elif kind == "random":
        sources = np.random.default_rng(seed).permutation(N_SOURCE)[:needed]
    else:
        raise V2SError(f"unknown --map-type {kind!r}: use first or random")
    return sources.reshape(n_classes, per_class).tolist()


def many_to_one(
    n_classes: int, per_class: int | None = None, kind: str = "first", seed: int = 0
) -> tuple[int, list[list[int]]]:
    """The many-to-one label map of a run: (source classes per target, the K groups of `label_mapping`).

    per_class None (or 0): the maximal map, floor(36 / K) sources per target (the paper's default).
    """
    per_class = per_class or N_SOURCE // n_classes
    return per_class, label_mapping(n_classes, per_class, kind, seed)


def mapping_matrix(groups: list[list[int]]) -> np.ndarray:
    """(36, K) matrix whose column t averages the source probabilities of target t's group."""
    matrix = np.zeros((N_SOURCE, len(groups)), dtype=np.float32)
    for target, sources in enumerate(groups):
        matrix[sources, target] = 1.0 / len(sources)
    return matrix


class MaskSpec(NamedTuple):
    """The recipe of the paper's mask M: `program_mask(length, segments, offset)` (saved instead of the
    16000 values)."""

    length: int
    segments: int
    offset: int

    def array(self) -> np.ndarray:
        return program_mask(self.length, self.segments, self.offset)


def _as_mask(mask) -> MaskSpec | np.ndarray | None:
    """None, a `MaskSpec` (also from its saved dict or a (length, segments, offset) triple), or an explicit
    (16000,) float32 array (saved configs before `MaskSpec` held the 16000 values)."""
    if mask is None or isinstance(mask, MaskSpec):
        return mask
    if isinstance(mask, dict):
        return MaskSpec(**mask)
    if len(mask) == len(MaskSpec._fields):
        return MaskSpec(*mask)
    values = np.asarray(mask, np.float32)
    if values.shape != (WAVE_LEN,):
        raise V2SError(f"a program mask has {WAVE_LEN} values (or is a MaskSpec), got shape {values.shape}")
    return values


@keras.saving.register_keras_serializable(package="v2s")
class ARTLayer(keras.layers.Layer):
    """Adds the trainable program theta to a waveform: x + M * dropout(theta).

    theta has 16000 values (stored as (16000, 1) like the original, glorot-uniform), an L2
    penalty `l2 * sum(theta**2)` and dropout on theta during training only. With a mask, theta
    is zero where the series copies sit (the paper's eq. 1; the original code built the mask
    but never applied it).

    Args:
        dropout: float, the dropout RATE on theta (training only); default 0.4.
        l2: float, the L2 weight on theta; default 0.04.
        mask: None (no mask), a `MaskSpec` (length, segments, offset), saved as those three numbers and
            rebuilt on load, or an explicit (16000,) array of 0/1 (saved as its values, as configs written
            before `MaskSpec` are, which still load).

    Input and output shape: (batch, 16000) samples at 16 kHz.
    """

    def __init__(self, dropout=0.4, l2=0.04, mask=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = float(dropout)
        self.l2 = float(l2)
        self.mask = _as_mask(mask)
        self.seed_generator = keras.random.SeedGenerator()

    def build(self, input_shape):
        self.theta = self.add_weight(
            name="theta",
            shape=(WAVE_LEN, 1),
            initializer="glorot_uniform",
            regularizer=keras.regularizers.L2(self.l2) if self.l2 else None,
        )
        values = self.mask.array() if isinstance(self.mask, MaskSpec) else self.mask
        self.mask_tensor = None if values is None else keras.ops.convert_to_tensor(values)

    def program(self, training=False):
        """The additive program M * dropout(theta), shape (16000,)."""
        theta = keras.ops.reshape(self.theta, (WAVE_LEN,))
        if training and self.dropout > 0:
            theta = keras.random.dropout(theta, self.dropout, seed=self.seed_generator)
        if self.mask_tensor is not None:
            theta = theta * self.mask_tensor
        return theta

    def call(self, x, training=False):
        return x + self.program(training)[None, :]

    def get_config(self):
        if isinstance(self.mask, MaskSpec):
            mask = self.mask._asdict()
        else:
            mask = None if self.mask is None else self.mask.tolist()
        return {**super().get_config(), "dropout": self.dropout, "l2": self.l2, "mask": mask}


@keras.saving.register_keras_serializable(package="v2s")
class LabelMap(keras.layers.Layer):
    """Many-to-one label map: target probability = mean of its source classes' probabilities.

    Args:
        groups: K lists of source-class indices (`label_mapping`).

    Input (batch, 36) source probabilities, output (batch, K), not renormalised (as the original).
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = [list(map(int, g)) for g in groups]
        self.matrix = keras.ops.convert_to_tensor(mapping_matrix(self.groups))

    def call(self, probs):
        return keras.ops.matmul(probs, self.matrix)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


def build_v2s(
    am,
    n_classes: int,
    groups: list[list[int]] | None,
    mod: str = "1",
    dropout: float = 0.4,
    l2: float = 0.04,
    mask: MaskSpec | np.ndarray | None = None,
):
    """Wrap a source AM (waveform (n, 16000) -> probabilities (n, 36)) into a V2S classifier.

    Args:
        am: the source acoustic model; mod 0/1 freeze it (BatchNorm in inference mode, weights
            unchanged by fit), mod 2 trains it too.
        groups: the label map (see `label_mapping`); ignored for mod 0.
        mod: "0" one-to-one (output (n, 36)), "1" V2S, "2" V2S with the AM fine-tuned.
        dropout, l2, mask: of the program layer (`ARTLayer`): rate, L2 weight, None / `MaskSpec` / array.
    Returns:
        an uncompiled Keras model: waveform (n, 16000) -> class probabilities (n, K) or (n, 36).
    """
    mod = str(mod)
    if mod not in V2S_MODS:
        raise V2SError(
            f"unknown --mod {mod}: use "
            + ", ".join(f"{k} ({v})" for k, v in V2S_MODS.items())
            + f"; --mod {TFA} is built by build_tfa"
        )
    am.trainable = mod == "2"
    waveform = keras.Input(shape=(WAVE_LEN,), name="waveform")
    reprogrammed = ARTLayer(dropout=dropout, l2=l2, mask=mask, name="art")(waveform)
    source_probs = am(reprogrammed)
    if mod == "0":
        return keras.Model(waveform, source_probs, name="v2s_one_to_one")
    target_probs = LabelMap(groups, name="label_map")(source_probs)
    return keras.Model(waveform, target_probs, name="v2s")


def build_tfa(am, n_classes: int):
    """The paper's TFa baseline: the source AM fine-tuned on zero-padded series, with an added dense layer.

    No program and no label map. The input is the series placed in the window as V2S places it
    (`tile_segments` with one copy and the run's offset). The added layer `tfa_head`,
    Dense(n_classes, softmax), sits on the AM's 36-way softmax output (the literal "added dense
    layer" of the paper), so the AM stays whole and its logits remain readable (`probes.am_logits`).

    Args:
        am: the source acoustic model, waveform (n, 16000) -> probabilities (n, 36). It is made
            trainable, all its layers, with BatchNorm in batch-statistics mode during fit (as `--mod 2`).
        n_classes: K, the target classes.
    Returns:
        an uncompiled Keras model `tfa`: waveform (n, 16000) -> class probabilities (n, K).
    """
    am.trainable = True
    waveform = keras.Input(shape=(WAVE_LEN,), name="waveform")
    source_probs = am(waveform)
    target_probs = keras.layers.Dense(n_classes, activation="softmax", name="tfa_head")(source_probs)
    return keras.Model(waveform, target_probs, name=TFA)
