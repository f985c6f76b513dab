"""Shared test set-up: the project on sys.path, quiet TensorFlow set up before any test imports it, and the
fixtures. Helpers (paths, tiny AMs, toy data) are in helpers.py."""

import sys

import pytest
from helpers import AM_FILE, ROOT, SHARED, SPEECH_DIR, UCR_DIR, needs  # noqa: F401  (also re-exported)

sys.path.insert(0, str(ROOT))

import utils  # noqa: E402  (sets TF's environment before TensorFlow is imported)

utils.setup_tensorflow()

from helpers import make_tiny_am  # noqa: E402


@pytest.fixture(scope="session")
def original_v2sa():
    """The original pretrained V2Sa (de Andrade et al.) read from ../shared/am, built once."""
    if not AM_FILE.exists():
        pytest.skip(f"{AM_FILE} not present")
    import am_weights

    model, info = am_weights.load_am("v2sa", am_weights=str(AM_FILE))
    return model, info


@pytest.fixture
def tiny_am():
    return make_tiny_am()
