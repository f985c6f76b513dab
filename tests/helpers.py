"""Helpers shared by the test modules: paths to ../shared, tiny stand-in AMs, toy datasets and speech folders,
running the CLIs. Test modules import them from here (never from conftest or from each other); the fixtures
stay in conftest.py."""

import argparse
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("V2S_SHARED_DIR", ROOT.parent / "shared"))
UCR_DIR = SHARED / "ucr"
AM_FILE = SHARED / "am" / "model-attRNN.h5"
SPEECH_DIR = SHARED / "speech"

TINY_AM_INFO = {"name": "tiny_am", "path": None, "sha256": None, "source": "test", "original": False}


def needs(path: Path):
    """Skip a test whose input from ../shared is absent (a clone without the workplace data)."""
    return pytest.mark.skipif(not path.exists(), reason=f"{path} not present")


# ---------------------------------------------------------------------------------------------
# Stand-in acoustic models


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


def make_tiny_tf_am(seed: int = 0):
    """A small AM with the real one's interface on a (125 frames x 128 bins) plane.

    waveform (n, 16000) -> `mel_stft` (n, 125, 128, 1) -> `conv2d` (4 ch) -> `conv2d_1` (1 ch)
    -> attention over frames (`attSoftmax`) -> Dense(36, softmax) `output`.
    """
    import keras

    keras.utils.set_random_seed(seed)
    wave = keras.Input(shape=(16000,))
    mel = keras.layers.Reshape((125, 128, 1), name="mel_stft")(wave)
    x = keras.layers.Conv2D(4, (5, 1), activation="relu", padding="same", name="conv2d")(mel)
    x = keras.layers.Conv2D(1, (5, 1), activation="relu", padding="same", name="conv2d_1")(x)
    seq = keras.layers.Reshape((125, 128))(x)
    scores = keras.layers.Reshape((125,))(keras.layers.Dense(1)(seq))
    weights = keras.layers.Softmax(name="attSoftmax")(scores)
    context = keras.layers.Dot(axes=[1, 1])([weights, seq])
    out = keras.layers.Dense(36, activation="softmax", name="output")(context)
    return keras.Model(wave, out, name="tiny_tf_am")


