"""training.run: honest epoch selection, test isolation, records, reproducibility (with a tiny AM)."""

import json

import numpy as np
import pytest
from helpers import TINY_AM_INFO, config, make_tiny_am, theta_of, write_toy

import training
from utils import V2SError


def run(cfg):
    return training.run(cfg, am=make_tiny_am(), am_info=TINY_AM_INFO)


@pytest.fixture
def toy(tmp_path):
    write_toy(tmp_path / "data")
    return tmp_path


def test_same_seed_gives_the_same_numbers(toy):
    first, second = run(config(toy)), run(config(toy))
    assert first["history"] == second["history"]
    assert first["metrics"] == second["metrics"]
    assert first["label_mapping"] == second["label_mapping"]


def test_a_different_seed_gives_a_different_run(toy):
    assert run(config(toy))["history"] != run(config(toy, seed=6))["history"]


def epoch_orders(data, epochs):
    """Per epoch, the labels in the order the batches yield them (one iterator per epoch, as `fit`)."""
    return [np.concatenate([y.numpy() for _, y in data]).tolist() for _ in range(epochs)]


def test_the_runs_batches_hold_every_series_once_per_epoch_reshuffled_as_the_seed_says():
    x, y = np.zeros((10, 3), np.float32), np.arange(10)
    orders = epoch_orders(training.batches(x, y, 4, shuffle_seed=3), 3)
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert orders[0] != orders[1]
    assert orders == epoch_orders(training.batches(x, y, 4, shuffle_seed=3), 3)
    assert epoch_orders(training.batches(x, y, 4), 2) == [list(range(10))] * 2  # evaluation: in order
    # nothing to autotune, and deleting an autotuned pipeline's iterator waits (docs/performance.md, item 9)
    assert not training.batches(x, y, 4, shuffle_seed=3).options().autotune.enabled


def test_test_split_never_influences_training_or_epoch_choice(tmp_path):
    """Replacing every TEST label changes the test numbers only: theta, the history of every other metric
    and the chosen epoch are identical; the per-epoch TEST accuracy is recorded and flips with the labels."""
    write_toy(tmp_path / "a" / "data")
    write_toy(tmp_path / "b" / "data", test_label_shift=1)
    honest = run(config(tmp_path / "a", eps=4))
    flipped = run(config(tmp_path / "b", eps=4))
    test_keys = {"test_accuracy", "test_ce", "test_loss"}
    assert test_keys <= set(honest["history"]) and len(honest["history"]["test_accuracy"]) == 4
    assert {k: v for k, v in honest["history"].items() if k not in test_keys} == {
        k: v for k, v in flipped["history"].items() if k not in test_keys
    }
    assert honest["history"]["test_accuracy"] == pytest.approx([1 - a for a in flipped["history"]["test_accuracy"]])
    assert honest["history"]["test_ce"] != flipped["history"]["test_ce"]
    assert honest["selection"] == flipped["selection"]
    assert honest["metrics"]["validation"] == flipped["metrics"]["validation"]
    assert honest["metrics"]["test"]["accuracy"] == pytest.approx(1 - flipped["metrics"]["test"]["accuracy"])
    np.testing.assert_array_equal(theta_of(honest["weights"]), theta_of(flipped["weights"]))


def test_epoch_is_chosen_on_validation_cross_entropy_and_its_weights_are_restored(toy):
    record = run(config(toy, eps=5))
    val_ce = record["history"]["val_ce"]
    assert record["selection"]["criterion"] == "lowest validation loss (cross-entropy)"
    assert record["selection"]["epoch"] == int(np.argmin(val_ce)) + 1
    assert record["metrics"]["validation"]["ce"] == pytest.approx(min(val_ce), rel=1e-4)
    chosen = record["selection"]["epoch"] - 1  # the reported TEST numbers are the chosen epoch's
    assert record["metrics"]["test"] == {
        key: record["history"][f"test_{key}"][chosen] for key in ("loss", "accuracy", "ce")
    }


def test_reported_loss_is_cross_entropy_plus_the_l2_penalty_on_theta(toy):
    """loss = ce + l2 * sum(theta**2) at the saved (chosen) program, on every split; with l2 = 0, loss = ce."""
    record = run(config(toy, eps=2, l2=0.04))
    theta = theta_of(record["weights"]).astype(np.float64)
    penalty = 0.04 * np.sum(theta**2)
    assert penalty > 1.0  # large enough that a missing or doubled term would show
    for split in ("train", "validation", "test"):
        scores = record["metrics"][split]
        assert scores["loss"] == pytest.approx(scores["ce"] + penalty, rel=1e-5), split
    no_penalty = run(config(toy, eps=1, l2=0.0))["metrics"]["train"]
    assert no_penalty["loss"] == pytest.approx(no_penalty["ce"], rel=1e-5)


def test_without_validation_the_last_epoch_is_kept(toy):
    record = run(config(toy, val_split=0.0))
    assert record["selection"] == {"criterion": "last epoch (no validation split)", "epoch": 3}
    assert "validation" not in record["metrics"] and "val_loss" not in record["history"]


