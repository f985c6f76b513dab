"""One style for the whole tree: `ruff check` and `ruff format --check` pass (settings in pyproject.toml)."""

import shutil
import subprocess
import sys

import pytest
from helpers import ROOT


def ruff(*args):
    return subprocess.run([sys.executable, "-m", "ruff", *args, str(ROOT)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def needs_ruff():
    if shutil.which("ruff") is None and ruff("--version").returncode != 0:
        pytest.skip("ruff is not installed (pip install -r requirements-dev.txt)")


def test_the_linter_finds_nothing():
    result = ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted():
    result = ruff("format", "--check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
