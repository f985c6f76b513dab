"""A kill at any moment loses nothing: atomic writers, a killed v2s_main.py, killed and concurrent sweeps.

The processes here are really killed (SIGKILL, which no handler can catch) while they run.
"""

import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT

import utils


def killed_while_writing(tmp_path, writer: str, patch: str) -> subprocess.CompletedProcess:
    """Run `writer` (Python using utils) in a child whose `patch` makes it SIGKILL itself mid-write."""
    code = "\n".join([
        "import os, signal, sys",
        f"sys.path.insert(0, {str(ROOT)!r})",
        "import utils",
        "def die(*args, **kwargs):",
        "    os.kill(os.getpid(), signal.SIGKILL)",
        patch,
        writer,
    ])
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)


def visible(folder):
    """Files a reader would take for outputs: everything but hidden names."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("writer, patch", [
    # killed after half the bytes are written
    ("utils.atomic_write_json('out/run.json', {'new': 1})",
     "real = os.fdopen\n"
     "class Half:\n"
     "    def __init__(self, fh): self.fh = fh\n"
     "    def __enter__(self): return self\n"
     "    def __exit__(self, *a): pass\n"
     "    def fileno(self): return self.fh.fileno()\n"
     "    def write(self, data): self.fh.write(data[:len(data) // 2]); self.fh.flush(); die()\n"
     "os.fdopen = lambda fd, mode: Half(real(fd, mode))"),
    # killed with the temporary file complete, before the rename
    ("utils.atomic_write_json('out/run.json', {'new': 1})", "os.replace = die"),
    # a saver (Keras, matplotlib) killed after writing part of its file
    ("utils.atomic_save('out/run.json', lambda tmp: (open(tmp, 'w').write('{\"ne'), die()))", ""),
    ("utils.atomic_save('out/run.json', lambda tmp: open(tmp, 'w').write('{\"new\": 1}'))", "os.replace = die"),
], ids=["json-killed-mid-write", "json-killed-before-rename", "saver-killed-mid-save", "saver-killed-before-rename"])
def test_a_writer_killed_mid_write_leaves_the_old_file_and_no_stray_output(tmp_path, writer, patch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text('{"old": 1}')
    result = killed_while_writing(tmp_path, writer, patch)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert visible(out) == ["run.json"] and (out / "run.json").read_text() == '{"old": 1}'
    assert all(name.endswith(".tmp") for name in leftovers(out))  # hidden, never matched by *.json / *.weights.h5


def test_atomic_writes_leave_nothing_but_the_file_with_the_usual_permissions(tmp_path):
    utils.atomic_write_json(tmp_path / "a" / "run.json", {"x": 1})
    utils.atomic_save(tmp_path / "a" / "run.weights.h5", lambda tmp: open(tmp, "wb").write(b"h5"))
    with pytest.raises(ZeroDivisionError):
        utils.atomic_save(tmp_path / "a" / "fig.png", lambda tmp: (open(tmp, "wb").write(b"x"), 1 / 0))
    assert sorted(os.listdir(tmp_path / "a")) == ["run.json", "run.weights.h5"]
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("run.json", "run.weights.h5"):
        assert (tmp_path / "a" / name).stat().st_mode & 0o777 == 0o666 & ~umask
