"""Paths and markers shared by test modules (import from here, not from conftest)."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("V2S_SHARED_DIR", ROOT.parent / "shared"))
UCR_DIR = SHARED / "ucr"
AM_FILE = SHARED / "am" / "model-attRNN.h5"
SPEECH_DIR = SHARED / "speech"


def needs(path: Path):
    """Skip a test whose input from ../shared is absent (a clone without the workplace data)."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")
