"""Fidelity ablation: which knobs close the gap between a plain V2S rebuild and the paper's Table 2.

    python fidelity.py --datasets Wine,GunPoint,Plane,ECG200,Trace,Coffee,Lightning2,Herring --data-dir ../shared/ucr

Per dataset and seed, V2Sa (original weights, frozen) is trained for `--eps` epochs on 80 % of TRAIN
under every combination of

- learning-rate schedule: `original` (Adam 0.05 with the original's decay 0.48 per step) or `const`
  (Adam 0.01, no decay);
- segments m in {1, 10} (10 only where it fits) and program dropout in {0, 0.4};
- label map: the paper's maximal random many-to-one map (floor(36/K) sources per class); plus, with
  the original schedule at m = 10 and dropout 0.4, a map of one source per class (the original
  code's `--mapping 1` default).

TEST is scored after every epoch (`multi_program.train_programs(monitor_on=...)`) so that every
selection protocol can be computed from the same runs, and compared with the paper's V2Sa:

- honest: epoch on validation cross-entropy, setting on validation cross-entropy;
- setting on test: epoch on validation, the setting with the best test accuracy (reproduce.py's
  `setting-on-test` protocol);
- original: epoch AND setting on test (the original code printed the best test accuracy over epochs,
  and the paper the best setting).

Each (dataset, seed, schedule) stack writes `<out>/runs/<dataset>_<schedule>_seed<s>_eps<e>.json`;
re-running skips finished stacks. The report is `<out>/../fidelity.md` (`--report`); the last line
printed is `report=<path>`.

`--experiment dropout` asks instead what the original code's dropout did to its printed numbers, with
the runs, scores and report of `dropout_scoring` (see there); the report is `results/fidelity_dropout.md`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import dropout_scoring
import reporting
import runs
import utils
import validation
from settings import DEFAULT_LR, DEFAULT_LR_DECAY, DEFAULT_OFFSET, ProgramSetting
from utils import V2SError

SCHEDULES = {"original": {"lr": DEFAULT_LR, "lr_decay": DEFAULT_LR_DECAY}, "const": {"lr": 0.01, "lr_decay": 0.0}}
SEGMENTS, DROPOUTS = (1, 10), (0.0, 0.4)  # dropout as a rate
OFFSET = DEFAULT_OFFSET


def settings_for(schedule: str, n_classes: int, length: int, seed: int) -> list[tuple[ProgramSetting, str]]:
    """The programs of one (dataset, seed, schedule) stack, each with the name of its label map: segments x
    dropout with the maximal map ("maximal"), and (original schedule only) one source per class ("one") at
    the largest m and dropout 0.4."""
    import ts_model

    fits = [m for m in SEGMENTS if m <= utils.max_segments(length, OFFSET)]
    maximal = ts_model.many_to_one(n_classes, None, "random", seed)[1]
    out = [
        (ProgramSetting(seed=seed, seg=m, dropout=dr, offset=OFFSET, groups=maximal), "maximal")
        for m in fits
        for dr in DROPOUTS
    ]
    if schedule == "original":
        out.append(
            (
                ProgramSetting(
                    seed=seed,
                    seg=fits[-1],
                    dropout=0.4,
                    offset=OFFSET,
                    groups=ts_model.many_to_one(n_classes, 1, "random", seed)[1],
                ),
                "one",
            )
        )
    return out


def run_stack(dataset: str, schedule: str, seed: int, eps: int, data_dir, out: Path) -> Path:
    """Train one stack and write its record (settings, histories incl. per-epoch TEST, chosen epochs)."""
    import am_weights
    import multi_program
    import ts_dataloader

    path = out / "runs" / f"{runs.fidelity_stack_name(dataset, schedule, seed, eps)}.json"
    if path.exists():
        return path
    started = time.time()
    utils.setup_tensorflow(seed=seed)
    data = ts_dataloader.load_dataset(dataset, data_dir, download=False)
    x_fit, y_fit, x_val, y_val = ts_dataloader.validation_split(data.x_train, data.y_train, 0.2, seed)
    am, info = am_weights.load_am("v2sa")
    am.trainable = False
    settings, maps = zip(*settings_for(schedule, data.n_classes, data.length, seed))
    results = multi_program.train_programs(
        am,
        (x_fit, y_fit),
        (x_val, y_val),
        list(settings),
        epochs=eps,
        seed=seed,
        **SCHEDULES[schedule],
        monitor_on={"test": (data.x_test, data.y_test)},
    )
    programs = [
        {
            "setting": {**{k: v for k, v in r["setting"].items() if k != "groups"}, "map": name},
            "groups": r["setting"]["groups"],
            "history": r["history"],
            "best_epoch": r["best_epoch"],
        }
        for r, name in zip(results, maps)
    ]
    record = {
        "dataset": data.describe(),
        "schedule": {"name": schedule, **SCHEDULES[schedule]},
        "seed": seed,
        "eps": eps,
        "n_fit": len(y_fit),
        "n_validation": len(y_val),
        "am": {"name": info.name, "sha256": info.sha256},
        "programs": programs,
        "wall_time_s": round(time.time() - started, 1),
        "versions": utils.versions(),
    }
    utils.atomic_write_json(path, record)
    return path


def program_rows(record: dict) -> list[dict]:
    """One row per program: its knobs and its test accuracy under each epoch choice."""
    rows = []
    for prog in record["programs"]:
        h, s = prog["history"], prog["setting"]
        best = prog["best_epoch"] - 1
        rows.append(
            {
                "dataset": record["dataset"]["name"],
                "seed": record["seed"],
                "schedule": record["schedule"]["name"],
                "seg": s["seg"],
                "dropout": s["dropout"],
                "map": s["map"],
                "val_ce": h["val_ce"][best],
                "test_at_val_epoch": h["test_accuracy"][best],
                "test_best_epoch": max(h["test_accuracy"]),
                "test_last_epoch": h["test_accuracy"][-1],
            }
        )
    return rows


def protocols(rows: list[dict]) -> dict:
    """Test accuracy (fraction) of one dataset and seed under the three protocols, over the given programs."""
    honest = min(rows, key=lambda r: (r["val_ce"], r["schedule"], r["seg"], r["dropout"]))
    return {
        "honest": honest["test_at_val_epoch"],
        "setting on test": max(r["test_at_val_epoch"] for r in rows),
        "original (epoch and setting on test)": max(r["test_best_epoch"] for r in rows),
    }


def report(rows: list[dict], paper: dict, command: str, seeds: int, eps: int) -> str:
    """fidelity.md: per-setting accuracies, protocols vs the paper, and what each knob does on average."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    lines = [
        "# Fidelity ablation: what closes the gap to the paper's V2Sa",
        "",
        f"Command: `{command}` ({len(datasets)} datasets, {seeds} seed(s), {eps} epochs, V2Sa original weights "
        f"frozen, random maximal many-to-one map unless stated, 20 % of TRAIN for validation, offset {OFFSET}). "
        "Accuracies in percent, mean over seeds.",
        "",
    ]
    settings = sorted(
        {(r["schedule"], r["seg"], r["dropout"], r["map"]) for r in rows}, key=lambda k: (k[3] != "maximal", k)
    )
    header = [f"{sch} m={m} dr={dr}" + ("" if mp == "maximal" else " map=1") for sch, m, dr, mp in settings]
    lines += ["## Test accuracy per setting (epoch chosen on validation; in brackets: best epoch on TEST)", ""]
    table = []
    for d in datasets:
        cells = []
        for key in settings:
            got = [r for r in rows if r["dataset"] == d and (r["schedule"], r["seg"], r["dropout"], r["map"]) == key]
            cells.append(
                f"{100 * np.mean([r['test_at_val_epoch'] for r in got]):.1f} "
                f"({100 * np.mean([r['test_best_epoch'] for r in got]):.1f})"
                if got
                else "–"
            )
        table.append([d, f"{paper.get(d, float('nan')):.2f}", *cells])
    lines += reporting.markdown_table(["dataset", "paper V2Sa", *header], table)
    lines += ["", "## Protocols (all settings above are the candidates)", ""]
    names = ["honest", "setting on test", "original (epoch and setting on test)"]
    subsets = {
        "all settings": lambda r: True,
        "original schedule only": lambda r: r["schedule"] == "original",
        "original schedule, maximal map, m=1 only": lambda r: (
            r["schedule"] == "original" and r["seg"] == 1 and r["map"] == "maximal"
        ),
    }
    table = []
    per_protocol = {(s, n): [] for s in subsets for n in names}
    for d in datasets:
        cells = []
        for sname, keep in subsets.items():
            by_seed = [
                protocols([r for r in rows if r["dataset"] == d and r["seed"] == seed and keep(r)])
                for seed in sorted({r["seed"] for r in rows if r["dataset"] == d})
            ]
            for n in names:
                value = 100 * float(np.mean([p[n] for p in by_seed]))
                per_protocol[(sname, n)].append(value - paper.get(d, np.nan))
                cells.append(f"{value:.1f}")
        table.append([d, f"{paper.get(d, float('nan')):.2f}", *cells])
    table.append(
        [
            "**mean gap to paper (points)**",
            "",
            *(f"{np.nanmean(per_protocol[(s, n)]):+.1f}" for s in subsets for n in names),
        ]
    )
    lines += reporting.markdown_table(["dataset", "paper V2Sa", *(f"{n} [{s}]" for s in subsets for n in names)], table)
    lines += [
        "",
        "## What each knob does (mean test accuracy over datasets and the other knobs, epoch on validation)",
        "",
    ]
    for knob, label in (
        ("schedule", "learning-rate schedule"),
        ("seg", "segments m"),
        ("dropout", "dropout"),
        ("map", "label map"),
    ):
        pool = [r for r in rows if r["map"] == "maximal"]
        if knob == "map":  # compare like with like: original schedule, the map-1 program's m and dropout
            pool = [
                r
                for r in rows
                if r["schedule"] == "original"
                and r["dropout"] == 0.4
                and r["seg"] == max(x["seg"] for x in rows if x["dataset"] == r["dataset"])
            ]
        levels = sorted({r[knob] for r in pool}, key=str)
        text = ", ".join(
            f"{level}: {100 * np.mean([r['test_at_val_epoch'] for r in pool if r[knob] == level]):.1f}"
            for level in levels
        )
        lines.append(f"- {label}: {text}")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        default="Wine,GunPoint,Plane,ECG200,Trace,Coffee,Lightning2,Herring",
        help="comma-separated UCR names (Table-2 datasets, so the paper's V2Sa is known)",
    )
    parser.add_argument(
        "--experiment",
        choices=("knobs", "dropout"),
        default="knobs",
        help="knobs: the ablation of schedule, m, dropout and map; dropout: the original code's dropout "
        "(0.4 always, also when scoring) on 5 replicates x m 1..10 (see the module docstring)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (knobs)")
    parser.add_argument("--eps", type=int, default=100, help="epochs per run")
    parser.add_argument("--data-dir", default=None, help="UCR folder (default $V2S_DATA_DIR or Datasets/)")
    parser.add_argument("--out", default=str(utils.PROJECT_DIR / "results" / "fidelity"), help="run records")
    parser.add_argument(
        "--report",
        default=None,
        help="the report (default results/fidelity.md; with --experiment dropout results/fidelity_dropout.md)",
    )
    parser.add_argument("--report-only", action="store_true", help="write the report from the records already there")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import sys

    import paper_tables

    args = parse_args(argv)
    if args.report is None:
        report_name = "fidelity_dropout.md" if args.experiment == "dropout" else "fidelity.md"
        args.report = str(utils.PROJECT_DIR / "results" / report_name)
    validation.at_least("--seeds", args.seeds, 1, whole=True)
    validation.at_least("--eps", args.eps, 1, whole=True)
    validation.output_file("--report", args.report)
    validation.data_dir("--data-dir", args.data_dir)
    paper = {row["ucr_name"]: row["V2Sa"] for row in paper_tables.table2()}
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in paper]
    if unknown:
        raise V2SError(f"not a Table-2 dataset (UCR spelling): {', '.join(unknown)}")
    out = Path(args.out)
    validation.writable_dir("--report", Path(args.report).parent)  # before any stack is trained
    command = "python fidelity.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.experiment == "dropout":
        return dropout_main(args, names, paper, out, command)
    if not args.report_only:
        validation.writable_dir("--out", out / "runs")
        for name in names:
            for seed in range(args.seeds):
                for schedule in SCHEDULES:
                    path = run_stack(name, schedule, seed, args.eps, args.data_dir, out)
                    record = json.loads(path.read_text())
                    best = protocols(program_rows(record))
                    print(
                        f"{name} {schedule} seed{seed}: honest {best['honest']:.3f}, original protocol "
                        f"{best['original (epoch and setting on test)']:.3f} ({record['wall_time_s']:.0f}s)",
                        flush=True,
                    )
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    rows = [
        row
        for record in records
        if record["eps"] == args.eps and record["seed"] < args.seeds and record["dataset"]["name"] in names
        for row in program_rows(record)
    ]
    if not rows:
        raise V2SError(f"no fidelity records in {out / 'runs'}")
    text = report(rows, paper, command, args.seeds, args.eps)
    utils.atomic_write_bytes(Path(args.report), text.encode())
    print(f"report={args.report}")
    return 0


