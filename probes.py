"""Probes of a source AM and of a V2S model, shared by training, the sweep and the interpretation tools.

- the AM inside a V2S model (`find_am`), its conv layers (`conv_layers`, `probe`) and its exact
  pre-softmax logits (`am_logits`);
- the trained program (`program_of`) and the reprogrammed waveform (`reprogram`);
- a seeded sample of source speech (`speech_sample`) and of target series (`subset_indices`, `subsample`);
- the metrics of the paper's Sec. 4: the AM's loss on source speech (`source_loss`) and the sliced
  Wasserstein distance between its logits on source speech and on reprogrammed series (`swd`, built on
  `sliced_wasserstein_distance`).

Keras, the AMs and speech clips (speech_data) and POT are imported when a probe runs, so a script can import this
module before `utils.setup_tensorflow()`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from settings import N_SOURCE
from utils import PROJECT_DIR, V2SError

DEFAULT_SPEECH_DIR = PROJECT_DIR.parent / "shared" / "speech" / "gsc"
N_SPEECH = 400  # source speech clips drawn (seeded) for the SWD and the source loss
N_TARGET_SERIES = 1000  # at most this many target series (a seeded sample) for the SWD
N_PROJECTIONS = 1000  # random directions of the sliced distance (the paper: 1,000)


# ----------------------------------------------------------------------------------------------
# The AM and the program


def find_am(model):
    """The source AM inside a V2S model (its nested Keras Model), or `model` itself if it is a bare AM.

    A bare AM is recognised by a layer named `output` (the 36-way softmax).
    """
    import keras

    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if nested:
        return nested[0]
    if any(layer.name == "output" for layer in model.layers):
        return model
    raise V2SError(f"model {model.name!r} holds no acoustic model (no nested model, no layer named 'output')")


def conv_layers(am) -> list[str]:
    """Names of the AM's layers with a 4-D (batch, frames, mel bins, channels) output after the front end."""
    names, seen_front_end = [], False
    for layer in am.layers:
        if layer.name == "mel_stft":
            seen_front_end = True
            continue
        if seen_front_end and len(layer.output.shape) == 4:
            names.append(layer.name)
    return names


def probe(am, names: list[str]):
    """A functional model on `am`: waveform (n, 16000) -> [outputs of the named layers..., softmax (n, 36)].

    Raises:
        V2SError: a layer name that the AM does not have (the message lists the conv layers).
    """
    import keras

    outputs = []
    for name in names:
        try:
            outputs.append(am.get_layer(name).output)
        except ValueError:
            raise V2SError(
                f"the AM {am.name!r} has no layer {name!r}; its conv layers are: " + ", ".join(conv_layers(am))
            ) from None
    return keras.Model(am.input, outputs + [am.output], name=f"{am.name}_probe")


def _logit_head(am):
    """(model giving the input of the final layer, kernel, bias), or (model giving logits, None, None)."""
    import keras

    try:
        last = am.get_layer("output")
    except ValueError:
        last = am.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    if activation == "softmax" and hasattr(last, "kernel"):
        features = keras.Model(am.input, last.input, name=f"{am.name}_penultimate")
        bias = last.bias.numpy() if getattr(last, "use_bias", False) else 0.0
        return features, last.kernel.numpy(), bias
    if activation == "linear":
        return keras.Model(am.input, last.output), None, None
    raise V2SError(f"cannot find the logits of {am.name!r}: its final layer {last.name!r} is not a Dense softmax")


def am_logits(am, waveforms: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """The AM's pre-softmax scores (logits) over the 36 source classes.

    Exact: the final layer `output` is Dense(36, softmax), so logits = penultimate @ kernel + bias
    (softmax(logits) equals the AM's output).

    Args:
        waveforms: (n, 16000) float32 samples at 16 kHz (already reprogrammed if wanted).
    Returns:
        float32 (n, 36) logits.
    """
    features, kernel, bias = _logit_head(am)
    waveforms = np.asarray(waveforms, np.float32)
    out = []
    for start in range(0, len(waveforms), batch_size):
        h = np.asarray(features(waveforms[start : start + batch_size], training=False))
        out.append(h if kernel is None else h @ kernel + bias)
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, N_SOURCE), np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, c) logits (numpy; max-shifted)."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def program_of(model) -> np.ndarray:
    """The trained additive program of a V2S model (layer `art`, mask applied), (16000,) samples."""
    try:
        art = model.get_layer("art")
    except ValueError:
        raise V2SError(f"model {model.name!r} has no program layer 'art': not a V2S model") from None
    return np.asarray(art.program(training=False), np.float32)


def reprogram(model, tiled: np.ndarray) -> np.ndarray:
    """Tiled series (n, 16000) -> the waveform the AM sees, series + program, (n, 16000) at 16 kHz."""
    return np.asarray(tiled, np.float32) + program_of(model)[None, :]


