"""baselines.py: MiniRocket fits on TRAIN, scores TEST once, repeatably; its CLI speaks like v2s_main."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

import baselines
import ts_dataloader
from utils import V2SError

needs_aeon = pytest.mark.skipif(
    importlib.util.find_spec("aeon") is None, reason="aeon not installed (pip install -r requirements-extras.txt)"
)

RESULT_KEYS = {"accuracy", "fit_seconds", "method", "seed"}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    """A UCR-format folder holding `Toy`: 2 classes, 12 train and 20 test series of length 40.

    Class 1 (label -1 in the files) is a slow sine, class 2 (label 1) a fast one, both with noise.
    """
    data_dir = tmp_path_factory.mktemp("ucr")
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 40)
    for split, n in (("TRAIN", 12), ("TEST", 20)):
        labels = np.tile([-1, 1], n // 2)
        series = np.sin(2 * np.pi * np.where(labels[:, None] < 0, 2, 6) * t) + 0.1 * rng.normal(size=(n, 40))
        folder = data_dir / "Toy"
        folder.mkdir(exist_ok=True)
        np.savetxt(folder / f"Toy_{split}.tsv", np.c_[labels, series], delimiter="\t", fmt="%g")
    return data_dir


@pytest.fixture(scope="module")
def toy(toy_dir):
    return ts_dataloader.load_dataset("Toy", toy_dir, download=False)


def run_baselines(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "baselines.py"), *args], capture_output=True, text=True, timeout=600
    )


@needs_aeon
def test_minirocket_separates_a_clearly_separable_dataset_and_reports_its_method(toy):
    result = baselines.minirocket(toy, seed=0)
    assert set(result) == RESULT_KEYS
    assert result["accuracy"] >= 0.9
    assert result["fit_seconds"] > 0
    assert result["method"].startswith("aeon ") and result["method"].endswith(" MiniRocketClassifier")
    assert result["seed"] == 0


@pytest.fixture(scope="module")
def noisy(toy_dir):
    """`Toy` with noise as large as the signal, so the TEST decisions are not all clear-cut."""
    data = ts_dataloader.load_dataset("Toy", toy_dir, download=False)
    rng = np.random.default_rng(1)
    data.x_train = data.x_train + rng.normal(size=data.x_train.shape)
    data.x_test = data.x_test + rng.normal(size=data.x_test.shape)
    return data


@needs_aeon
def test_minirocket_with_the_same_seed_gives_the_same_decision_scores(noisy, monkeypatch):
    """The ridge decision scores on TEST, not only the accuracy, repeat with the seed; another seed changes
    them (so the comparison can fail)."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    scores = []
    predict = MiniRocketClassifier._predict

    def recording(self, x):
        scores.append(self.pipeline_.decision_function(x))
        return predict(self, x)

    monkeypatch.setattr(MiniRocketClassifier, "_predict", recording)
    first, again, other = (baselines.minirocket(noisy, seed=s) for s in (3, 3, 4))
    assert len(scores) == 3
    np.testing.assert_array_equal(scores[0], scores[1])
    assert first["accuracy"] == again["accuracy"]
    assert not np.allclose(scores[0], scores[2])


def test_minirocket_without_aeon_says_how_to_install_it(toy, monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon", None)  # makes `import aeon` raise ImportError
    with pytest.raises(V2SError, match=r"pip install -r requirements-extras\.txt"):
        baselines.minirocket(toy)


@needs_aeon
def test_cli_prints_a_header_and_test_accuracy_last(toy_dir):
    run = run_baselines("--dataset", "Toy", "--data-dir", str(toy_dir), "--seed", "0")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("MiniRocket on Toy")
    assert lines[-1].startswith("test_accuracy=")
    assert float(lines[-1].split("=")[1]) >= 0.9


def test_cli_with_a_missing_dataset_is_one_line_and_exit_status_2(tmp_path):
    run = run_baselines("--dataset", "NoSuchData", "--data-dir", str(tmp_path))
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "NoSuchData" in lines[0]


@pytest.mark.slow  # numba compiles MultiRocket's kernels on first use (minutes on a busy machine)
@needs_aeon
def test_multirocket_separates_a_clearly_separable_dataset_and_says_so(toy_dir):
    run = run_baselines("--dataset", "Toy", "--data-dir", str(toy_dir), "--method", "multirocket")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("MultiRocket on Toy") and "MultiRocketClassifier" in lines[1]
    assert float(lines[-1].split("=")[1]) >= 0.9


def test_an_unknown_baseline_is_a_clear_error(toy):
    with pytest.raises(V2SError, match="--method rocket9: choose minirocket or multirocket"):
        baselines.rocket(toy, 0, "rocket9")
