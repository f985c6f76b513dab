"""fidelity.py: the ablation's settings and how each selection protocol reads the same runs."""

import pytest

import dropout_scoring
import fidelity
from settings import DEFAULT_OFFSET


def row(schedule, seg, dropout, val_ce, at_val, best, mapping="maximal", dataset="Toy", seed=0):
    return {
        "dataset": dataset,
        "seed": seed,
        "schedule": schedule,
        "seg": seg,
        "dropout": dropout,
        "map": mapping,
        "val_ce": val_ce,
        "test_at_val_epoch": at_val,
        "test_best_epoch": best,
        "test_last_epoch": at_val,
    }


def test_the_stacks_cover_schedule_segments_dropout_and_a_one_source_map():
    original = fidelity.settings_for("original", n_classes=2, length=100, seed=0)
    const = fidelity.settings_for("const", n_classes=2, length=100, seed=0)
    assert [(s.seg, s.dropout, name) for s, name in const] == [
        (1, 0.0, "maximal"),
        (1, 0.4, "maximal"),
        (10, 0.0, "maximal"),
        (10, 0.4, "maximal"),
    ]
    assert all(s.offset == DEFAULT_OFFSET for s, _ in original + const)
    assert len(original) == 5 and original[-1][1] == "one" and original[-1][0].seg == 10
    assert [len(g) for g in original[0][0].groups] == [18, 18] and [len(g) for g in original[-1][0].groups] == [1, 1]
    long_series = fidelity.settings_for("const", n_classes=2, length=2000, seed=0)  # 10 copies do not fit
    assert {s.seg for s, _ in long_series} == {1}


def test_protocols_choose_on_validation_or_on_test_from_the_same_runs():
    rows = [
        row("original", 1, 0.0, val_ce=0.3, at_val=0.70, best=0.75),
        row("const", 10, 0.4, val_ce=0.5, at_val=0.80, best=0.85),
        row("const", 1, 0.4, val_ce=0.9, at_val=0.60, best=0.95),
    ]
    chosen = fidelity.protocols(rows)
    assert chosen["honest"] == 0.70  # lowest validation cross-entropy
    assert chosen["setting on test"] == 0.80  # epoch on validation, best setting on test
    assert chosen["original (epoch and setting on test)"] == 0.95  # best epoch and setting on test


def test_the_report_gives_the_mean_gap_to_the_paper_per_protocol():
    rows = [row("original", 1, 0.0, 0.3, 0.70, 0.75), row("const", 1, 0.0, 0.2, 0.90, 0.95)]
    text = fidelity.report(rows, {"Toy": 100.0}, "cmd", seeds=1, eps=1)
    gap_line = next(line for line in text.splitlines() if line.startswith("| **mean gap"))
    cells = [c.strip() for c in gap_line.strip("|").split("|")]
    assert cells[2:5] == ["-10.0", "-10.0", "-5.0"]  # honest, setting on test, original (all settings)
    assert "- learning-rate schedule: const: 90.0, original: 70.0" in text


def test_a_dataset_outside_table_2_is_a_clear_error():
    with pytest.raises(fidelity.V2SError, match="not a Table-2 dataset"):
        fidelity.main(["--datasets", "NoSuch", "--report-only"])


def test_the_dropout_experiment_scores_the_same_runs_without_and_with_the_originals_dropout():
    def program(val_ce, plain, noisy):
        best = min(range(len(val_ce)), key=val_ce.__getitem__) + 1
        history = {"val_ce": val_ce, "test_accuracy": plain, "test_dropout_accuracy": noisy}
        return {"setting": {"seg": 1}, "history": history, "best_epoch": best}

    replicates = [
        {"dataset": {"name": "Toy"}, "programs": [program([0.5, 0.4], [0.6, 0.7], [0.5, 0.95])]},
        {"dataset": {"name": "Toy"}, "programs": [program([0.3, 0.6], [0.65, 0.9], [0.8, 0.7])]},
        {"dataset": {"name": "Other"}, "programs": [program([0.2, 0.1], [0.5, 0.4], [0.5, 0.6])]},
    ]
    scores = dropout_scoring.dropout_scores(replicates)
    toy = scores["Toy"]
    assert toy["honest"] == 0.65  # replicate 1, epoch 1: the lowest validation cross-entropy, not the best TEST
    assert toy["original"] == 0.9 and toy["original, scored with dropout"] == 0.95
    assert toy["noise"] == pytest.approx((0.1 + 0.25 + 0.15 + 0.2) / 4) and toy["programs"] == 2
    assert scores["Other"]["honest"] == 0.4 and scores["Other"]["programs"] == 1
    text = dropout_scoring.dropout_report(
        scores, {"Toy": 95.0, "Other": 60.0}, "cmd", eps=2, ceilings={"Toy": 90.0, "Other": 55.0}
    )
    gap_line = next(line for line in text.splitlines() if line.startswith("| **mean gap"))
    # Toy -30 / -5 / 0, Other -20 / -10 / 0: the mean over datasets
    assert [c.strip() for c in gap_line.strip("|").split("|")][4:7] == ["-25.00", "-7.50", "+0.00"]
    toy_line = next(line for line in text.splitlines() if line.startswith("| Toy |"))
    assert [c.strip() for c in toy_line.strip("|").split("|")][:4] == ["Toy", "95.00", "90.00", "2"]
