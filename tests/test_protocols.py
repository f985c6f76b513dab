"""The per-epoch TEST monitoring of the sweep path: recorded for the optimistic protocols, never read to train
or to choose (a seeded random V2Sa, so this runs on a clean clone)."""

import numpy as np
import pytest

from settings import ProgramSetting


@pytest.fixture(scope="module")
def random_v2sa():
    import keras

    import speech_models

    keras.utils.set_random_seed(11)
    am = speech_models.build_am("v2sa")
    am.trainable = False
    return am


def _series(n, length=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 6 * np.pi, length)
    y = np.arange(n) % 2
    x = np.stack([np.sin(t * (1 + label)) + 0.2 * rng.normal(size=length) for label in y]).astype(np.float32)
    return x, y


def test_replacing_every_test_label_changes_only_the_test_numbers_of_a_stack(random_v2sa):
    import multi_program

    x, y = _series(28)
    fit, val, test = (x[:12], y[:12]), (x[12:20], y[12:20]), (x[20:], y[20:])
    flipped = (x[20:], 1 - y[20:])
    settings = [ProgramSetting(seed=0, dropout=0.4), ProgramSetting(seed=1, dropout=0.0, seg=3, offset=0)]

    def train(test_split):
        return multi_program.train_programs(
            random_v2sa,
            fit,
            val,
            settings,
            epochs=3,
            batch_size=6,
            seed=2,
            evaluate_on={"test": test_split},
            monitor_on={"test": test_split},
        )

    honest, other = train(test), train(flipped)
    test_keys = {"test_accuracy", "test_ce"}
    for a, b in zip(honest, other):
        assert test_keys <= set(a["history"]) and len(a["history"]["test_accuracy"]) == 3
        np.testing.assert_array_equal(a["theta"], b["theta"])
        np.testing.assert_array_equal(a["theta_last"], b["theta_last"])
        assert {k: v for k, v in a["history"].items() if k not in test_keys} == {
            k: v for k, v in b["history"].items() if k not in test_keys
        }
        assert a["best_epoch"] == b["best_epoch"] and a["metrics"]["validation"] == b["metrics"]["validation"]
        assert a["history"]["test_accuracy"] == pytest.approx([1 - v for v in b["history"]["test_accuracy"]])
        assert a["metrics"]["test"]["accuracy"] == pytest.approx(1 - b["metrics"]["test"]["accuracy"])
        # the final TEST score is the monitored score of the chosen epoch
        assert a["metrics"]["test"]["accuracy"] == pytest.approx(a["history"]["test_accuracy"][a["best_epoch"] - 1])
