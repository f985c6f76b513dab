"""The original code's dropout, also when scoring: the runs, scores and report of
`fidelity.py --experiment dropout` (the script is its command line).

The original's `--dr` never reached the program layer, so every run had dropout 0.4 on theta, and its
ARTLayer applied that dropout when scoring too: each epoch's TEST accuracy was a noisy draw, with a new mask
for every batch of 32 TEST series (Keras scored `validation_data` at the fit's batch size), and the best of
them was printed. Per dataset, 5 replicate runs (the paper grid's 5 dropout values, which all meant 0.4) x
m 1..10 (where it fits), the original schedule, TEST scored after every epoch both without and with the
dropout (`multi_program.train_programs(monitor_dropout_on=...)`), the same runs:
`<out>/dropout/<dataset>_dropout-at-inference_seed<r>_eps<e>.json` per replicate r.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import reporting
import runs
import utils
from settings import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_LR_DECAY, DEFAULT_OFFSET, ProgramSetting

ORIGINAL_DROPOUT, REPLICATES = 0.4, 5  # what every run of the original had; the paper grid's 5 dropout values
DROPOUT_EXPERIMENT = "dropout-at-inference"


def run_dropout_stack(dataset: str, replicate: int, eps: int, data_dir, out: Path) -> Path:
    """One replicate of `--experiment dropout`: m 1..10 (where it fits) at dropout 0.4, the original schedule,
    TEST scored after every epoch without and with the dropout; writes its record (as `run_stack`'s)."""
    import am_weights
    import multi_program
    import ts_dataloader
    import ts_model

    path = out / "dropout" / f"{runs.fidelity_stack_name(dataset, DROPOUT_EXPERIMENT, replicate, eps)}.json"
    if path.exists():
        return path
    started = time.time()
    utils.setup_tensorflow(seed=0)
    data = ts_dataloader.load_dataset(dataset, data_dir, download=False)
    x_fit, y_fit, x_val, y_val = ts_dataloader.validation_split(data.x_train, data.y_train, 0.2, 0)
    am, info = am_weights.load_am("v2sa")
    am.trainable = False
    maximal = ts_model.many_to_one(data.n_classes, None, "random", 0)[1]
    fits = range(1, min(10, utils.max_segments(data.length, DEFAULT_OFFSET)) + 1)
    settings = [
        ProgramSetting(seed=0, seg=m, dropout=ORIGINAL_DROPOUT, offset=DEFAULT_OFFSET, groups=maximal) for m in fits
    ]
    test = {"test": (data.x_test, data.y_test)}
    results = multi_program.train_programs(
        am,
        (x_fit, y_fit),
        (x_val, y_val),
        settings,
        epochs=eps,
        seed=replicate + 1,  # the replicates differ in their dropout masks only, as the original's grid did
        lr=DEFAULT_LR,
        lr_decay=DEFAULT_LR_DECAY,
        monitor_on=test,
        monitor_dropout_on=test,
    )
    record = {
        "dataset": data.describe(),
        "experiment": DROPOUT_EXPERIMENT,
        "schedule": {"name": "original", "lr": DEFAULT_LR, "lr_decay": DEFAULT_LR_DECAY},
        "replicate": replicate,
        "eps": eps,
        "n_fit": len(y_fit),
        "n_validation": len(y_val),
        "am": {"name": info.name, "sha256": info.sha256},
        "programs": [
            {
                "setting": {k: v for k, v in r["setting"].items() if k != "groups"},
                "history": r["history"],
                "best_epoch": r["best_epoch"],
            }
            for r in results
        ],
        "wall_time_s": round(time.time() - started, 1),
        "versions": utils.versions(),
    }
    utils.atomic_write_json(path, record)
    return path


def dropout_scores(records: list[dict]) -> dict:
    """Per dataset, over all replicates and m: `honest` (the program and epoch of the lowest validation
    cross-entropy, TEST scored without dropout), `original` (the best TEST accuracy over programs and
    epochs, scored without dropout) and `original, scored with dropout` (the same over the noisy scores:
    what the original code printed); `noise`: the mean over programs and epochs of |noisy − plain| TEST
    accuracy; `programs`. Accuracies as fractions."""
    by_dataset: dict = {}
    for record in records:
        by_dataset.setdefault(record["dataset"]["name"], []).extend(record["programs"])
    scores = {}
    for name, programs in by_dataset.items():
        honest = min(programs, key=lambda p: min(p["history"]["val_ce"]))
        plain = np.array([p["history"]["test_accuracy"] for p in programs])
        noisy = np.array([p["history"]["test_dropout_accuracy"] for p in programs])
        scores[name] = {
            "honest": honest["history"]["test_accuracy"][honest["best_epoch"] - 1],
            "original": float(plain.max()),
            "original, scored with dropout": float(noisy.max()),
            "noise": float(np.abs(noisy - plain).mean()),
            "programs": len(programs),
        }
    return scores


def dropout_report(scores: dict, paper: dict, command: str, eps: int, ceilings: dict) -> str:
    """fidelity_dropout.md: per dataset the three numbers of `dropout_scores` beside the paper's V2Sa and the
    TEST file's constant-per-batch ceiling (`ceilings`, percent: `sweep.plan.constant_per_batch_ceiling`), and
    their mean gap to the paper."""
    columns = ["honest", "original", "original, scored with dropout"]
    table, gaps = [], {c: [] for c in columns}
    for name, score in scores.items():
        for c in columns:
            gaps[c].append(100 * score[c] - paper[name])
        table.append(
            [name, f"{paper[name]:.2f}", f"{ceilings[name]:.2f}", str(score["programs"])]
            + [f"{100 * score[c]:.2f}" for c in columns]
            + [f"{100 * score['noise']:.2f}"]
        )
    table.append(["**mean gap to paper (points)**", "", "", "", *(f"{np.mean(gaps[c]):+.2f}" for c in columns), ""])
    lines = [
        "# The original code's dropout: 0.4 on theta always, also when scoring",
        "",
        f"Command: `{command}` (V2Sa frozen, {eps} epochs, {REPLICATES} replicates × m 1..10 where it fits, "
        f"dropout {ORIGINAL_DROPOUT} in training, the original schedule, random maximal map, offset {DEFAULT_OFFSET}, 20 % "
        "of TRAIN for validation). TEST accuracy in percent. *honest*: the program and epoch with the lowest "
        "validation cross-entropy; *original*: the best TEST epoch of the best program, scored without dropout; "
        "*scored with dropout*: the same over TEST scores drawn with the dropout on theta, a mask per batch of "
        f"{DEFAULT_BATCH}, as the original code's ARTLayer scored (and printed the best of); *noise*: the mean "
        "|difference| between the two "
        "scores of an epoch. All from the same runs. *constant per batch*: the best score of a predictor that "
        f"gives one class to each batch of {DEFAULT_BATCH} TEST series in the file's order (what a near-constant "
        "program can print when its class flips with the mask).",
        "",
        *reporting.markdown_table(
            ["dataset", "paper V2Sa", "constant per batch", "programs", *columns, "noise (points)"],
            table,
        ),
    ]
    return "\n".join(lines) + "\n"