def dropout_main(args, names: list[str], paper: dict, out: Path, command: str) -> int:
    """`--experiment dropout`: train the missing replicates of every dataset, then write the report."""
    if not args.report_only:
        validation.writable_dir("--out", out / "dropout")
        for name in names:
            for replicate in range(dropout_scoring.REPLICATES):
                path = dropout_scoring.run_dropout_stack(name, replicate, args.eps, args.data_dir, out)
                score = dropout_scoring.dropout_scores([json.loads(path.read_text())])[name]
                print(
                    f"{name} replicate {replicate}: original {score['original']:.3f}, scored with dropout "
                    f"{score['original, scored with dropout']:.3f}",
                    flush=True,
                )
    records = [
        record
        for record in (json.loads(p.read_text()) for p in sorted((out / "dropout").glob("*.json")))
        if record["eps"] == args.eps and record["dataset"]["name"] in names
    ]
    if not records:
        raise V2SError(f"no records of --experiment dropout in {out / 'dropout'}")
    import ts_dataloader
    from sweep.plan import constant_per_batch_ceiling

    scores = dropout_scoring.dropout_scores(records)
    ceilings = {
        name: constant_per_batch_ceiling(ts_dataloader.load_dataset(name, args.data_dir, download=False).y_test)
        for name in scores
    }
    text = dropout_scoring.dropout_report(scores, paper, command, args.eps, ceilings)
    utils.atomic_write_bytes(Path(args.report), text.encode())
    print(f"report={args.report}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
