"""Helpers shared by every v2s script: TensorFlow set-up, user-facing errors, atomic writes, the window's
size and the version stamp of run records.

Import this module before TensorFlow: `setup_tensorflow()` must set the environment
variables that TensorFlow reads when it is first imported.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
SAMPLE_RATE = 16000  # Hz; every acoustic model takes 1 s of audio
WAVE_LEN = 16000  # samples in the reprogrammed waveform


def max_segments(length: int, offset: int = 0) -> int:
    """How many whole copies of a length-`length` series fit in the 16000-sample window after `offset`
    zero samples: the largest m (`--seg`) that `ts_model.segment_starts` accepts."""
    return (WAVE_LEN - offset) // length


class V2SError(Exception):
    """An error caused by the user's input or environment.

    Scripts print its message as one line on stderr and exit non-zero, without a traceback.
    """


def setup_tensorflow(seed: int | None = None, deterministic: bool = False, threads: int | None = None):
    """Quiet TensorFlow's logs, set its thread pools and (optionally) seed every generator.

    Call before building any model. oneDNN stays on (TF's default, ~1.5x faster here);
    `TF_ENABLE_ONEDNN_OPTS=0` in the environment switches it off.

    Args:
        seed: seeds Python, NumPy and TensorFlow (`keras.utils.set_random_seed`).
        deterministic: also ask TensorFlow for deterministic kernels.
        threads: intra-op threads (default: `V2S_THREADS` or all cores). Inter-op: 2 unless
            `TF_NUM_INTEROP_THREADS` says otherwise — measured (docs/performance.md), 2 let independent
            recurrences (the two LSTM directions) run at once: the fast single path ~1.1x, a stack of
            programs ~1.3x faster than with 1.

    Returns:
        the imported `tensorflow` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # errors surface as Python exceptions
    threads = threads or int(os.environ.get("V2S_THREADS", "0")) or os.cpu_count() or 1
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["TF_NUM_INTRAOP_THREADS"]))
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["TF_NUM_INTEROP_THREADS"]))
    except RuntimeError:
        pass  # the runtime is already initialised: the thread pools are fixed for this process
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return tf


@contextlib.contextmanager
def frozen_heap():
    """Keep the objects alive now (the built models, TensorFlow's traced graphs: ~430,000 objects for one
    V2S run) out of the garbage collector's scans while the block runs, and give them back after it.

    A full collection over them takes ~0.3 s on these cores and recurs during `fit`; frozen, a 6-step
    `fit` call took 482 instead of 625 ms (median, interleaved in one process; docs/performance.md).
    Objects freed by reference counting are freed as usual, and cycles made inside the block are
    collected; only cycles among the objects frozen at entry wait until the block ends. Not for nesting:
    the inner block's end would thaw the outer one's objects.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_cli(main) -> None:
    """Run `main()`; turn a `V2SError` into one line on stderr and exit status 2."""
    try:
        status = main()
    except V2SError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)


def one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, without Keras's dump of variable values, at most `limit` chars."""
    text = " ".join(str(err).split()).split(" Target variable:")[0] or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def _umask_mode() -> int:
    """The mode a plain `open(path, "w")` gives a new file: 0o666 less the process's umask (read once)."""
    try:  # Linux: read it without changing it (os.umask sets it, racing other threads' file creation)
        text = Path("/proc/self/status").read_text()
        mask = int(next(line.split()[1] for line in text.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A process killed at any moment leaves either the old file or the new one under `path`, never a
    part; at most a hidden `.<name>.<random>.tmp` beside it, which no reader mistakes for an output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), _umask_mode())  # mkstemp's 0600 would make outputs private
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, record: dict) -> None:
    """Write `record` as indented JSON, atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, (json.dumps(record, indent=2, default=_json_default) + "\n").encode())


def atomic_save(path: str | os.PathLike, save) -> None:
    """Call `save(tmp_path)`, then rename `tmp_path` to `path` (for writers that need the file name's
    suffix, e.g. Keras' `.weights.h5` and `.keras`, or matplotlib).

    `tmp_path` has `path`'s name inside a hidden folder `.<name>.<random>.tmp` beside `path`, so a
    process killed while saving leaves no partial file under `path` and no stray file with `path`'s
    suffix beside it (a glob for `*.weights.h5` or `*.png` in the folder does not see it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    tmp = folder / path.name
    try:
        save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        folder.rmdir()


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def versions() -> dict:
    """Versions of Python, the platform and the libraries that decide a run's numbers."""
    from importlib import metadata

    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in ("tensorflow", "keras", "kapre", "numpy", "scipy", "h5py", "scikit-learn", "pyts", "POT"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")
    found["v2s_commit"] = code_commit()
    return found


@functools.lru_cache(maxsize=1)
def code_commit() -> str | None:
    """The git commit of the code that is running (with "+changes" if the work tree differs from it), or
    None outside a git checkout: every record says which code produced it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "*.py"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+changes" if dirty else "")
