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


def test_scoring_with_the_originals_dropout_is_recorded_beside_and_changes_nothing_else(random_v2sa):
    import multi_program

    x, y = _series(28)
    fit, val, test = (x[:12], y[:12]), (x[12:20], y[12:20]), (x[20:], y[20:])
    settings = [ProgramSetting(seed=0, dropout=0.4), ProgramSetting(seed=0, dropout=0.0, seg=3)]

    def train(**monitors):
        return multi_program.train_programs(
            random_v2sa, fit, val, settings, epochs=3, batch_size=6, seed=2, monitor_on={"test": test}, **monitors
        )

    plain, noisy = train(), train(monitor_dropout_on={"test": test})
    extra = {"test_dropout_accuracy", "test_dropout_ce"}
    for a, b in zip(plain, noisy):
        np.testing.assert_array_equal(a["theta"], b["theta"])
        assert {k: v for k, v in b["history"].items() if k not in extra} == a["history"]
        assert len(b["history"]["test_dropout_ce"]) == 3
    # dropout 0.4 moves the scores; dropout 0 scores exactly as without
    assert noisy[0]["history"]["test_dropout_ce"] != noisy[0]["history"]["test_ce"]
    assert noisy[1]["history"]["test_dropout_ce"] == pytest.approx(noisy[1]["history"]["test_ce"], rel=1e-6)
    # seeded: the same command scores the same
    assert train(monitor_dropout_on={"test": test})[0]["history"] == noisy[0]["history"]


def test_scoring_with_dropout_draws_one_mask_per_batch_at_the_training_batch_size(random_v2sa):
    from unittest import mock

    import multi_program
    import ts_model

    x, y = _series(6)
    setting = multi_program.resolve(ProgramSetting(seed=0, dropout=0.4, offset=0), 2)
    stack = multi_program.ProgramStack(random_v2sa, 2, [setting], 120)
    tiled = ts_model.tile_segments(x, 1, 0)

    def score(series, labels, batch):
        stack.scoring_rng.reset_from_seed(5)
        return stack.evaluate([series], labels, batch, dropout=True)[0][0]

    twice = np.concatenate([tiled, tiled]), np.concatenate([y, y])
    stack.scoring_rng.reset_from_seed(5)
    first, second = (stack.evaluate([tiled], y, 6, dropout=True)[0][0] for _ in range(2))
    assert first != second  # the stream moves on: a new mask for every batch
    assert score(*twice, 6) == pytest.approx((first + second) / 2, rel=1e-6)  # two batches, two masks
    assert score(*twice, 12) == pytest.approx(first, rel=1e-6)  # one batch, one mask

    fit, test = (x, y), _series(8, seed=1)
    with mock.patch.object(
        multi_program.ProgramStack, "evaluate", autospec=True, side_effect=stack.evaluate.__func__
    ) as spy:
        multi_program.train_programs(
            random_v2sa, fit, None, [setting], epochs=1, batch_size=3, eval_batch=128, monitor_dropout_on={"test": test}
        )
    assert [c.args[3] for c in spy.call_args_list if c.args[4:] == (True,)] == [3]  # the training batch, not 128


def test_a_stack_reports_each_finished_epoch_and_the_hook_cannot_change_it(random_v2sa):
    import keras
    import tensorflow as tf

    import multi_program

    x, y = _series(16)
    settings = [ProgramSetting(seed=0, dropout=0.4), ProgramSetting(seed=1, dropout=0.0)]
    done = []

    def hook(epochs_done):  # a hook that draws from the global generators
        done.append(epochs_done)
        np.random.random(7)
        tf.random.uniform((7,))
        keras.random.uniform((7,))

    args = (random_v2sa, (x[:10], y[:10]), (x[10:], y[10:]), settings)
    hooked = multi_program.train_programs(*args, epochs=3, batch_size=5, seed=2, on_epoch=hook)
    plain = multi_program.train_programs(*args, epochs=3, batch_size=5, seed=2)
    assert done == [1, 2, 3]
    for a, b in zip(hooked, plain):
        np.testing.assert_array_equal(a["theta_last"], b["theta_last"])
        assert a["history"] == b["history"]


