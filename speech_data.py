"""Speech-Commands-layout folders: reading WAV clips and scoring an AM on them.

A folder holds <word>/*.wav for the 35 words of `speech_models.SOURCE_CLASSES` and _unknown_/*.wav
(class 0). Clips are float32 samples in [-1, 1] at 16 kHz; `read_clip` makes them 1 s (16000 samples),
the input of every AM. Scores: `accuracy_36` over all clips, `accuracy_core10` over the clips of the 10
`speech_models.CORE_WORDS` (fractions in [0, 1]).

Import `utils` and call `utils.setup_tensorflow()` before importing this module (it imports
`speech_models`, which imports TensorFlow).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from speech_models import CORE_WORDS, SOURCE_CLASSES
from utils import SAMPLE_RATE, WAVE_LEN, V2SError, one_line


def read_wav(path: str | os.PathLike) -> np.ndarray:
    """A whole WAV file as float32 samples in [-1, 1] at 16 kHz, (n,).

    Other rates are resampled (`scipy.signal.resample_poly`); several channels are averaged.
    """
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as err:
        raise V2SError(f"{path}: not a readable WAV file ({one_line(err)})") from None
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        samples = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    else:
        samples = data.astype(np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = math.gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return samples


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """A WAV clip as `read_wav` reads it, cut or zero-padded at the end to 16000 samples (1 s)."""
    samples = read_wav(path)
    clip = np.zeros(WAVE_LEN, np.float32)
    clip[: min(len(samples), WAVE_LEN)] = samples[:WAVE_LEN]
    return clip


def scan_folder(folder: str | os.PathLike) -> tuple[list[tuple[Path, int]], list[str]]:
    """The clips of a Speech-Commands-layout folder and the entries it skips.

    Reads folder/<word>/*.wav for the 35 words of `SOURCE_CLASSES` and folder/_unknown_/*.wav (class 0).

    Returns:
        [(wav path, class index)] sorted by class then name, and the names of other top-level entries.

    Raises:
        V2SError: the folder does not exist or holds no clip.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise V2SError(f"{folder}: no such directory")
    clips, skipped = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.name in SOURCE_CLASSES:
            label = SOURCE_CLASSES.index(entry.name)
            clips += [(wav, label) for wav in sorted(entry.glob("*.wav"))]
        else:
            skipped.append(entry.name)
    if not clips:
        raise V2SError(f"{folder}: no .wav clips in <word>/ folders named after the 36 source classes")
    clips.sort(key=lambda item: item[1])
    return clips, skipped


def predict_clips(model, paths, batch_size: int = 64) -> np.ndarray:
    """Argmax class of `model` on each WAV clip of `paths` (read with `read_clip`), int (n_clips,)."""
    from tqdm import tqdm

    predicted = np.empty(len(paths), dtype=int)
    with tqdm(total=len(paths), unit="clip", desc="scoring", disable=None, file=sys.stderr) as bar:
        for start in range(0, len(paths), batch_size):
            batch = np.stack([read_clip(path) for path in paths[start : start + batch_size]])
            predicted[start : start + len(batch)] = np.argmax(model.predict_on_batch(batch), axis=1)
            bar.update(len(batch))
    return predicted


def accuracies(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """accuracy_36 (all clips), accuracy_core10 and n_core10 (clips of the 10 `CORE_WORDS`; nan if none)."""
    right = predicted == labels
    core = np.isin(labels, [SOURCE_CLASSES.index(word) for word in CORE_WORDS])
    return {
        "accuracy_36": float(right.mean()),
        "accuracy_core10": float(right[core].mean()) if core.any() else float("nan"),
        "n_core10": int(core.sum()),
    }


def predict_folder(model, folder, batch_size=64) -> dict:
    """Score an AM on a Speech-Commands-layout folder (see `scan_folder`).

    Returns a dict with
        labels, predicted: int arrays (n_clips,), true and argmax class indices;
        per_class: {class name: {"n": clips, "correct": right 36-way}} for classes with clips;
        skipped: top-level entries that are not class folders;
        accuracy_36: fraction right over all clips;
        accuracy_core10, n_core10: the same over clips of the 10 `CORE_WORDS` folders (nan if none).
    """
    clips, skipped = scan_folder(folder)
    labels = np.array([label for _, label in clips])
    predicted = predict_clips(model, [path for path, _ in clips], batch_size)
    right = predicted == labels
    per_class = {
        SOURCE_CLASSES[c]: {"n": int(np.sum(labels == c)), "correct": int(np.sum(right[labels == c]))}
        for c in np.unique(labels)
    }
    return {
        "labels": labels,
        "predicted": predicted,
        "per_class": per_class,
        "skipped": skipped,
        **accuracies(labels, predicted),
    }
