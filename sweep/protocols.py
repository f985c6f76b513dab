"""Scores of the runs per (dataset, table column) under the three protocols, named by what they choose on
TEST: honest (nothing: epoch and setting on validation), setting-on-test (the setting) and original (the
epoch and the setting, what the original code printed); and the Rocket baselines' scores. Accuracies are
fractions (0-1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import utils
from settings import DEFAULT_LR, DEFAULT_LR_DECAY
from sweep.plan import TFA_OPTIMISERS, tfa_key

PROTOCOLS = ("honest", "setting-on-test", "original")
TFA_PROTOCOLS = ("honest", "original")  # one setting: setting-on-test is honest
BASELINE_COLUMNS = {"minirocket": "MiniRocket", "multirocket": "MultiRocket"}  # score key -> table column


def column_key(record: dict) -> str:
    """The table column a run belongs to: the net ("0", "3"), "tfa" (the paper's optimiser) or
    "tfa-adam1e-3" (a TFa optimiser of `TFA_OPTIMISERS` by its recorded lr and decay)."""
    cfg = record["config"]
    if str(cfg.get("mod")) != "tfa":
        return str(cfg["net"])
    for name, (lr, lr_decay, _) in TFA_OPTIMISERS.items():
        if cfg.get("lr", DEFAULT_LR) == lr and cfg.get("lr_decay", DEFAULT_LR_DECAY) == lr_decay:
            return tfa_key(name)
    return f"tfa-lr{cfg['lr']:g}-decay{cfg['lr_decay']:g}"


def _mean_curve(runs: list[dict], key: str) -> np.ndarray | None:
    """The per-epoch `history[key]` averaged over a setting's runs (its folds); None if a run lacks it."""
    curves = [r.get("history", {}).get(key) for r in runs]
    if any(not c for c in curves) or len({len(c) for c in curves}) != 1:
        return None
    return np.mean(np.asarray(curves, dtype=float), axis=0)


def protocol_scores(records: list[dict]) -> dict:
    """Per (dataset, column): TEST accuracies per seed under the three protocols (see the module docstring).

    A setting's score is the mean over its folds (one "fold" without --folds); its per-epoch TEST curve is
    the mean of its folds' `history.test_accuracy`. Per seed:
    - honest: the setting with the lowest (fold-mean) validation cross-entropy, its (fold-mean) TEST
      accuracy at the epochs chosen on validation;
    - setting-on-test: the highest (fold-mean) TEST accuracy over the settings, epochs chosen on validation;
    - original: the highest TEST accuracy over the settings AND the epochs (of the fold-mean curve).
      Only where every run of the seed has the per-epoch TEST history (older records have none).
    Ties between settings: honest takes the smaller (dr, seg), setting-on-test and original the larger; within
    a curve original takes the earlier epoch.
    Returns {(dataset, column): {"honest": [...], "setting-on-test": [...], "original": [...] (only if
    every seed has it), "settings": [...] (the honest choice per seed), "test_settings": [...] (the
    setting-on-test choice per seed), "original_choice": [{"dr", "seg", "epoch", "tied", "settings"} per seed;
    "tied": how many of the seed's "settings" reach the chosen TEST accuracy at some epoch], "seeds": [...],
    "n_settings": settings
    per seed (the most of any seed), "runs": n (records, folds included), "seconds": s}}, lists in `seeds`
    order.
    """
    groups: dict = {}
    for rec in records:
        cfg = rec["config"]
        key = (rec["dataset"]["name"], column_key(rec))
        groups.setdefault(key, {}).setdefault(cfg["seed"], {}).setdefault((cfg["dr"], cfg["seg"]), []).append(rec)
    scores = {}
    for key, by_seed in groups.items():
        result = {
            "honest": [],
            "setting-on-test": [],
            "original": [],
            "settings": [],
            "test_settings": [],
            "original_choice": [],
            "seeds": sorted(by_seed),
            "n_settings": max(len(settings) for settings in by_seed.values()),
            "runs": 0,
            "seconds": 0.0,
        }
        for seed in result["seeds"]:
            summary, curves = {}, {}
            for setting, members in sorted(by_seed[seed].items()):
                result["runs"] += len(members)
                result["seconds"] += sum(r["wall_time_s"]["total"] for r in members)
                summary[setting] = (
                    float(np.mean([r["metrics"].get("validation", {}).get("ce", np.inf) for r in members])),
                    float(np.mean([r["metrics"]["test"]["accuracy"] for r in members])),
                )
                curves[setting] = _mean_curve(members, "test_accuracy")
            choice = min(summary, key=lambda s: (summary[s][0], s))
            result["honest"].append(summary[choice][1])
            result["settings"].append({"dr": choice[0], "seg": choice[1]})
            on_test = max(summary, key=lambda s: (summary[s][1], s))
            result["setting-on-test"].append(summary[on_test][1])
            result["test_settings"].append({"dr": on_test[0], "seg": on_test[1]})
            if all(c is not None for c in curves.values()):
                best = max(curves, key=lambda s: (curves[s].max(), s))
                epoch = int(np.argmax(curves[best]))
                peak = curves[best][epoch]
                result["original"].append(float(peak))
                result["original_choice"].append(
                    {
                        "dr": best[0],
                        "seg": best[1],
                        "epoch": epoch + 1,
                        "tied": int(sum(c.max() == peak for c in curves.values())),
                        "settings": len(curves),
                    }
                )
        if len(result["original"]) < len(result["seeds"]):
            del result["original"], result["original_choice"]
        scores[key] = result
    return scores


def first_epochs(record: dict, epochs: int) -> dict:
    """The run as its first `epochs` epochs left it: the history cut there, and the validation and TEST scores
    at the epoch the run's own rule chooses among those (the lowest validation cross-entropy, the earlier on a
    tie, as `fitting.is_better`; the last epoch without validation data). For a stack this is exactly the
    shorter run's record (a longer stack begins with the shorter stack's epochs), less what is measured only
    at the end (the TRAIN scores, the SWD). Needs the per-epoch TEST history.

    Raises:
        ValueError: the record has no per-epoch TEST history, or fewer than `epochs` epochs.
    """
    import fitting  # the single run's rule (fitting imports Keras: not at import time of the sweep's CLI)
    import runs

    history = record.get("history", {})
    if len(history.get("test_accuracy") or []) < epochs:
        raise ValueError(f"{record.get('run', 'a run')}: no per-epoch TEST history of {epochs} epochs")
    cut = {key: list(values[:epochs]) for key, values in history.items()}
    chosen, best = epochs - 1, None
    for epoch, value in enumerate(cut.get("val_ce") or []):
        if fitting.is_better(value, best, fitting.MODES["val_ce"]):
            chosen, best = epoch, value
    metrics = {"test": {key: cut[f"test_{key}"][chosen] for key in ("loss", "accuracy", "ce") if f"test_{key}" in cut}}
    if best is not None:
        metrics["validation"] = {
            key: cut[f"val_{key}"][chosen] for key in ("ce", "accuracy", "loss") if f"val_{key}" in cut
        }
    return {
        **record,
        "config": {**record["config"], "eps": epochs},
        "history": cut,
        "metrics": metrics,
        "selection": runs.selection_record("val_ce" if best is not None else None, chosen + 1, best, epochs),
        "first_epochs_of": record.get("run"),
    }


def baseline_scores(rows: list[dict], seeds: int, out: str, data_dir, methods=("minirocket",)) -> dict:
    """Each Rocket baseline's test accuracy per (dataset, method): {"values": [...] per seed, "seconds": s}.

    `methods`: keys of `baselines.METHODS`. Each (dataset, method, seed) result is kept in
    `<out>/baselines/` and reused, like the runs. Without aeon installed, prints why and returns {}.
    """
    import importlib.util

    import baselines
    import ts_dataloader

    if not methods:
        return {}
    if importlib.util.find_spec("aeon") is None:
        print("Rocket baseline columns left out: aeon is not installed (pip install -r requirements-extras.txt)")
        return {}
    folder = Path(out) / "baselines"
    scores = {}
    for row in rows:
        for method in methods:
            label = BASELINE_COLUMNS[method]
            values, seconds = [], 0.0
            for seed in range(seeds):
                path = folder / f"{row['ucr_name']}_{method}_seed{seed}.json"
                if not path.exists():
                    try:
                        data = ts_dataloader.load_dataset(row["ucr_name"], data_dir, download=False)
                        result = baselines.rocket(data, seed, method)
                    except Exception as err:  # this dataset only
                        print(f"{row['ucr_name']} {label} failed: {type(err).__name__}: {err}".splitlines()[0])
                        break
                    utils.atomic_write_json(path, {"dataset": row["ucr_name"], **result, "versions": utils.versions()})
                    print(
                        f"{row['ucr_name']} {label} seed{seed}: test_acc {result['accuracy']:.4f} "
                        f"({result['fit_seconds']:.0f}s)",
                        flush=True,
                    )
                result = json.loads(path.read_text())
                values.append(result["accuracy"])
                seconds += result["fit_seconds"]
            if len(values) == seeds:
                scores[(row["ucr_name"], method)] = {"values": values, "seconds": seconds}
    return scores
