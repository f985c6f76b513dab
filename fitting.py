"""What every V2S training path shares: the optimiser and the rule that chooses the epoch.

`training` (one run through Keras' `fit`) and `multi_program` (a stack of programs) both use them, so a
single run and a program of a stack are trained and chosen the same way.
"""

from __future__ import annotations

import keras

# The direction of each quantity an epoch can be chosen on: validation cross-entropy (the honest default)
# and TEST accuracy (--select-on-test, the original code's optimistic protocol).
MODES = {"val_ce": "min", "test_accuracy": "max"}


def make_optimizer(lr: float, lr_decay: float) -> keras.optimizers.Optimizer:
    """Adam with lr / (1 + lr_decay * step) (the original's legacy Adam `decay`; a constant lr when
    lr_decay is 0). One step is one mini-batch."""
    schedule = keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate=lr_decay)
    return keras.optimizers.Adam(schedule if lr_decay else lr)


def monitor_mode(monitor: str | None, mode: str | None = None) -> str | None:
    """The direction ("min" or "max") to choose `monitor` in: `mode` if given, else `MODES[monitor]`;
    None without a monitor (the last epoch is kept).

    Raises:
        ValueError: an unknown mode, or a monitor not in `MODES` without a mode.
    """
    if mode is not None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        return mode
    if monitor is None:
        return None
    if monitor not in MODES:
        raise ValueError(f"no direction known for monitor {monitor!r}: pass mode='min' or mode='max'")
    return MODES[monitor]


def is_better(value: float, best: float | None, mode: str) -> bool:
    """True if `value` beats the best so far (`best` None: nothing yet) in direction `mode` ("min"/"max").
    Ties keep the earlier epoch."""
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if best is None:
        return True
    return value < best if mode == "min" else value > best