# ----------------------------------------------------------------------------------------------
# Seeded samples


def default_speech_dir() -> Path | None:
    """$V2S_SPEECH_DIR, else ../shared/speech/gsc if present, else None."""
    env = os.environ.get("V2S_SPEECH_DIR")
    if env:
        return Path(env)
    return DEFAULT_SPEECH_DIR if DEFAULT_SPEECH_DIR.is_dir() else None


def speech_sample(folder=None, n: int = N_SPEECH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random sample of clips from a Speech-Commands-layout folder (`<word>/*.wav`).

    Args:
        folder: default `default_speech_dir()`.
        n: clips to draw (all if the folder holds fewer; 0 = all; then in a seeded random order).
    Returns:
        waveforms float32 (n, 16000) at 16 kHz and their source class indices (n,).
    Raises:
        V2SError: no folder given and none found, or the folder holds no clip.
    """
    import speech_data

    folder = folder or default_speech_dir()
    if folder is None:
        raise V2SError(
            "no source speech folder: pass --speech-dir (a Speech-Commands-layout folder, <word>/*.wav) "
            "or set V2S_SPEECH_DIR"
        )
    clips, _ = speech_data.scan_folder(folder)
    order = np.random.default_rng(seed).permutation(len(clips))
    if n and n < len(clips):
        order = np.sort(order[:n])
    waves = np.stack([speech_data.read_clip(clips[i][0]) for i in order])
    return waves, np.array([clips[i][1] for i in order])


def subset_indices(count: int, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a seeded random sample of `n` of `count` items; all of them, in order, if `n` is 0
    or at least `count`."""
    if not n or count <= n:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).permutation(count)[:n])


def subsample(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """At most `n` rows of `x`, a seeded sample kept in order (`subset_indices`)."""
    return x[subset_indices(len(x), n, seed)]


# ----------------------------------------------------------------------------------------------
# Source loss and the sliced Wasserstein distance (the paper's Sec. 4, Fig. 3, Table 3)


def source_loss(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy of (n, 36) softmax outputs against source classes (n,)."""
    probs = np.clip(np.asarray(probs, np.float64), 1e-12, 1.0)
    picked = probs[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(picked))), float(np.mean(np.argmax(probs, axis=1) == labels))


def speech_logits(am, waves: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The AM on source speech: its logits (n, 36), and its source loss and accuracy (`source_loss`)."""
    logits = am_logits(am, waves)
    return (logits, *source_loss(softmax(logits), labels))


def sliced_wasserstein_distance(a, b, n_projections: int = N_PROJECTIONS, seed: int = 0, p: int = 2) -> float:
    """Sliced Wasserstein-p distance between two samples, each point weighted equally (POT).

    The paper's empirical stand-in for W1 in Theorem 1 (Sec. 4, Table 3): both samples are
    projected on `n_projections` random unit directions (drawn with `seed`, so the value is
    repeatable) and the 1-D Wasserstein-p distances are averaged: (mean_k W_p^p)^(1/p).

    Args:
        a: (n, d) array, e.g. the AM's logits (36 source classes) on n source clips.
        b: (m, d) array in the same d-dimensional space (m need not equal n).
        n_projections: random directions (the paper used 1,000).
        seed: seed of the directions.
        p: order of the distance (2: the sliced Wasserstein-2 distance of Kolouri et al. 2018).

    Returns:
        the distance, in the units of the samples (logit units for logits). A translation by a
        vector v gives |v| / sqrt(d) for p = 2 (exactly |v| in one dimension).
    """
    import ot

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise V2SError(
            f"sliced Wasserstein distance needs two (n, d) samples of the same d, got {a.shape} and {b.shape}"
        )
    if len(a) == 0 or len(b) == 0:
        raise V2SError("sliced Wasserstein distance of an empty sample")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise V2SError("sliced Wasserstein distance: the samples hold NaN or infinite values")
    return float(ot.sliced_wasserstein_distance(a, b, n_projections=n_projections, p=p, seed=seed))


def swd(
    am,
    source_logits: np.ndarray,
    tiled: np.ndarray,
    program: np.ndarray,
    n_projections: int = N_PROJECTIONS,
    seed: int = 0,
) -> float:
    """The sliced Wasserstein-2 distance between the AM's logits on source speech and on reprogrammed series.

    Args:
        am: the source AM (`find_am` of a V2S model).
        source_logits: (n, 36) the AM's logits on source speech (`speech_logits`; computed once by callers).
        tiled: (m, 16000) target series tiled into the window as the program was trained.
        program: (16000,) the additive program (`program_of`, or a row of a program stack).
    Returns:
        SWD(source logits, am_logits(tiled + program)) in logit units, `n_projections` directions from `seed`.
    """
    target = am_logits(am, np.asarray(tiled, np.float32) + np.asarray(program, np.float32)[None, :])
    return sliced_wasserstein_distance(source_logits, target, n_projections, seed)