def test_a_longer_stack_begins_with_the_shorter_stacks_epochs(random_v2sa):
    """Nothing in a stack depends on the number of epochs: a 300-epoch sweep's first 100 epochs are the
    100-epoch sweep's, so `--eps 300` answers "do more epochs move `original`?" within the same runs."""
    import multi_program

    x, y = _series(24)
    settings = [ProgramSetting(seed=0, dropout=0.4), ProgramSetting(seed=1, dropout=0.1, seg=2, offset=0)]

    def train(epochs):
        return multi_program.train_programs(
            random_v2sa,
            (x[:10], y[:10]),
            (x[10:16], y[10:16]),
            settings,
            epochs=epochs,
            batch_size=5,
            seed=2,
            monitor_on={"test": (x[16:], y[16:])},
        )

    for short, long in zip(train(2), train(4)):
        assert {k: v[:2] for k, v in long["history"].items()} == short["history"]


def _precision_record(dataset, precision, seed, dr, seg, val_ce, test_accuracy):
    return {
        "dataset": {"name": dataset},
        "config": {"net": "0", "mod": "1", "seed": seed, "dr": dr, "seg": seg, "precision": precision},
        "selection": {"best_epoch": 1, "best_value": val_ce},
        "history": {"val_ce": [val_ce], "test_accuracy": [test_accuracy]},
        "metrics": {"validation": {"ce": val_ce}, "test": {"accuracy": test_accuracy}},
        "wall_time_s": {"total": 1.0},
    }


def test_bf16_is_accepted_only_within_the_fp32_seed_spread_on_every_dataset_and_half_a_point_on_the_mean():
    from sweep.precision import compare

    records = []
    # A: fp32 seeds 80 / 90 (spread 80-90), bf16 seeds 84 / 86 (mean 85: inside). The honest choice is the
    # setting of lowest validation ce (seg 1 here); the other setting's TEST numbers must not count.
    for precision, tests in (("fp32", (0.80, 0.90)), ("bf16", (0.84, 0.86))):
        for seed, acc in enumerate(tests):
            records += [
                _precision_record("A", precision, seed, 0, 1, 0.2, acc),
                _precision_record("A", precision, seed, 0, 10, 0.9, 0.10),
            ]
    # B: fp32 70 / 72, bf16 69.5 / 70.5 (mean 70.0: on the edge, inside)
    for precision, tests in (("fp32", (0.70, 0.72)), ("bf16", (0.695, 0.705))):
        records += [_precision_record("B", precision, seed, 0, 1, 0.3, acc) for seed, acc in enumerate(tests)]
    result = compare(records)
    assert [r["dataset"] for r in result["rows"]] == ["A", "B"]
    a = result["rows"][0]
    assert a["fp32"] == pytest.approx([80.0, 90.0]) and a["bf16_mean"] == pytest.approx(85.0)
    assert result["every_dataset_within_spread"] and result["accepted"]
    assert result["mean_difference"] == pytest.approx((85 + 70) / 2 - (85 + 71) / 2)  # -0.5: at the tolerance

    # one dataset outside its spread is enough to refuse bf16
    low = [r for r in records if not (r["dataset"]["name"] == "B" and r["config"]["precision"] == "bf16")]
    low += [_precision_record("B", "bf16", seed, 0, 1, 0.3, 0.69) for seed in range(2)]
    refused = compare(low)
    assert not refused["rows"][1]["within_spread"] and not refused["accepted"]
    # a dataset without both precisions on the same seeds is left out
    assert [r["dataset"] for r in compare(records + [_precision_record("C", "fp32", 0, 0, 1, 0.1, 0.5)])["rows"]] == [
        "A",
        "B",
    ]