def test_selecting_on_test_is_explicit_and_labelled(toy):
    record = run(config(toy, eps=4, select_on_test=True))
    assert "TEST" in record["selection"]["criterion"]
    assert record["selection"]["epoch"] == int(np.argmax(record["history"]["test_accuracy"])) + 1
    assert record["metrics"]["test"]["accuracy"] == pytest.approx(max(record["history"]["test_accuracy"]))


def test_record_has_what_a_researcher_needs(toy):
    record = run(config(toy, plot=True, per=2))
    saved = json.loads(open(record["results"]).read())
    for key in (
        "config",
        "dataset",
        "label_mapping",
        "am",
        "history",
        "selection",
        "metrics",
        "wall_time_s",
        "versions",
        "weights",
        "n_fit",
        "n_validation",
    ):
        assert key in saved, key
    assert saved["config"]["mapping"] == 3 and saved["config"]["dropout"] == 0.4
    assert saved["label_mapping"]["groups"] == [[0, 1, 2], [3, 4, 5]]
    assert saved["dataset"]["label_map"] == {"1": 0, "2": 1}
    assert saved["versions"]["tensorflow"].startswith("2.20")
    assert saved["n_fit"] + saved["n_validation"] == 24
    assert len(saved["history"]["loss"]) == 3
    weight_dir = toy / "weight"
    assert (weight_dir / f"{record['run']}.weights.h5").stat().st_size > 0
    assert len(list((weight_dir / "beta").glob(f"{record['run']}-002-*.weights.h5"))) == 1
    assert (toy / "results" / f"{record['run']}.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((toy / "results").glob(".*tmp*")) and not list(weight_dir.glob(".*tmp*"))


def test_default_mapping_is_the_papers_maximum(toy):
    assert run(config(toy, mapping=None, eps=1))["label_mapping"]["per_class"] == 18


def test_random_map_is_recorded(toy):
    record = run(config(toy, map_type="random", eps=1))
    flat = [s for g in record["label_mapping"]["groups"] for s in g]
    assert len(set(flat)) == 6 and record["label_mapping"]["type"] == "random"


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("mapping", 0, "--mapping 0: must be at least 1"),
        ("dr", 12, r"--dr 12: must be in \[0, 10\)"),
        ("dr", -1, "--dr -1"),
        ("lr", -1.0, "--lr -1: must be greater than 0"),
        ("lr_decay", -0.1, "--lr-decay"),
        ("l2", -1.0, "--l2"),
        ("val_split", -0.2, r"--val-split -0.2: must be in \[0, 1\)"),
        ("eps", 0, "--eps 0"),
        ("run_name", "../../x", "--run-name ../../x: must be a file name"),
        ("folds", 1, "folds 1"),
    ],
)
def test_a_config_out_of_range_is_refused_when_made_with_the_cli_message(tmp_path, field, value, named):
    with pytest.raises(V2SError, match=named):
        config(tmp_path, **{field: value})


def test_run_refuses_a_config_changed_out_of_range_before_writing_anything(toy):
    cfg = config(toy)
    cfg.lr = -1.0
    with pytest.raises(V2SError, match="--lr -1"):
        run(cfg)
    assert not (toy / "results").exists() and not (toy / "weight").exists()


def test_output_folders_are_checked_before_any_training(toy, monkeypatch):
    (toy / "plain").write_text("a file, not a folder")
    monkeypatch.setattr(training, "compile_model", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(V2SError, match="--results-dir .*plain is a file, not a folder"):
        run(config(toy, results_dir=str(toy / "plain" / "results")))
    with pytest.raises(V2SError, match="--weight-dir .*plain is a file, not a folder"):
        run(config(toy, per=1, weight_dir=str(toy / "plain")))


def _files(folder):
    """Every file under `folder`, hidden temporaries included."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_a_run_that_fails_during_fit_writes_nothing(toy, monkeypatch):
    """Nothing is written before training ends: a crash in epoch 2 leaves no record, weights or figure."""

    def crash_in_epoch_2(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("crash in epoch 2")

    monkeypatch.setattr(training.TestMonitor, "on_epoch_end", crash_in_epoch_2)
    with pytest.raises(RuntimeError, match="crash in epoch 2"):
        run(config(toy, plot=True))
    assert _files(toy / "results") == [] and _files(toy / "weight") == []


def test_a_file_that_fails_half_written_leaves_no_partial_file_and_no_record(toy, monkeypatch):
    """The curves PNG fails after some bytes are written: the temporary file is removed, no PNG appears,
    and the record (written last) is not written."""
    import matplotlib.figure

    def half_written(self, path, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", half_written)
    with pytest.raises(OSError, match="disk full"):
        run(config(toy, plot=True))
    assert _files(toy / "results") == []
    assert [p.name for p in _files(toy / "weight")] == ["Toy_net0_mod1_map3first_seg1_dr4_eps3_seed5.weights.h5"]
