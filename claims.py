"""Claims on the runs of a sweep, so that sweeps sharing an output folder never train one run twice.

A claim on a run is a lock file `<folder>/<run>.lock` holding the claimer's host, pid, process start
time and the runs claimed with it (JSON). It is created atomically and complete: written to a temporary
file, then hard-linked to its name, which fails if the name exists (`os.link`, the O_EXCL of a file
with contents). A stack of runs is claimed as a whole or not at all, and released when its records are
written (or its failure is recorded).

A lock whose process is gone (same host; the pid is dead, a zombie, or reused by a later process) is
stale: its claimer was killed, perhaps while writing the stack's records, so `stale()` lists such runs
for the sweep to train again as one stack, and `claim()` takes the lock over. Checks and takeovers are
made while holding `fcntl.flock` on `<folder>/.claims.flock` (released by the kernel when its holder
dies), so two processes cannot both take over one stale lock. A lock from another host is never
judged stale from here.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: fresh locks are still exclusive (os.link); takeovers are not serialised
    fcntl = None

HOST = socket.gethostname()


class Held(Exception):
    """The runs are claimed by a live process; `str()` says which."""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields[19]  # a zombie has exited: no start time


def _alive(owner: dict) -> bool:
    if owner.get("host") != HOST:
        return True  # cannot tell from here
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    started = _start_time(pid)
    if started is None:
        return not Path("/proc/self/stat").exists()  # with /proc: a zombie; without: trust the pid
    return owner.get("started") in (None, started)  # another start time: the pid was reused


def _read(path: Path) -> dict | None:
    """The owner recorded in a lock file; {} if unreadable (an old or foreign file); None if absent."""
    try:
        owner = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def describe(owner: dict) -> str:
    return f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}"


@contextmanager
def _serialised(folder: Path):
    if fcntl is None:
        yield
        return
    fd = os.open(folder / ".claims.flock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class Claim:
    """Locks on `names` held by this process; `took_over`: those whose stale lock (a killed claimer) it replaced.
    Use as a context manager, or call `release()`."""

    def __init__(self, folder: Path, names: list[str], owner: dict, took_over: list[str]):
        self.folder, self.names, self.owner, self.took_over = folder, names, owner, took_over

    def release(self) -> None:
        for name in self.names:
            path = self.folder / f"{name}.lock"
            if _read(path) == self.owner:  # never remove a lock this process does not hold
                path.unlink(missing_ok=True)
        self.names = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def claim(folder, names: list[str]) -> Claim:
    """Claim every run of `names` (a stack) for this process, or none.

    Raises:
        Held: a live process (or one on another host) holds a lock on one of them.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    owner = {"host": HOST, "pid": os.getpid(), "started": _start_time(os.getpid()), "runs": list(names)}
    took_over, made = [], []
    with _serialised(folder):
        for name in names:
            current = _read(folder / f"{name}.lock")
            if current is not None and (_alive(current) if current else _young(folder / f"{name}.lock")):
                raise Held(f"{name} is claimed by {describe(current)}")
        try:
            for name in names:
                path = folder / f"{name}.lock"
                if _read(path) is not None:
                    path.unlink(missing_ok=True)  # stale (checked above, under the flock)
                    took_over.append(name)
                _create(path, owner)
                made.append(name)
        except FileExistsError:  # only without flock: another process claimed it between the check and now
            Claim(folder, made, owner, []).release()
            raise Held(f"{name} was claimed meanwhile by {describe(_read(folder / f'{name}.lock') or {})}") from None
        except BaseException:
            Claim(folder, made, owner, []).release()
            raise
    return Claim(folder, list(names), owner, took_over)


def _young(path: Path, seconds: float = 600.0) -> bool:
    """An unreadable lock counts as held for `seconds` after it was last written, then as stale."""
    try:
        return time.time() - path.stat().st_mtime < seconds
    except FileNotFoundError:
        return False


def _create(path: Path, owner: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(owner, fh)
        os.link(tmp, path)  # FileExistsError if someone holds it: refuses, never overwrites
    finally:
        os.unlink(tmp)


def stale(folder, names: list[str]) -> list[str]:
    """The runs of `names` whose lock was left by a process that is gone (see the module docstring)."""
    folder = Path(folder)
    out = []
    for name in names:
        owner = _read(folder / f"{name}.lock")
        if owner is not None and not (_alive(owner) if owner else _young(folder / f"{name}.lock")):
            out.append(name)
    return out
