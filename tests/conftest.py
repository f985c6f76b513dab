"""Shared test set-up: quiet single-process TensorFlow, paths to ../shared, one real AM per session."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import utils  # noqa: E402  (sets TF's environment before TensorFlow is imported)

utils.setup_tensorflow()

SHARED = Path(os.environ.get("V2S_SHARED_DIR", ROOT.parent / "shared"))
UCR_DIR = SHARED / "ucr"
AM_FILE = SHARED / "am" / "model-attRNN.h5"
SPEECH_DIR = SHARED / "speech"


def needs(path: Path):
    """Skip a test whose input from ../shared is absent (a clone without the workplace data)."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


@pytest.fixture(scope="session")
def original_v2sa():
    """The original pretrained V2Sa (de Andrade et al.) read from ../shared/am, built once."""
    if not AM_FILE.exists():
        pytest.skip(f"{AM_FILE} not present")
    import speech_models

    model, info = speech_models.load_am("v2sa", am_weights=str(AM_FILE))
    return model, info
