"""Run records: their schema, their names, rebuilding a saved run, and the command-line flags that name one.

A run record is the JSON file every V2S run writes (`training.run`, and `reproduce.py`'s program stacks
through `run_record`): the real interface between training, the tables and the interpretation tools.
Its fields are `RunRecord` below, explained one by one in docs/records.md.

    model, record, data = load_run("Coffee_net0_mod1_map18first_seg3_dr4_eps20_seed0")
    model, record, data = load_run_from_flags(args)     # a script's --weight etc. (`add_run_flags`)

Keras and the AMs are imported when a model is rebuilt, so a script can import this module before
`utils.setup_tensorflow()`.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import NotRequired, TypedDict

import numpy as np

import utils
import validation
from settings import DEFAULT_OFFSET, DEFAULT_PRECISION
from utils import PROJECT_DIR, V2SError

RESULTS_DIR = PROJECT_DIR / "results"  # default home of run records (and figures)
WEIGHT_DIR = PROJECT_DIR / "weight"  # default home of trained weights
LEGACY_OFFSET = 0  # the offset of records written before `offset` was recorded (they were trained at 0)


class RunRecord(TypedDict):
    """One run's JSON record, fields in the order they are written (docs/records.md explains each).

    Accuracies are fractions, losses and cross-entropies nats, times seconds.
    """

    run: str  # the run name, also the file stem
    config: dict  # every field of training.V2SConfig (named like the CLI flags) + `dropout` (rate) and `mapping`
    command: list[str]  # sys.argv of the writing process
    dataset: dict  # ts_dataloader.Dataset.describe(): name, source, files, length, n_classes, labels, counts
    n_fit: int  # TRAIN series trained on
    n_validation: int  # TRAIN series held out to choose the epoch
    label_mapping: dict  # type, per_class, groups (source indices per target), groups_named; all null for TFa
    am: dict  # the source AM: name, path, sha256, source, original
    trainable_params: int
    history: dict  # per-epoch lists: loss, accuracy, ce, val_*, test_ce, test_accuracy (reported only), swd
    selection: dict  # criterion (words), epoch (1-based), value (the monitored quantity; absent for the last epoch)
    metrics: dict  # train/validation/test {loss, accuracy, ce} at the chosen epoch, test_majority_baseline, swd
    weights: str | None  # saved weights, or null
    wall_time_s: dict  # fit, total (sweep: stack_total)
    samples_per_s: float
    swd: NotRequired[dict]  # single run with --swd: how the per-epoch SWD was computed
    trained_with: NotRequired[dict]  # sweep: the program stack
    versions: dict  # utils.versions()
    plot: NotRequired[str]  # single run, when plotting: the curves PNG


def run_record(
    config,
    data,
    *,
    run_name: str,
    mapping: int | None,
    groups: list[list[int]] | None,
    n_fit: int,
    n_validation: int,
    am_info: dict,
    trainable_params: int,
    history: dict,
    selection: dict,
    metrics: dict,
    weights: str | None,
    wall_time_s: dict,
    samples_per_s: float,
    **extra,
) -> RunRecord:
    """The record of one run (`training.V2SConfig` `config`, `ts_dataloader.Dataset` `data`), the same for
    `v2s_main.py` and `reproduce.py`'s program stacks.

    `extra` adds path-specific fields (`swd` here; `trained_with` for a stack), placed before `versions`.
    """
    return {
        "run": run_name,
        "config": {**dataclasses.asdict(config), "dropout": None if config.tfa else config.dropout, "mapping": mapping},
        "command": sys.argv,
        "dataset": data.describe(),
        "n_fit": n_fit,
        "n_validation": n_validation,
        "label_mapping": label_map_record(config, mapping, groups),
        "am": am_info,
        "trainable_params": trainable_params,
        "history": history,
        "selection": selection,
        "metrics": metrics,
        "weights": weights,
        "wall_time_s": wall_time_s,
        "samples_per_s": samples_per_s,
        **extra,
        "versions": utils.versions(),
    }


def label_map_record(config, mapping: int | None, groups: list[list[int]] | None) -> dict:
    """The record's `label_mapping`: the many-to-one map by index and name, or TFa's dense head."""
    if config.tfa:
        return {
            "type": "none (TFa: dense head on the AM's 36 outputs)",
            "per_class": None,
            "groups": None,
            "groups_named": None,
        }
    return {
        "type": "one-to-one" if str(config.mod) == "0" else config.map_type,
        "per_class": mapping,
        "groups": groups,
        "groups_named": [[source_name(s) for s in g] for g in groups],
    }


def source_name(index: int) -> str:
    """The word of source class `index` (`speech_models.SOURCE_CLASSES`)."""
    import speech_models

    return speech_models.SOURCE_CLASSES[index]


CRITERIA = {
    "val_ce": "lowest validation loss (cross-entropy)",
    "test_accuracy": "highest TEST accuracy (--select-on-test: the original's optimistic protocol)",
}


def selection_record(monitor: str | None, epoch: int | None, value: float | None, epochs: int) -> dict:
    """The record's `selection`: how the epoch was chosen (`monitor`: "val_ce", "test_accuracy" or None
    for the last of `epochs`), the chosen epoch (1-based) and its monitored value."""
    if monitor is None:
        return {"criterion": "last epoch (no validation split)", "epoch": epochs}
    return {"criterion": CRITERIA[monitor], "epoch": epoch, "value": value}


# ----------------------------------------------------------------------------------------------
# Names: a single run's (v2s_main.py), a sweep run's (reproduce.py) and a fidelity stack's


def single_run_name(config, dataset_name: str, mapping: int | None) -> str:
    """`<Name>_net<N>_mod<M>_map<m><map-type>_seg<S>[_off<O>]_dr<D>[_mask]_eps<E>_seed<s>[_<precision>]` (TFa:
    `<Name>_net<N>_modtfa[_off<O>]_eps<E>_seed<s>`); `_off<O>` only away from the default offset, the
    precision only if it is not fp32."""
    mask = "_mask" if config.mask else ""
    precision = "" if getattr(config, "precision", DEFAULT_PRECISION) == DEFAULT_PRECISION else f"_{config.precision}"
    offset = f"_off{config.offset}" if config.offset != DEFAULT_OFFSET else ""
    if config.tfa:
        return f"{dataset_name}_net{config.net}_modtfa{offset}_eps{config.eps}_seed{config.seed}"
    return (
        f"{dataset_name}_net{config.net}_mod{config.mod}_map{mapping}{config.map_type}_seg{config.seg}{offset}"
        f"_dr{config.dr:g}{mask}_eps{config.eps}_seed{config.seed}{precision}"
    )


def sweep_run_name(
    dataset: str,
    net: str,
    dr: int,
    seg: int,
    seed: int,
    eps: int,
    mod: str = "1",
    optimiser: str = "paper",
    fold: int | None = None,
    folds: int = 0,
    precision: str = DEFAULT_PRECISION,
) -> str:
    """`<Name>_net<N>_dr<D>_seg<S>_seed<s>_eps<E>[_fold<f>of<k>][_<precision>]` (TFa: `<Name>_net<N>_tfa[-<optimiser>]
    _seed<s>_eps<E>…`, the optimiser named unless it is the paper's; the precision unless it is fp32)."""
    suffix = f"_fold{fold}of{folds}" if fold is not None else ""
    suffix += "" if precision == DEFAULT_PRECISION else f"_{precision}"
    if mod == "tfa":
        name = "" if optimiser == "paper" else f"-{optimiser}"
        return f"{dataset}_net{net}_tfa{name}_seed{seed}_eps{eps}{suffix}"
    return f"{dataset}_net{net}_dr{dr}_seg{seg}_seed{seed}_eps{eps}{suffix}"


def fidelity_stack_name(dataset: str, schedule: str, seed: int, eps: int) -> str:
    """`<Name>_<schedule>_seed<s>_eps<E>`: one stack of the fidelity ablation (`fidelity.py`)."""
    return f"{dataset}_{schedule}_seed{seed}_eps{eps}"


# ----------------------------------------------------------------------------------------------
# Saved runs


def find_run(weight: str, weight_dir: str | None = None, results_dir: str | None = None) -> tuple[Path, Path]:
    """Locate a saved run from a weights path, a file name in weight/, or a run name.

    Returns:
        (weights file, its results JSON).
    """
    weight_dir = Path(weight_dir or WEIGHT_DIR)
    results_dir = Path(results_dir or RESULTS_DIR)
    name = Path(weight).name.removesuffix(".weights.h5")
    candidates = [Path(weight), weight_dir / Path(weight).name, weight_dir / f"{name}.weights.h5"]
    weights = next((p for p in candidates if p.is_file()), None)
    tfa_model = weight_dir / f"{name}.keras"
    if weights is None and tfa_model.is_file():
        raise V2SError(
            f"{name} is a TFa run (whole model {tfa_model}), not a V2S run: "
            f"pass it to tsne_v2s.py --tfa-weight {tfa_model}"
        )
    if weights is None:
        raise V2SError(f"weights {weight!r} not found (looked for {', '.join(str(p) for p in candidates)})")
    records = [
        weights.with_name(f"{name}.json"),
        results_dir / f"{name}.json",
        weights.parent.parent / "results" / f"{name}.json",
    ]
    record = next((p for p in records if p.is_file()), None)
    if record is None:
        raise V2SError(
            f"no run record {name}.json beside {weights} or in {results_dir}: it holds the settings needed to rebuild the model"
        )
    return weights, record


def read_record(path) -> dict:
    """A run record with what rebuilding its model needs (`config`, `dataset`, `label_mapping.groups`).

    Raises:
        V2SError: not JSON, or a needed field is missing.
    """
    try:
        record = json.loads(Path(path).read_text())
        missing = [key for key in ("config", "dataset", "label_mapping") if key not in record]
        if not missing and "groups" not in record["label_mapping"]:
            missing = ["label_mapping.groups"]
    except (OSError, ValueError, TypeError) as err:
        raise V2SError(f"{path}: not a v2s run record ({type(err).__name__}: {err})") from None
    if missing:
        raise V2SError(f"{path}: not a v2s run record (no {', '.join(missing)})")
    return record


def check_run(record: dict, dataset=None, mapping=None, net=None) -> None:
    """Raise V2SError if a flag the user gave disagrees with the saved run's record.

    Args:
        dataset: index or name; mapping: source labels per target; net: 0/v2sa, 3/v2su, ...
    """
    import ts_dataloader

    run, cfg = record.get("run", "?"), record["config"]
    problems = []
    if dataset is not None:
        wanted, saved = ts_dataloader.resolve_name(dataset), record["dataset"]["name"]
        if wanted.lower() != saved.lower():
            problems.append(f"--dataset {dataset} ({wanted}) but the run was trained on {saved}")
    if mapping is not None:
        saved = record["label_mapping"]["per_class"]
        if int(mapping) != int(saved):
            problems.append(f"--mapping {mapping} but the run was trained with mapping {saved}")
    if net is not None:
        wanted, saved = validation.net_name(net), validation.net_name(cfg["net"])
        if wanted != saved:
            problems.append(f"--net {net} ({wanted}) but the run reprograms {saved}")
    if problems:
        raise V2SError(
            f"weights of run {run} do not match: " + "; ".join(problems) + " (drop the flag or choose matching weights)"
        )


def load_run(
    weight: str,
    weight_dir: str | None = None,
    results_dir: str | None = None,
    data_dir=None,
    *,
    dataset=None,
    mapping=None,
    net=None,
):
    """Rebuild a saved V2S model from its run record and load its trained weights (AM included).

    Args:
        weight: a weights path, a file name in `weight_dir`, or a run name (`find_run`).
        data_dir: where to read the dataset; default the data directory recorded in the run.
        dataset, mapping, net: optional checks of the user's flags against the record (`check_run`).
    Returns:
        (model, record, dataset).
    Raises:
        V2SError: no such run, a flag that disagrees, or data that is not the run's (name or length).
    """
    utils.setup_tensorflow()
    import am_weights
    import speech_models
    import ts_dataloader
    import ts_model

    weights, record_path = find_run(weight, weight_dir, results_dir)
    record = read_record(record_path)
    check_run(record, dataset, mapping, net)
    cfg = record["config"]
    data = ts_dataloader.load_dataset(cfg["dataset"], data_dir if data_dir is not None else cfg["data_dir"])
    if data.name.lower() != record["dataset"]["name"].lower() or data.length != record["dataset"]["length"]:
        raise V2SError(
            f"dataset read from {data.source} ({data.name}, length {data.length}) is not the run's "
            f"({record['dataset']['name']}, length {record['dataset']['length']})"
        )
    mask = ts_model.MaskSpec(data.length, cfg["seg"], cfg.get("offset", LEGACY_OFFSET)) if cfg["mask"] else None
    am = speech_models.build_am(validation.net_name(cfg["net"]))
    model = ts_model.build_v2s(
        am, data.n_classes, record["label_mapping"]["groups"], cfg["mod"], cfg["dropout"], cfg["l2"], mask
    )
    am_weights.load_weights(model, weights)
    return model, record, data


def tile_for_run(record: dict, x: np.ndarray) -> np.ndarray:
    """Series (n, L) -> (n, 16000) waveforms tiled as the run was trained (its seg and offset), zero elsewhere."""
    import ts_model

    cfg = record["config"]
    return ts_model.tile_segments(x, cfg["seg"], cfg.get("offset", LEGACY_OFFSET))


def class_matrix(record: dict) -> np.ndarray:
    """(36, K) label map of a run: target probability = source probabilities @ matrix."""
    import ts_model

    return ts_model.mapping_matrix(record["label_mapping"]["groups"])


# ----------------------------------------------------------------------------------------------
# The command-line flags that name one saved run (cam_v2s.py, tsne_v2s.py)

NET_CHECK_HELP = "optional check: the run's AM (0/v2sa, 3/v2su); a different one is an error"


def add_run_flags(parser, *, weight_required: bool, net_help: str = NET_CHECK_HELP) -> None:
    """Add the flags `load_run_from_flags` reads to an argparse `parser`: --weight (the run), --dataset,
    --mapping and --net (optional checks of it), --data-dir, --weight-dir and --results-dir (where its files are).

    Args:
        weight_required: --weight must be given (False for a script that has another input instead).
        net_help: the help of --net, for a script that also uses it beyond the check.
    """
    parser.add_argument(
        "--weight",
        required=weight_required,
        default=None,
        help="a saved V2S run: a .weights.h5 path, a file name in weight/, or a run name; its "
        "results/<run>.json must exist (it holds the settings to rebuild the model)",
    )
    parser.add_argument(
        "--dataset", default=None, help="optional check: the run's dataset (index or name); a different one is an error"
    )
    parser.add_argument(
        "--mapping",
        type=int,
        default=None,
        help="optional check: the run's source labels per target label; a different one is an error",
    )
    parser.add_argument("--net", default=None, help=net_help)
    parser.add_argument(
        "--data-dir", default=None, help="where to read the dataset (default: the data directory recorded in the run)"
    )
    parser.add_argument("--weight-dir", default=None, help="where to look for --weight names (default weight/)")
    parser.add_argument(
        "--results-dir", default=None, help="where run records are read and the figure written (default results/)"
    )


def check_run_flags(args) -> None:
    """Check the flags of `add_run_flags` and the script's --out (its output file) before anything heavy
    runs: --mapping at least 1, --net a source AM; --out a file that can be written, else --results-dir a
    folder that can be made (nothing is created).

    Raises:
        V2SError: one line naming the flag.
    """
    if args.mapping is not None:
        validation.at_least("--mapping", args.mapping, 1, whole=True)
    if args.net is not None:
        validation.net_name(args.net)
    validation.data_dir("--data-dir", args.data_dir)
    if args.out:
        validation.output_file("--out", args.out)
    elif args.results_dir:
        validation.creatable_dir("--results-dir", args.results_dir)


def load_run_from_flags(args):
    """`load_run` of the saved run the flags of `add_run_flags` name: --weight looked up in --weight-dir and
    --results-dir, its dataset read from --data-dir, checked against --dataset, --mapping and --net.

    Returns:
        (model, record, dataset).
    """
    return load_run(
        args.weight,
        args.weight_dir,
        args.results_dir,
        args.data_dir,
        dataset=args.dataset,
        mapping=args.mapping,
        net=args.net,
    )


def output_path(out: str | None, results_dir: str | None, name: str) -> Path:
    """A script's output file: `out` if given, else file `name` in `results_dir` (default results/)."""
    return Path(out) if out else Path(results_dir or RESULTS_DIR) / name