def waves(n: int = 3, seed: int = 0) -> np.ndarray:
    """(n, 16000) float32 noise waveforms."""
    return np.random.default_rng(seed).normal(scale=0.3, size=(n, 16000)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Data on disk


def write_toy(root, name="Toy", n_train=24, n_test=20, seed=0, test_label_shift=0):
    """Two classes of length-100 series in UCR layout under `root`: noisy sines and noisy square waves."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 4 * np.pi, 100)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("TRAIN", n_train), ("TEST", n_test)):
        labels = np.arange(n) % 2
        if split == "TEST":
            labels = (labels + test_label_shift) % 2
        rows = [
            np.r_[label + 1, (np.sin(t) if label == 0 else np.sign(np.sin(t))) + 0.1 * rng.normal(size=100)]
            for label in labels
        ]
        np.savetxt(folder / f"{name}_{split}.tsv", np.array(rows), delimiter="\t")
    return root


def write_speech(folder, words=("yes", "no", "up"), per_word=3, seed=0):
    """A Speech-Commands-layout folder of short noise-and-tone WAVs at 16 kHz."""
    from scipy.io import wavfile

    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    for k, word in enumerate(words):
        (folder / word).mkdir(parents=True, exist_ok=True)
        for i in range(per_word):
            clip = 0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t) + 0.05 * rng.normal(size=16000)
            wavfile.write(folder / word / f"clip{i}.wav", 16000, (clip * 20000).astype(np.int16))
    return folder


def config(tmp_path, **overrides):
    """A `training.V2SConfig` for the toy dataset under `tmp_path/data` (3 epochs, seed 5, mapping 3, quiet)."""
    import training

    settings = dict(
        dataset="Toy",
        data_dir=str(tmp_path / "data"),
        eps=3,
        seed=5,
        mapping=3,
        results_dir=str(tmp_path / "results"),
        weight_dir=str(tmp_path / "weight"),
        verbose=0,
        plot=False,
    )
    settings.update(overrides)
    return training.V2SConfig(**settings)


def theta_of(weights_path) -> np.ndarray:
    """The program theta (16000 values) stored in a V2S `.weights.h5` file."""
    import h5py

    def datasets(group, prefix=""):
        for key, item in group.items():
            if isinstance(item, h5py.Dataset):
                yield f"{prefix}{key}"
            else:
                yield from datasets(item, f"{prefix}{key}/")

    with h5py.File(weights_path) as f:
        return np.concatenate([np.ravel(f[k][()]) for k in datasets(f) if "art" in k])


# ---------------------------------------------------------------------------------------------
# The command-line scripts


def v2s_main(*args, tmp_path, env=None):
    """Run v2s_main.py in a subprocess with outputs under tmp_path; returns the CompletedProcess."""
    command = [
        sys.executable,
        str(ROOT / "v2s_main.py"),
        *args,
        "--results-dir",
        str(tmp_path / "results"),
        "--weight-dir",
        str(tmp_path / "weight"),
    ]
    full_env = {**os.environ, "V2S_OFFLINE": "1", **(env or {})}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=600, cwd=tmp_path)


def assert_one_line_error(result, *fragments):
    """A failed CLI run: non-zero status, one `error: ...` line on stderr holding every fragment, no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


class _Captured(Exception):
    pass


def parser_of(parse_args) -> argparse.ArgumentParser:
    """The `ArgumentParser` a script's `parse_args` builds, captured when it starts parsing (nothing is parsed)."""
    captured = {}

    def capture(self, args=None, namespace=None):
        captured["parser"] = self
        raise _Captured

    with mock.patch.object(argparse.ArgumentParser, "parse_args", capture):
        try:
            parse_args([])
        except _Captured:
            pass
    return captured["parser"]


def assert_every_flag_is_explained(parser: argparse.ArgumentParser, help_text: str) -> None:
    """Every option of `parser` has a non-empty help string and appears in its `--help` output."""
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help and action.help.strip(), f"{action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert flag in help_text, flag


# ---------------------------------------------------------------------------------------------
# Sweep stand-ins (reproduce.py, sweep/)


def fake_record(spec, val_ce, test_acc, test_curve=None):
    """A run record as the sweep writes it; `test_curve` is its per-epoch TEST accuracy (default: flat)."""
    return {
        "run": spec.name,
        "config": {
            "net": spec.net,
            "mod": spec.mod,
            "seed": spec.seed,
            "dr": spec.dr,
            "seg": spec.seg,
            "fold": spec.fold,
            "folds": spec.folds,
        },
        "dataset": {"name": spec.dataset},
        "metrics": {"validation": {"ce": val_ce}, "test": {"accuracy": test_acc}},
        "history": {"test_accuracy": list(test_curve or [test_acc] * spec.eps)},
        "wall_time_s": {"total": 1.0},
    }


def fake_runner(calls, fail=()):
    """A stand-in for `sweep.stack.run_stack`: per spec of the stack, writes a record whose scores depend on the
    setting; fails for `fail` names (as run_stack does: an error record, and the sweep goes on). Calls
    `on_epoch` after each of the stack's epochs, as run_stack does for a V2S stack."""

    def run(stack, out, on_epoch=None):
        for done in range(1, stack[0].eps + 1):
            if on_epoch is not None:
                on_epoch(done)
        summaries = []
        for spec in stack:
            calls.append(spec.name)
            if spec.name in fail:
                _atomic_write_json(f"{out}/runs/{spec.name}.error.json", {"run": spec.name, "error": "boom"})
                summaries.append({"run": spec.name, "ok": False, "error": "boom", "seconds": 0.0})
                continue
            record = fake_record(spec, val_ce=1.0 / (1 + spec.seg + spec.dr), test_acc=0.5 + 0.01 * spec.seg)
            _atomic_write_json(f"{out}/runs/{spec.name}.json", record)
            summaries.append(
                {"run": spec.name, "ok": True, "test_accuracy": record["metrics"]["test"]["accuracy"], "seconds": 0.0}
            )
        return summaries

    return run


def fake_stack_runner(stack, out, on_epoch=None):
    """`fake_runner` as a module-level function, which a spawned `--jobs` worker can unpickle."""
    return fake_runner([])(stack, out, on_epoch)


ROWS = [{"ucr_name": "Toy", "length": 1000, "n_classes": 2}]


def _atomic_write_json(path, obj):
    import utils

    utils.atomic_write_json(path, obj)
