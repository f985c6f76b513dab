"""Shared test set-up: quiet single-process TensorFlow, paths to ../shared, one real AM per session."""

import sys

import pytest
from helpers import AM_FILE, ROOT, SHARED, SPEECH_DIR, UCR_DIR, needs  # noqa: F401  (also re-exported)

sys.path.insert(0, str(ROOT))

import utils  # noqa: E402  (sets TF's environment before TensorFlow is imported)

utils.setup_tensorflow()


@pytest.fixture(scope="session")
def original_v2sa():
    """The original pretrained V2Sa (de Andrade et al.) read from ../shared/am, built once."""
    if not AM_FILE.exists():
        pytest.skip(f"{AM_FILE} not present")
    import speech_models

    model, info = speech_models.load_am("v2sa", am_weights=str(AM_FILE))
    return model, info


def make_tiny_am(seed: int = 0):
    """A small randomly initialised stand-in AM with the real interface and a BatchNorm layer.

    waveform (n, 16000) -> strided conv -> BatchNorm -> pooled -> softmax (n, 36).
    """
    import keras

    keras.utils.set_random_seed(seed)
    wave = keras.Input(shape=(16000,))
    x = keras.layers.Reshape((16000, 1))(wave)
    x = keras.layers.Conv1D(8, 400, strides=160, activation="relu", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(36, activation="softmax", name="output")(x)
    return keras.Model(wave, out, name="tiny_am")


TINY_AM_INFO = {"name": "tiny_am", "path": None, "sha256": None, "source": "test", "original": False}


@pytest.fixture
def tiny_am():
    return make_tiny_am()
