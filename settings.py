"""The numbers every module shares, and the setting of one program (`ProgramSetting`).

One source of truth: the CLI (`v2s_main.py`), a run's config (`training.V2SConfig`), the program stacks
(`multi_program`, `reproduce.py`, `fidelity.py`) and the interpretation tools read their defaults here.
Pure Python: importing it starts no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Where a series sits in the AM's 1 s window: zero samples before its first copy. The original's AM saw the
# series shifted by 448 samples (its kapre-0.1 STFT padded 448 on the left, 'same'); today's weights expect
# no padding, so at 0 the series falls on the edge of the first Hann window (docs/differences.md).
DEFAULT_OFFSET = 448

# The AMs' STFT front end (speech_models): 1 s at 16 kHz -> 125 frames x 80 mel bins.
N_FFT = 1024  # samples per STFT frame (64 ms at 16 kHz)
HOP = 128  # samples between frames (8 ms)
N_FRAMES = 125  # STFT frames for 16000 samples with end padding
N_MELS = 80  # mel bins

# The precision of the fast path's large products (fast_am: mel matrix, V2Sa's convolutions, the LSTMs' input
# projections): "fp32", or "bf16" (bfloat16 operands and products, cast back to float32; recurrences,
# element-wise maths, theta and the optimiser stay float32). Opt-in: docs/performance.md (bf16 comparison).
PRECISIONS = ("fp32", "bf16")
DEFAULT_PRECISION = "fp32"

# The source AMs by `--net` value (`validation.net_name`: value -> name); the mel ones have the fast path.
NETS = {
    "0": "v2sa",
    "v2sa": "v2sa",
    "3": "v2su",
    "v2su": "v2su",
    "5": "cnn1d",
    "cnn1d": "cnn1d",
    "6": "cnn1d_small",
    "cnn1d_small": "cnn1d_small",
}
UNAVAILABLE_NETS = {"1": "VGGish with a dense head", "2": "VGGish AudioSet"}  # the original's, not here
MEL_NETS = ("v2sa", "v2su")

N_SOURCE = 36  # output classes of every source acoustic model (speech_models.SOURCE_CLASSES)

DEFAULT_DR = 4  # the CLI's --dr: program dropout in tenths (the original code's unit)
DEFAULT_L2 = 0.04  # L2 weight on theta (the paper; the original code used 0.05)
DEFAULT_LR = 0.05  # Adam's initial learning rate (the original's)
DEFAULT_LR_DECAY = 0.48  # lr_t = lr / (1 + decay * step), the original Adam `decay`
DEFAULT_BATCH = 32  # series per training step
ORIGINAL_BATCH = 32  # the original code's fit batch, which Keras also scored its validation_data (TEST) at


def dropout_rate(dr: float) -> float:
    """The dropout rate on theta of the CLI's `--dr` (tenths): 4 -> 0.4. The one place `dr` is converted."""
    return round(float(dr) * 0.1, 6)


@dataclass(frozen=True)
class ProgramSetting:
    """What decides one program besides the data and the optimiser.

    seed: theta's initialisation and (in a stack) the program's shuffling.
    dropout: dropout RATE on theta while training (0.4, i.e. `--dr 4`).
    seg: copies of the series tiled into the 16000-sample window (`ts_model.tile_segments`).
    offset: zero samples before the first copy (`DEFAULT_OFFSET`).
    groups: the label map, K lists of source classes; None: the maximal many-to-one map, "first" kind
        (`ts_model.many_to_one`), resolved once K is known.
    mask: apply the paper's mask M (theta zero where the series sits).
    l2: L2 weight on theta.
    """

    seed: int = 0
    dropout: float = dropout_rate(DEFAULT_DR)
    seg: int = 1
    offset: int = DEFAULT_OFFSET
    groups: list[list[int]] | None = None
    mask: bool = False
    l2: float = DEFAULT_L2

    @classmethod
    def from_dict(cls, values: dict) -> ProgramSetting:
        """A setting from a dict with (some of) the field names; the others take their defaults.

        Raises:
            ValueError: a key that is not a field (a typo would otherwise silently keep a default).
        """
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(
                f"unknown program setting keys {unknown}: the fields are "
                + ", ".join(f.name for f in dataclasses.fields(cls))
            )
        return cls(**values)

    def as_dict(self) -> dict:
        """The fields as a plain dict (for records)."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> ProgramSetting:
        return dataclasses.replace(self, **changes)
