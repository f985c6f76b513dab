"""Reproduce the paper's Table 2 (and Table 3): sweep V2S over datasets × AMs × settings × seeds, then tabulate.

    python reproduce.py --table 2 --grid small --seeds 3 --eps 100 --nets 0
    python reproduce.py --table 2 --datasets ECG200,Wine --grid paper --jobs 2
    python reproduce.py --table 2 --datasets Coffee --tfa --backend ray
    python reproduce.py --table 3                      # source loss and SWD from the Table-2 runs

Every (dataset, net, dropout, segments, seed[, fold]) run writes its own record (the same JSON as
v2s_main.py) under `<out>/runs/`; re-running skips finished runs, so an interrupted sweep resumes, and a
run that crashes is recorded as `<run>.error.json` while the sweep goes on. V2S runs that share a
dataset, AM, seed and validation split are trained together, `--programs` at a time, as one stack of
programs (`multi_program.train_programs`: exactly independent runs, one frozen-AM call per step).
Every run also scores TEST after every epoch (`history.test_accuracy`, `history.test_ce`), read only by
the optimistic protocols. Three protocols are computed from the same runs, named by what they choose on
TEST:

- honest (default): nothing. Per seed, the epoch and the setting with the lowest validation
  cross-entropy (the validation split is carved from TRAIN: 20 % stratified, or k folds with `--folds k`,
  the protocol the paper's text describes); its TEST accuracy (with folds: the mean over the k fold
  models); mean ± std over seeds.
- setting-on-test: the epoch on validation, the setting with the best TEST accuracy.
- original: the epoch AND the setting with the best TEST accuracy — what the original code printed
  ("Best Val. Acc" with TEST as validation data) and what its checkpoint names show.

`--grid` and `--seeds` take one value for every AM or one per AM (`--grid 0=paper,3=small --seeds 0=1,3=3`);
TFa runs (`--tfa`: the paper's optimiser and Adam 1e-3) take the largest seed count unless `tfa=N` is given.

The last line printed is `table=<path of table2.md>` (or table3.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import claims
import probes
import reporting
import runs
import utils
import validation
from settings import DEFAULT_OFFSET, N_SOURCE
from utils import V2SError

GRIDS = {
    "paper": {"dr": [0, 1, 2, 3, 4], "seg": list(range(1, 11))},
    "small": {"dr": [0, 4], "seg": [1, 10]},
}
NET_NAMES = {"0": "V2Sa", "3": "V2Su"}
PROTOCOLS = ("honest", "setting-on-test", "original")
# TFa's optimisers: the paper's (the V2S one: Adam 0.05, inverse-time decay 0.48 per step), which collapses to
# a constant predictor on most sets, and a fair fine-tuning baseline (Adam 1e-3, constant). (lr, lr_decay, column)
TFA_OPTIMISERS = {"paper": (0.05, 0.48, "ours TFa"), "adam1e-3": (1e-3, 0.0, "ours TFa Adam 1e-3")}
TFA_PROTOCOLS = ("honest", "original")  # one setting: setting-on-test is honest


def tfa_key(optimiser: str) -> str:
    """The score key (table column group) of TFa runs at a `TFA_OPTIMISERS` optimiser: "tfa", "tfa-adam1e-3"."""
    return "tfa" if optimiser == "paper" else f"tfa-{optimiser}"


BASELINE_COLUMNS = {"minirocket": "MiniRocket", "multirocket": "MultiRocket"}  # score key -> table column


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: a V2S program (mod "1") or the TFa baseline (mod "tfa", no dropout/segments).

    fold: None for the single stratified validation split (`--val-split` 20 %), else the validation
    fold 0..folds-1 of a stratified `folds`-fold split of TRAIN.
    """

    dataset: str
    net: str
    dr: int
    seg: int
    seed: int
    eps: int
    data_dir: str | None
    mod: str = "1"
    fold: int | None = None
    folds: int = 0
    n_train: int = 0  # TRAIN series (0: unknown), weights the progress bar and the order of parallel stacks
    optimiser: str = "paper"  # TFa only: a key of TFA_OPTIMISERS

    @property
    def cost(self) -> int:
        """Series seen in training (TRAIN size x epochs; 1 x epochs if unknown): the progress bar's unit."""
        return max(self.n_train, 1) * self.eps

    @property
    def name(self) -> str:
        """The run's name and record file stem (`runs.sweep_run_name`)."""
        return runs.sweep_run_name(
            self.dataset,
            self.net,
            self.dr,
            self.seg,
            self.seed,
            self.eps,
            self.mod,
            self.optimiser,
            self.fold,
            self.folds,
        )

    @property
    def group(self) -> tuple:
        """Runs with the same group share their data split and can be trained as one program stack."""
        return (self.dataset, self.net, self.mod, self.seed, self.fold, self.folds, self.eps, self.data_dir)


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--table",
        type=int,
        default=2,
        choices=[2, 3],
        help="2: accuracies (runs the sweep); 3: source loss and SWD of the runs already in --out",
    )
    parser.add_argument(
        "--datasets",
        default="all",
        help="comma-separated Table-2 names, or any UCR dataset in --data-dir (its paper columns stay "
        "empty), or 'all' (the 30 of Table 2)",
    )
    parser.add_argument("--nets", default="0", help="comma-separated source AMs: 0 V2Sa, 3 V2Su")
    parser.add_argument(
        "--seeds",
        default="3",
        help="seeds 0..N-1 per setting: N for every AM, or per AM, e.g. 0=1,3=3 (tfa=N for TFa; default the largest)",
    )
    parser.add_argument("--eps", type=int, default=100, help="epochs per run (the paper: 100)")
    parser.add_argument(
        "--grid",
        default="small",
        help="paper: dropout {0,.1,.2,.3,.4} x segments 1..10; small: dropout {0,.4} x segments {1,10}; "
        "one grid for every AM, or per AM, e.g. 0=paper,3=small",
    )
    parser.add_argument(
        "--protocol",
        default="honest",
        choices=PROTOCOLS,
        help="which protocol leads the printed table (all three are always computed and written)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="k >= 2: choose the setting on k-fold cross-validation of TRAIN (k runs per setting "
        "and seed); 0: one stratified 20%% validation split",
    )
    parser.add_argument(
        "--tfa",
        action="store_true",
        help="also train the TFa baseline (V2Sa fine-tuned with a dense head, no program) per seed, "
        "twice: at the paper's optimiser and at Adam 1e-3 constant (a fair fine-tuning baseline)",
    )
    parser.add_argument(
        "--multirocket",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="MultiRocket baseline column (aeon; same TRAIN/TEST splits, per seed)",
    )
    parser.add_argument(
        "--minirocket",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="MiniRocket baseline column (aeon; same TRAIN/TEST splits, per seed)",
    )
    parser.add_argument(
        "--programs",
        type=int,
        default=4,
        help="programs trained at once per stack (runs of one dataset, AM and seed); 1 = one at a time",
    )
    parser.add_argument("--data-dir", default=None, help="UCR folder (default $V2S_DATA_DIR or Datasets/)")
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes (each gets cores/jobs threads)")
    parser.add_argument(
        "--backend",
        default="local",
        choices=["local", "ray"],
        help="local: this process or --jobs processes; ray: each stack of runs is a Ray task",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="Ray cluster to join (e.g. auto or ray://host:10001); default: start a local Ray "
        "with --jobs CPUs. Every node must see --out (the single source of truth) and the data",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the tables from the records already in --out; train nothing"
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run again the runs that have an error record (by default a failed run is not retried)",
    )
    parser.add_argument("--out", default=str(utils.PROJECT_DIR / "results" / "table2"), help="output folder")
    return parser.parse_args(argv)


PAPER_COLUMNS = ("SOTA", "V2Sa", "V2Su", "TFa")


def select_datasets(text: str, data_dir: str | None) -> tuple[list[dict], list[tuple[str, str]]]:
    """The rows to run, and (name, reason) for those skipped because the data is absent.

    Table-2 datasets by the paper's or the UCR spelling; any other name must be a UCR dataset in the data
    folder, tabled with empty paper columns (so a user can grow the table).
    """
    import paper_tables
    import ts_dataloader

    rows = paper_tables.table2()
    if text != "all":
        wanted = list(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))
        by_name = {}
        for row in rows:
            by_name[row["dataset"].lower()] = row
            by_name[row["ucr_name"].lower()] = row
        picked, unknown = [], []
        for name in wanted:
            if name.lower() in by_name:
                picked.append(by_name[name.lower()])
                continue
            try:
                data = ts_dataloader.load_dataset(name, data_dir, download=False)
            except V2SError:
                unknown.append(name)
                continue
            picked.append(
                {
                    "dataset": data.name,
                    "ucr_name": data.name,
                    "input_size": data.length,
                    "n_classes": data.n_classes,
                    **dict.fromkeys(PAPER_COLUMNS),
                    "orig_index": None,
                }
            )
        if unknown:
            raise V2SError(f"not in the paper's Table 2 and not a UCR dataset in the data folder: {', '.join(unknown)}")
        rows = picked
    chosen, skipped = [], []
    for row in rows:
        try:
            data = ts_dataloader.load_dataset(row["ucr_name"], data_dir, download=False)
            shares = np.bincount(data.y_test, minlength=data.n_classes) / len(data.y_test) * 100
            chosen.append(
                {
                    **row,
                    "length": data.length,
                    "n_train": len(data.y_train),
                    "test_shares": [round(float(v), 2) for v in shares],
                }
            )
        except V2SError as err:
            skipped.append((row["ucr_name"], str(err)))
    return chosen, skipped


def per_net(text: str, nets: list[str], flag: str, parse, extra: tuple[str, ...] = ()) -> dict:
    """`--grid`/`--seeds` as {net: value}: one value for every net ("paper", "3"), or per net
    ("0=paper,3=small"), every net of `nets` given; keys in `extra` (e.g. "tfa") are allowed too."""
    text = str(text).strip()
    if "=" not in text:
        value = parse(text)
        return dict.fromkeys(nets, value)
    values = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in (*nets, *extra):
            raise V2SError(f"{flag} {text}: {key!r} is not one of the nets in --nets ({','.join(nets)})")
        values[key] = parse(value.strip())
    missing = [net for net in nets if net not in values]
    if missing:
        raise V2SError(f"{flag} {text}: no value for net {', '.join(missing)}")
    return values


def plan_runs(
    rows: list[dict],
    nets: list[str],
    grid: str | dict,
    seeds: int | dict,
    eps: int,
    data_dir,
    folds: int = 0,
    tfa: bool = False,
) -> list[RunSpec]:
    """Every (dataset, net, dropout, segments, seed, fold) run of the grid whose segments fit the window,
    plus, with `tfa`, one TFa run per (dataset, seed, fold) and TFa optimiser. `grid` and `seeds` are one
    value or {net: value} (`seeds` may also hold "tfa"; default the largest). Datasets come cheapest
    first (TRAIN size × epochs), so the table fills row by row.

    Segment counts too large for a series (e.g. 10 copies of HandOutlines' 2709 samples) are left
    out of the plan and printed.
    """
    grids = grid if isinstance(grid, dict) else dict.fromkeys(nets, grid)
    counts = seeds if isinstance(seeds, dict) else dict.fromkeys(nets, seeds)
    tfa_seeds = counts.get("tfa", max(counts[net] for net in nets))
    offset = DEFAULT_OFFSET  # every run's (config_for keeps V2SConfig's default offset)
    fold_ids = list(range(folds)) if folds else [None]
    specs = []
    for row in sorted(rows, key=lambda r: (r.get("n_train", 0), r["ucr_name"])):
        fits = {}
        for net in nets:
            segs = GRIDS[grids[net]]["seg"]
            fits[net] = [seg for seg in segs if seg <= (utils.WAVE_LEN - offset) // row["length"]]
            if len(fits[net]) < len(segs):
                print(
                    f"{row['ucr_name']}: segments {sorted(set(segs) - set(fits[net]))} do not fit "
                    f"{row['length']}-sample series in the window; left out"
                )
        for seed in range(max(tfa_seeds if tfa else 0, *(counts[net] for net in nets))):
            for fold in fold_ids:
                common = {"fold": fold, "folds": folds, "n_train": row.get("n_train", 0)}
                specs += [
                    RunSpec(row["ucr_name"], net, dr, seg, seed, eps, data_dir, **common)
                    for net in nets
                    if seed < counts[net]
                    for dr in GRIDS[grids[net]]["dr"]
                    for seg in fits[net]
                ]
                if tfa and seed < tfa_seeds:
                    specs += [
                        RunSpec(row["ucr_name"], "0", 0, 1, seed, eps, data_dir, mod="tfa", optimiser=name, **common)
                        for name in TFA_OPTIMISERS
                    ]
    return specs


def group_runs(specs: list[RunSpec], programs: int) -> list[list[RunSpec]]:
    """Stacks to train: V2S runs of one group, at most `programs` per stack; a TFa run alone. Plan order kept."""
    groups: dict = {}
    for spec in specs:
        groups.setdefault(spec.group, []).append(spec)
    stacks = []
    for members in groups.values():
        size = 1 if members[0].mod == "tfa" else max(1, programs)
        stacks += [members[i : i + size] for i in range(0, len(members), size)]
    return stacks


def schedule(stacks: list[list[RunSpec]], parallel: bool) -> list[list[RunSpec]]:
    """The order stacks are started in. One worker: plan order (cheapest first, so the table grows fast).
    Several workers: costliest first (TRAIN series x epochs), so no big stack starts last and runs alone
    while the other workers idle (longest-processing-time-first scheduling)."""
    if not parallel:
        return stacks
    return sorted(stacks, key=lambda stack: sum(spec.cost for spec in stack), reverse=True)


def config_for(spec: RunSpec, out: str):
    """The `training.V2SConfig` of a run: the paper's random many-to-one map, records under `<out>/runs`."""
    import training

    optimiser = {}
    if spec.mod == "tfa":
        lr, lr_decay, _ = TFA_OPTIMISERS[spec.optimiser]
        optimiser = {"lr": lr, "lr_decay": lr_decay}
    return training.V2SConfig(
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        eps=spec.eps,
        net=spec.net,
        mod=spec.mod,
        dr=spec.dr,
        seg=spec.seg,
        seed=spec.seed,
        map_type="random",
        **optimiser,
        results_dir=str(Path(out) / "runs"),
        weight_dir=str(Path(out) / "weights"),
        run_name=spec.name,
        plot=False,
        verbose=0,
        save_weights=spec.mod == "tfa",
        fold=spec.fold,
        folds=spec.folds,
    )


def _failure(spec: RunSpec, out: str, err: Exception, seconds: float) -> dict:
    """Record a crashed run as `<run>.error.json`; the summary line for the sweep."""
    message = f"{type(err).__name__}: {err}"
    utils.atomic_write_json(
        Path(out) / "runs" / f"{spec.name}.error.json", {"run": spec.name, "spec": asdict(spec), "error": message}
    )
    return {"run": spec.name, "ok": False, "error": message.splitlines()[0], "seconds": seconds}


def run_one(spec: RunSpec, out: str) -> dict:
    """Train one TFa run through `training.run` (V2S runs go through `run_stack`); on failure write
    `<run>.error.json`. Returns a short summary."""
    started = time.time()
    try:
        import training

        record = training.run(config_for(spec, out))
        return {
            "run": spec.name,
            "ok": True,
            "test_accuracy": record["metrics"]["test"]["accuracy"],
            "seconds": time.time() - started,
        }
    except Exception as err:  # recorded, and the sweep goes on
        return _failure(spec, out, err, time.time() - started)


_AM_CACHE: dict = {}


def _source_am(net: str):
    """The frozen source AM of `net`, loaded once per process."""
    if net not in _AM_CACHE:
        import speech_models

        am, info = speech_models.load_am(net)
        am.trainable = False
        _AM_CACHE[net] = (am, info)
    return _AM_CACHE[net]


def run_stack(specs: list[RunSpec], out: str) -> list[dict]:
    """Train V2S runs of one group together (`multi_program.train_programs`) and write one record per run.

    Each record is the one `training.run` writes (config, dataset, label map, AM, history, epoch
    choice, metrics, wall time), with `trained_with` naming the stack; the stack's wall time is
    shared equally among its runs. Also records the sliced Wasserstein distance between the AM's
    logits on source speech and on the reprogrammed TRAIN series at the chosen program (`swd`, for
    Table 3). A crash marks every run of the stack as failed.

    Dropout masks are drawn from one stream per stack, so a run's numbers depend on the stack it was
    trained in: the same plan and `--programs` give the same stacks and the same numbers.
    """
    if specs[0].mod == "tfa":
        return [run_one(spec, out) for spec in specs]
    started = time.time()
    try:
        records = _train_stack(specs, out, started)
    except Exception as err:  # recorded, and the sweep goes on
        seconds = (time.time() - started) / len(specs)
        return [_failure(spec, out, err, seconds) for spec in specs]
    return [
        {
            "run": r["run"],
            "ok": True,
            "test_accuracy": r["metrics"]["test"]["accuracy"],
            "seconds": r["wall_time_s"]["total"],
        }
        for r in records
    ]


def _train_stack(specs: list[RunSpec], out: str, started: float) -> list[dict]:
    import dataclasses

    import multi_program
    import training
    import ts_dataloader
    import ts_model

    first = specs[0]
    tf = utils.setup_tensorflow(seed=first.seed)
    data = ts_dataloader.load_dataset(first.dataset, first.data_dir, download=False)
    configs = [config_for(spec, out) for spec in specs]
    x_fit, y_fit, x_val, y_val = ts_dataloader.validation_split(
        data.x_train, data.y_train, configs[0].val_split, first.seed, configs[0].fold, configs[0].folds
    )
    am, am_info = _source_am(first.net)
    mapping, groups = ts_model.many_to_one(data.n_classes, None, "random", first.seed)  # the paper's maximal map
    settings = [c.program_setting(groups) for c in configs]
    fit_started = time.time()
    results = multi_program.train_programs(
        am,
        (x_fit, y_fit),
        (x_val, y_val),
        settings,
        epochs=first.eps,
        batch_size=configs[0].batch_size,
        lr=configs[0].lr,
        lr_decay=configs[0].lr_decay,
        seed=first.seed,
        evaluate_on={"train": (x_fit, y_fit), "test": (data.x_test, data.y_test)},  # the reported TEST score
        monitor_on={"test": (data.x_test, data.y_test)},
    )  # per-epoch TEST, for the optimistic protocols only
    fit_seconds = time.time() - fit_started
    try:
        swd = stack_swd(am, first.net, data.x_train, [r["theta"] for r in results], settings, first.seed)
    except (V2SError, OSError, ValueError) as err:  # optional: the trained runs are kept without it
        print(f"{first.dataset}: SWD not recorded ({type(err).__name__}: {err})".splitlines()[0], flush=True)
        swd = [None] * len(results)
    share = (time.time() - started) / len(specs)
    records = []
    for spec, config, result, distance in zip(specs, configs, results, swd):
        metrics = {key: result["metrics"][key] for key in ("train", "validation", "test") if key in result["metrics"]}
        metrics["test_majority_baseline"] = training.majority_baseline(data.y_train, data.y_test)
        if distance is not None:
            metrics["swd"] = distance
        record = runs.run_record(
            config,
            data,
            run_name=spec.name,
            mapping=mapping,
            groups=groups,
            n_fit=len(y_fit),
            n_validation=len(y_val),
            am_info=dataclasses.asdict(am_info),
            trainable_params=utils.WAVE_LEN,
            history=result["history"],
            selection=runs.selection_record(
                "val_ce" if result["best_val_ce"] is not None else None,
                result["best_epoch"],
                result["best_val_ce"],
                spec.eps,
            ),
            metrics=metrics,
            weights=None,
            wall_time_s={
                "fit": round(fit_seconds / len(specs), 2),
                "total": round(share, 2),
                "stack_total": round(share * len(specs), 2),
            },
            samples_per_s=result["samples_per_s"],
            trained_with={
                "path": "multi_program.train_programs",
                "programs_in_stack": len(specs),
                "stack": [s.name for s in specs],
                "tf_version": tf.__version__,
            },
        )
        utils.atomic_write_json(Path(out) / "runs" / f"{spec.name}.json", record)
        records.append(record)
    return records


_SPEECH_CACHE: dict = {}


def stack_swd(am, net: str, x_train, thetas, settings, seed: int) -> list[dict | None]:
    """Per program: the sliced Wasserstein-2 distance (`probes.swd`, 1,000 seeded projections) between the AM's
    logits on a seeded sample of 400 source speech clips and on up to 1,000 TRAIN series tiled as the program's
    `ProgramSetting` + its program; and the AM's cross-entropy on that speech (Table 3's source loss).
    None per program when no speech folder is found (`probes.default_speech_dir`)."""
    import ts_model

    folder = probes.default_speech_dir()
    if folder is None:
        return [None] * len(thetas)
    key = (net, str(folder), seed)
    if key not in _SPEECH_CACHE:  # the frozen AM's logits on the speech sample: once per process
        waves, labels = probes.speech_sample(folder, probes.N_SPEECH, seed)
        _SPEECH_CACHE[key] = (*probes.speech_logits(am, waves, labels), len(labels))
    source, loss, accuracy, n_source = _SPEECH_CACHE[key]
    x = probes.subsample(x_train, probes.N_TARGET_SERIES, seed)
    out = []
    for theta, setting in zip(thetas, settings):
        tiled = ts_model.tile_segments(x, setting.seg, setting.offset)
        out.append(
            {
                "value": probes.swd(am, source, tiled, theta, probes.N_PROJECTIONS, seed),
                "source_loss": loss,
                "source_accuracy": accuracy,
                "n_source": n_source,
                "n_target": len(x),
                "source": str(folder),
                "space": f"AM logits ({N_SOURCE})",
                "p": 2,
                "projections": probes.N_PROJECTIONS,
            }
        )
    return out


def _run_stack_in_worker(args):
    """A `--jobs` worker (a spawned process): `threads` intra-op threads, then `run_stack` under a claim."""
    specs, out, threads, retry_failed = args
    os.environ["V2S_THREADS"] = os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    utils.setup_tensorflow(seed=specs[0].seed)
    return run_claimed(run_stack, specs, out, retry_failed)


def is_current(path: Path) -> bool:
    """A record written by this version of the sweep: it exists and carries the per-epoch TEST history.
    Older records (without it) still feed the honest tables, but a sweep runs them again."""
    try:
        return "test_accuracy" in json.loads(path.read_text()).get("history", {})
    except (OSError, ValueError):
        return False


def pending_runs(specs: list[RunSpec], out: str, retry_failed: bool = False) -> list[RunSpec]:
    """The specs with neither a current record (`is_current`) nor (unless `retry_failed`) an error record
    under `<out>/runs/`."""
    runs = Path(out) / "runs"
    return [
        s
        for s in specs
        if not is_current(runs / f"{s.name}.json") and (retry_failed or not (runs / f"{s.name}.error.json").exists())
    ]


def failed_runs(specs: list[RunSpec], out: str) -> list[str]:
    """Names of planned runs that have only an error record."""
    runs = Path(out) / "runs"
    return [
        s.name for s in specs if (runs / f"{s.name}.error.json").exists() and not (runs / f"{s.name}.json").exists()
    ]


def execute(
    specs: list[RunSpec],
    out: str,
    jobs: int = 1,
    run_fn=run_stack,
    programs: int = 4,
    backend: str = "local",
    ray_address: str | None = None,
    retry_failed: bool = False,
) -> list[dict]:
    """Run the specs that have no record yet (finished and failed runs are both skipped), stack by stack.

    `run_fn(stack, out)` trains one stack (a list of specs) and returns one summary per spec. Prints
    one line per finished run and keeps an overall progress bar with the time left; the bar counts
    TRAIN series x epochs (`RunSpec.cost`), so its estimate weights the big datasets that come last.

    Each stack is trained under a claim on its runs (`run_claimed`): sweeps sharing `out` split the work
    and never train a run twice, and after a kill (of the sweep or of a worker) the same command trains
    what is missing, the killed stacks as a whole, to the numbers an uninterrupted sweep gives.
    """
    from tqdm import tqdm

    # runs whose trainer was killed (a stale claim) are trained again, records or not: a stack killed while
    # writing its records has only some of them, and only the whole stack gives the same numbers again
    incomplete = set(claims.stale(Path(out) / "runs", [s.name for s in specs]))
    unrecorded = set(pending_runs(specs, out, retry_failed))
    pending = [s for s in specs if s in unrecorded or s.name in incomplete]
    stacks = schedule(group_runs(pending, programs), parallel=backend == "ray" or jobs > 1)
    print(
        f"{len(specs)} runs planned, {len(specs) - len(pending)} already recorded, {len(pending)} to run "
        f"in {len(stacks)} stacks" + (f" ({len(incomplete)} left unfinished by a killed sweep)" if incomplete else ""),
        flush=True,
    )
    (Path(out) / "runs").mkdir(parents=True, exist_ok=True)
    results = []
    bar = tqdm(total=sum(spec.cost for spec in pending), unit="series", unit_scale=True, dynamic_ncols=True)

    def report(stack, summaries):
        for spec, result in zip(stack, summaries):
            if result["ok"]:
                status = f"test_acc {result['test_accuracy']:.4f}"
            elif "skipped" in result or "interrupted" in result:
                status = (
                    f"skipped: {result['skipped']}" if "skipped" in result else f"NOT RECORDED: {result['interrupted']}"
                )
            else:
                status = f"FAILED {result['error']}"
            setting = "tfa" if spec.mod == "tfa" else f"dr{spec.dr} seg{spec.seg}"
            fold = f" fold{spec.fold}" if spec.fold is not None else ""
            bar.write(
                f"{spec.dataset} net{spec.net} {setting} seed{spec.seed}{fold}: {status} ({result['seconds']:.0f}s)"
            )
            bar.update(spec.cost)
            results.append(result)

    if stacks and backend == "ray":
        _execute_ray(stacks, out, jobs, ray_address, run_fn, report, retry_failed)
    elif jobs <= 1 or not stacks:
        for stack in stacks:
            report(stack, run_claimed(run_fn, stack, out, retry_failed))
    else:
        _execute_processes(stacks, out, jobs, report, retry_failed)
    bar.close()
    held = [r for r in results if "being trained by another process" in r.get("skipped", "")]
    lost = [r for r in results if "interrupted" in r]
    if held or lost:
        print(
            f"not recorded by this sweep: {len(held)} runs being trained by another process, {len(lost)} whose "
            "worker died; run the same command again (once the other sweep is done) to finish them",
            flush=True,
        )
    return results


def _skipped(spec: RunSpec, reason: str) -> dict:
    return {"run": spec.name, "ok": False, "skipped": reason, "seconds": 0.0}


def _interrupted(spec: RunSpec) -> dict:
    return {
        "run": spec.name,
        "ok": False,
        "seconds": 0.0,
        "interrupted": "its worker died (killed or out of memory); not recorded, trained by the next run of the command",
    }


def run_claimed(run_fn, stack: list[RunSpec], out: str, retry_failed: bool = False) -> list[dict]:
    """`run_fn(stack, out)` under a claim on the stack's runs (`claims`), so that sweeps sharing `out` never
    train a run twice; the claim is released once the records (or error records) are written.

    A stack claimed by a live process is skipped. Once claimed, runs recorded meanwhile by another process
    are skipped too, unless their claim was stale (their trainer was killed, perhaps while writing the
    stack's records): those are trained again with the rest of their stack, which gives the same numbers.
    """
    try:
        claim = claims.claim(Path(out) / "runs", [spec.name for spec in stack])
    except claims.Held as held:
        return [_skipped(spec, f"being trained by another process ({held})") for spec in stack]
    with claim:
        todo = [s for s in stack if s.name in claim.took_over or pending_runs([s], out, retry_failed)]
        done = dict(zip([s.name for s in todo], run_fn(todo, out))) if todo else {}
    return [done.get(s.name) or _skipped(s, "recorded meanwhile by another process") for s in stack]


def _execute_processes(stacks, out: str, jobs: int, report, retry_failed: bool) -> None:
    """`jobs` spawned worker processes, each training one stack at a time (`_run_stack_in_worker`), the
    costliest first. Each worker has its own pool, so a worker that dies (killed, out of memory) loses only
    its own stack: that stack is reported as not recorded (its stale claim makes the next run of the command
    train it) and a fresh worker takes the free slot."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = multiprocessing.get_context("spawn")
    queue, pools, running = list(stacks), [None] * jobs, {}
    try:
        while queue or running:
            for slot in sorted(set(range(jobs)) - {slot for slot, _ in running.values()}):
                if queue:
                    pools[slot] = pools[slot] or ProcessPoolExecutor(max_workers=1, mp_context=context)
                    stack = queue.pop(0)
                    running[pools[slot].submit(_run_stack_in_worker, (stack, out, threads, retry_failed))] = (
                        slot,
                        stack,
                    )
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot, stack = running.pop(future)
                summaries = _result_or_failure(stack, out, future.result)
                if any("interrupted" in s for s in summaries):  # its worker is gone: a new pool for the slot
                    pools[slot].shutdown(wait=False)
                    pools[slot] = None
                report(stack, summaries)
    finally:
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _result_or_failure(stack: list[RunSpec], out: str, get) -> list[dict]:
    """`get()`'s summaries; if the worker process died (killed, out of memory: a broken process pool) the
    stack is left unrecorded, to be trained by the next run of the command; any other error records every
    run of the stack as failed. The sweep goes on."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return get()
    except BrokenProcessPool:
        return [_interrupted(spec) for spec in stack]
    except Exception as err:
        return [_failure(spec, out, err, 0.0) for spec in stack]


def _execute_ray(stacks, out, jobs, address, run_fn, report, retry_failed: bool = False) -> None:
    """Each stack is one Ray task (1 CPU; results written by the task into `out`, the single source of truth)."""
    try:
        import ray
    except ImportError:
        raise V2SError("--backend ray needs Ray: pip install -r requirements-extras.txt") from None
    env = {
        "PYTHONPATH": os.pathsep.join([str(utils.PROJECT_DIR), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "V2S_THREADS": "1",
        "TF_NUM_INTRAOP_THREADS": "1",
    }
    for key in ("V2S_AM_DIR", "V2S_SPEECH_DIR", "V2S_DATA_DIR", "V2S_OFFLINE", "TF_ENABLE_ONEDNN_OPTS"):
        if key in os.environ:
            env[key] = os.environ[key]
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"num_cpus": jobs, "include_dashboard": False}
        try:
            ray.init(runtime_env={"env_vars": env}, log_to_driver=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise V2SError(f"cannot start or join Ray ({address or 'local'}): {err}".splitlines()[0]) from None
    try:
        task = ray.remote(num_cpus=1)(run_claimed)  # the claim is taken in the task (a killed task is retried)
        waiting = {task.remote(run_fn, stack, str(Path(out).resolve()), retry_failed): stack for stack in stacks}
        while waiting:
            done, _ = ray.wait(list(waiting), num_returns=1)
            for ref in done:
                stack = waiting.pop(ref)
                report(stack, _result_or_failure(stack, out, lambda: ray.get(ref)))
    finally:
        if started_here:
            ray.shutdown()


def load_records(out: str, specs: list[RunSpec] | None = None) -> list[dict]:
    """The finished runs' records under `<out>/runs/`: all of them, or those of the planned `specs` only
    (runs of another grid, more seeds or other epochs in the same folder are left out)."""
    paths = sorted((Path(out) / "runs").glob("*.json"))
    if specs is not None:
        wanted = {f"{s.name}.json" for s in specs}
        paths = [p for p in paths if p.name in wanted]
    return [json.loads(p.read_text()) for p in paths if not p.name.endswith(".error.json")]


def column_key(record: dict) -> str:
    """The table column a run belongs to: the net ("0", "3"), "tfa" (the paper's optimiser) or
    "tfa-adam1e-3" (a TFa optimiser of `TFA_OPTIMISERS` by its recorded lr and decay)."""
    cfg = record["config"]
    if str(cfg.get("mod")) != "tfa":
        return str(cfg["net"])
    for name, (lr, lr_decay, _) in TFA_OPTIMISERS.items():
        if cfg.get("lr", 0.05) == lr and cfg.get("lr_decay", 0.48) == lr_decay:
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
    Returns {(dataset, column): {"honest": [...], "setting-on-test": [...], "original": [...] (only if
    every seed has it), "settings": [...] (the honest choice per seed), "original_choice": [{"dr", "seg",
    "epoch"} per seed], "seeds": [...], "runs": n, "seconds": s}}, lists in `seeds` order.
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
            "original_choice": [],
            "seeds": sorted(by_seed),
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
            result["setting-on-test"].append(max(test for _, test in summary.values()))
            if all(c is not None for c in curves.values()):
                best = max(curves, key=lambda s: (curves[s].max(), s))
                epoch = int(np.argmax(curves[best]))
                result["original"].append(float(curves[best][epoch]))
                result["original_choice"].append({"dr": best[0], "seg": best[1], "epoch": epoch + 1})
        if len(result["original"]) < len(result["seeds"]):
            del result["original"], result["original_choice"]
        scores[key] = result
    return scores


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


def constant_predictor_notes(rows: list[dict], tolerance: float = 0.06) -> list[str]:
    """Where the paper's TFa accuracy is the TEST share of one class (a model predicting that class for
    every series), within `tolerance` points of rounding; and the datasets where it prints 100 %, which a
    constant predictor reaches only if every TEST label is the same."""
    constant = [
        r["ucr_name"]
        for r in rows
        if "test_shares" in r and min(abs(share - r["TFa"]) for share in r["test_shares"]) <= tolerance
    ]
    hundred = [r["ucr_name"] for r in rows if r["TFa"] == 100 and "test_shares" in r]
    notes = []
    if constant:
        notes.append(
            f"The paper's TFa equals the TEST share of a single class on {len(constant)} of the {len(rows)} "
            f"datasets here ({', '.join(constant)}): a constant predictor, i.e. a collapsed fine-tuning."
        )
    if hundred:
        notes.append(
            f"The paper prints TFa = 100 on {', '.join(hundred)}; their TEST sets hold "
            + "; ".join(
                f"{r['ucr_name']} {' / '.join(f'{v:.1f}' for v in r['test_shares'])} %"
                for r in rows
                if r["ucr_name"] in hundred
            )
            + " of each class here, so no constant predictor scores 100 % on them."
        )
    return ["", *notes] if notes else []


def majority_notes(rows: list[dict], lines: list[dict], columns: tuple[str, ...], margin: float = 1.0) -> list[str]:
    """Per column of ours, the datasets where its accuracy is at most `margin` points above the TEST share
    of the largest class — what predicting that class for every series scores: no better than chance."""
    shares = {r["ucr_name"]: max(r["test_shares"]) for r in rows if r.get("test_shares")}
    notes = []
    for column in columns:
        near = [
            (line["dataset"], line[column], shares[line["dataset"]])
            for line in lines
            if line.get(column) is not None
            and line["dataset"] in shares
            and line[column] <= shares[line["dataset"]] + margin
        ]
        if near:
            listed = ", ".join(f"{d} {v:.1f} ({m:.1f})" for d, v, m in near)
            notes.append(
                f"{column} is at most {margin:g} point above the TEST majority share (what predicting the "
                f"largest class scores) on {len(near)} dataset{'s' * (len(near) != 1)}: {listed}."
            )
    return ["", *notes] if notes else []


def summary_stats(accuracies: list[float], n_classes: list[int], sota: list[float | None]) -> dict:
    """Mean and median accuracy, MPCE and wins vs SOTA of one column (accuracies in percent).

    MPCE (Wang et al. 2017): the mean over datasets of error rate / number of classes, in percent.
    Wins: datasets where the column is at least SOTA (rows without a SOTA number are not counted).
    """
    acc = np.asarray(accuracies, dtype=float)
    errors = 1.0 - acc / 100.0
    wins = sum(a >= b for a, b in zip(acc, sota) if b is not None)
    return {
        "mean": float(np.mean(acc)),
        "median": float(np.median(acc)),
        "mpce": float(np.mean(errors / np.asarray(n_classes, dtype=float)) * 100.0),
        "wins": int(wins),
        "n": int(len(acc)),
    }


def _put(line: dict, column: str, values) -> None:
    values = np.asarray(values, dtype=float) * 100
    line[column] = float(values.mean())
    line[column + " std"] = float(values.std())


def score_columns(key: str) -> list[tuple[str, str]]:
    """(table column, protocol) of a score key: a net's three protocols, a TFa optimiser's two."""
    if key in NET_NAMES or key.isdigit():
        return [(f"ours {NET_NAMES.get(key, 'net' + key)} ({p})", p) for p in PROTOCOLS]
    label = next((col for name, (_, _, col) in TFA_OPTIMISERS.items() if key == tfa_key(name)), f"ours {key}")
    return [(f"{label} ({p})", p) for p in TFA_PROTOCOLS]


def build_table(rows: list[dict], scores: dict, nets: list[str], lead: str) -> tuple[list[dict], dict]:
    """Table-2 lines (percent) and the summary of every column over all lines.

    A dataset gets a line once one of the requested nets has results ("seeds": how many seeds the first
    of them averages, "settings": its settings per seed); the other nets', TFa and MiniRocket columns are
    filled where they have results. Each column's summary is over the lines where it has a value (its `n`
    says how many), computed the same way for every column. Paper columns are left out of a line for a
    dataset outside Table 2.
    """
    import paper_tables

    tfa_keys = [tfa_key(name) for name in TFA_OPTIMISERS]
    lines = []
    for row in rows:
        line = {"dataset": row["ucr_name"], "classes": row["n_classes"], "flag": paper_tables.flag(row["ucr_name"])}
        for paper_column in PAPER_COLUMNS:
            if row.get(paper_column) is not None:
                line[paper_column if paper_column == "SOTA" else f"paper {paper_column}"] = row[paper_column]
        have = [net for net in nets if (row["ucr_name"], net) in scores]
        if not have:
            continue
        seconds = 0.0
        first = scores[(row["ucr_name"], have[0])]
        line["seeds"] = len(first["honest"])
        line["settings"] = first["runs"] // max(1, len(first["honest"]))
        for key in have + [k for k in tfa_keys if (row["ucr_name"], k) in scores]:
            score = scores[(row["ucr_name"], key)]
            for column, protocol in score_columns(key):
                if protocol in score:
                    _put(line, column, score[protocol])
            seconds += score["seconds"]
        for method, column in BASELINE_COLUMNS.items():
            if (row["ucr_name"], method) in scores:
                _put(line, column, scores[(row["ucr_name"], method)]["values"])
        line["wall time s"] = round(seconds, 1)
        lines.append(line)
    return lines, summarise(lines, lead)


def summarise(lines: list[dict], lead: str = "honest") -> dict:
    """{column: summary_stats} of every value column, each over the lines where it has a value."""
    summary = {}
    for c in value_columns(lines, lead):
        have = [line for line in lines if c in line]
        summary[c] = summary_stats(
            [line[c] for line in have], [line["classes"] for line in have], [line.get("SOTA") for line in have]
        )
    return summary


def unflagged(lines: list[dict]) -> list[dict]:
    """The lines without an artefact flag, the paper's V2Sa replaced by the authors' revision where there is one."""
    import paper_tables

    kept = []
    for line in lines:
        if line["dataset"] in paper_tables.ARTEFACT_ROWS:
            continue
        if line["dataset"] in paper_tables.REVISED_V2SA and "paper V2Sa" in line:
            line = {**line, "paper V2Sa": paper_tables.REVISED_V2SA[line["dataset"]]}
        kept.append(line)
    return kept


def paper_gaps(lines: list[dict], rows_label: str) -> list[dict]:
    """Ours vs the paper per column of ours with a paper counterpart, over the lines that have both:
    mean and median of each, and the gap ours − paper (points)."""
    out = []
    for column in value_columns(lines):
        if not column.startswith("ours "):
            continue
        name = column.removeprefix("ours ").split(" (")[0]
        paper_column = f"paper {name.split(' ')[0]}"
        if name not in ("V2Sa", "V2Su", "TFa") and not name.startswith("TFa "):
            continue
        both = [line for line in lines if column in line and paper_column in line]
        if not both:
            continue
        ours, paper = np.array([line[column] for line in both]), np.array([line[paper_column] for line in both])
        out.append(
            {
                "rows": rows_label,
                "column": column,
                "paper column": paper_column,
                "datasets": len(both),
                "ours mean": float(ours.mean()),
                "paper mean": float(paper.mean()),
                "mean gap": float(ours.mean() - paper.mean()),
                "ours median": float(np.median(ours)),
                "paper median": float(np.median(paper)),
                "median gap": float(np.median(ours) - np.median(paper)),
                "more than 3 points under": ", ".join(
                    line["dataset"] for line, o, q in zip(both, ours, paper) if o < q - 3
                ),
            }
        )
    return out


def value_columns(lines: list[dict], lead: str = "honest") -> list[str]:
    """The accuracy columns present in any line: the paper's, ours (per AM, the `lead` protocol first), baselines."""
    order = ["SOTA", "paper V2Sa", "paper V2Su", "paper TFa"]
    info = {"dataset", "classes", "flag", "seeds", "settings", "wall time s"}
    seen = {c for line in lines for c in line if not c.endswith(" std")} - info
    rank = {p: i for i, p in enumerate(PROTOCOLS)}

    def key(c):
        base, protocol = c.split(" (")[0], c.split(" (")[-1].rstrip(")")
        return (base.startswith("ours TFa"), base, protocol != lead, rank.get(protocol, 9))

    ours = sorted((c for c in seen if c.startswith("ours ")), key=key)
    return [c for c in order if c in seen] + ours + [c for c in BASELINE_COLUMNS.values() if c in seen]


def _cell(line: dict, c: str) -> str:
    value = line.get(c)
    if value is None or value == "":
        return "–" if c != "flag" else ""
    if isinstance(value, float) and c + " std" in line:
        return f"{value:.2f} ± {line[c + ' std']:.2f}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_outputs(
    lines: list[dict], summary: dict, skipped: list, out: Path, lead: str, command: str, notes: list[str] = ()
) -> Path:
    """table2.csv (one line per dataset), table2_vs_paper.csv (ours vs the paper over all and over the
    unflagged rows), table2.md and a scatter of ours vs the paper (PNG)."""
    values = value_columns(lines, lead)
    info = ["seeds", "settings", "wall time s"] if lines else []
    shown = ["dataset", "classes", "flag"] + values + info
    fields = (
        ["dataset", "classes", "flag"]
        + [x for c in values for x in (c, c + " std") if any(x in line for line in lines)]
        + info
    )
    reporting.write_csv(out / "table2.csv", fields, lines, extrasaction="ignore")
    kept = unflagged(lines)
    gaps = paper_gaps(lines, "all") + paper_gaps(kept, "unflagged")
    gap_fields = [
        "rows",
        "column",
        "paper column",
        "datasets",
        "ours mean",
        "paper mean",
        "mean gap",
        "ours median",
        "paper median",
        "median gap",
        "more than 3 points under",
    ]
    reporting.write_csv(out / "table2_vs_paper.csv", gap_fields, gaps, extrasaction="ignore")

    md = [
        f"# Table 2, reproduced ({lead} protocol leads; all three shown)",
        "",
        f"Command: `{command}`",
        "",
        "Protocols, named by what they choose on TEST: **honest** nothing (epoch and setting on validation); "
        "**setting-on-test** the setting; **original** the epoch and the setting (what the original code printed). "
        "Flags: *artefact* rows are left out of the unflagged summary; ECG200's paper V2Sa is compared as the "
        "authors' revised 85.5 there. Methods and analysis: [docs/reproduction.md](../../docs/reproduction.md).",
        "",
    ]
    md += reporting.markdown_table(shown, [[_cell(line, c) for c in shown] for line in lines])
    kept_summary = summarise(kept, lead)
    for title, stats_of in (("all rows", summary), (f"the {len(kept)} unflagged rows", kept_summary)):
        md += ["", f"Summary over {title} (each column over the rows where it has a value):", ""]
        rows = []
        for stat, label in (
            ("mean", "Mean accuracy"),
            ("median", "Median accuracy"),
            ("mpce", "MPCE (↓)"),
            ("wins", "Wins vs SOTA"),
            ("n", "Datasets"),
        ):
            rows.append([label] + [_stat_cell(stats_of.get(c), stat) for c in values])
        md += reporting.markdown_table(["", *values], rows)
    if gaps:
        md += [
            "",
            "Ours vs the paper, over the rows where both have a number (points; ECG200's paper V2Sa is 85.5 in "
            "the unflagged rows):",
            "",
        ]
        md += reporting.markdown_table(
            gap_fields,
            [
                [g["rows"], g["column"], g["paper column"], str(g["datasets"])]
                + [f"{g[k]:.2f}" for k in gap_fields[4:10]]
                + [g[gap_fields[10]] or "–"]
                for g in gaps
            ],
        )
    total = sum(line["wall time s"] for line in lines)
    md += [
        "",
        f"MPCE: mean over datasets of error rate / classes, in percent (the paper's printed MPCE cannot be "
        f"recomputed from its own rows). Wall time of the runs in the table: {total / 3600:.2f} h (sum over runs, "
        "stacks shared equally).",
    ]
    md += list(notes)
    if skipped:
        md += ["", "Skipped datasets (data not found):"] + [f"- {name}: {reason}" for name, reason in skipped]
    utils.atomic_write_bytes(out / "table2.md", ("\n".join(md) + "\n").encode())
    if lines:
        _scatter(lines, out / "table2.png")
    return out / "table2.md"


def _stat_cell(stats: dict | None, stat: str) -> str:
    if stats is None:
        return ""
    return str(stats[stat]) if stat in ("wins", "n") else f"{stats[stat]:.2f}"


def _scatter(lines: list[dict], path: Path) -> None:
    fig, ax = reporting.pyplot().subplots(figsize=(5.5, 5.5))
    markers = {"honest": "o", "setting-on-test": "x", "original": "^"}
    for name in ("V2Sa", "V2Su"):
        for protocol, marker in markers.items():
            column = f"ours {name} ({protocol})"
            have = [line for line in lines if column in line and f"paper {name}" in line]
            if have:
                ax.scatter(
                    [line[f"paper {name}"] for line in have],
                    [line[column] for line in have],
                    marker=marker,
                    label=f"{column} vs paper {name}",
                    alpha=0.8 if name == "V2Sa" else 0.4,
                )
    for line in lines:  # name the datasets more than 10 points off the paper (honest V2Sa)
        if (
            "ours V2Sa (honest)" in line
            and "paper V2Sa" in line
            and abs(line["ours V2Sa (honest)"] - line["paper V2Sa"]) > 10
        ):
            ax.annotate(
                line["dataset"],
                (line["paper V2Sa"], line["ours V2Sa (honest)"]),
                fontsize=7,
                xytext=(-4, -10),
                textcoords="offset points",
                ha="right",
            )
    ax.plot([0, 100], [0, 100], color="grey", linestyle=":")
    ax.set_xlabel("paper's accuracy (%)")
    ax.set_ylabel("our accuracy (%)")
    ax.set_title(f"Table 2: ours vs the paper, {len(lines)} datasets", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    reporting.save_figure(fig, path, dpi=110)


def table3(records: list[dict], out: Path, command: str) -> Path:
    """Source loss and mean/median SWD per AM over the datasets, beside the paper's Table 3.

    Per (dataset, AM) the SWD of the honest choice of each seed (recorded by the sweep at the chosen
    program), averaged over seeds; then mean and median over datasets. Writes table3.md and table3.csv.
    """
    import paper_tables

    scores = protocol_scores(records)
    by_run = {
        (r["dataset"]["name"], column_key(r), r["config"]["seed"], r["config"]["dr"], r["config"]["seg"]): r
        for r in records
        if r["config"].get("fold") in (None, 0)
    }
    rows, per_dataset = [], {}
    for (dataset, column), score in sorted(scores.items()):
        if column not in NET_NAMES:
            continue
        values, losses = [], []
        for seed, setting in zip(score["seeds"], score["settings"]):
            rec = by_run.get((dataset, column, seed, setting["dr"], setting["seg"]))
            swd = rec and rec["metrics"].get("swd")
            if swd:
                values.append(swd["value"])
                losses.append(swd["source_loss"])
        if values:
            per_dataset.setdefault(column, []).append((dataset, float(np.mean(values)), float(np.mean(losses))))
    cells = []
    for column, items in sorted(per_dataset.items()):
        name = NET_NAMES[column]
        swds = [v for _, v, _ in items]
        paper = paper_tables.TABLE3.get(name, {})
        row = {
            "model": name,
            "source_loss": float(np.mean([line for _, _, line in items])),
            "mean_swd": float(np.mean(swds)),
            "median_swd": float(np.median(swds)),
            "datasets": len(items),
        }
        rows.append(row)
        cells.append(
            [name, f"{row['source_loss']:.4f}", f"{row['mean_swd']:.3f}", f"{row['median_swd']:.3f}", str(len(items))]
            + [str(paper.get(key, "–")) for key in ("source_loss", "mean_swd", "median_swd")]
        )
    lines = ["# Table 3, reproduced: source loss and SWD of the Table-2 runs", "", f"Command: `{command}`", ""]
    lines += reporting.markdown_table(
        [
            "model",
            "source loss (ours)",
            "mean SWD (ours)",
            "median SWD (ours)",
            "datasets",
            "source loss (paper)",
            "mean SWD (paper)",
            "median SWD (paper)",
        ],
        cells,
    )
    lines += [
        "",
        "Source loss: the AM's cross-entropy (nats) on a seeded sample of 400 Speech-Commands clips "
        "(../shared/speech/gsc or $V2S_SPEECH_DIR; the paper used the GSCv2 validation set). SWD: sliced "
        "Wasserstein-2 distance, 1,000 seeded projections, between the AM's logits on those clips and on up to "
        "1,000 reprogrammed TRAIN series at the chosen program, for the setting chosen on validation per seed, "
        "averaged over seeds, then mean/median over datasets. Our logit scale and source sample differ from the "
        "paper's (not stated there), so compare the ordering of the AMs, not the values.",
        "",
        "Per dataset (SWD, source loss):",
    ]
    for column, items in sorted(per_dataset.items()):
        lines += [f"- {NET_NAMES[column]}: " + ", ".join(f"{d} {v:.3f}" for d, v, _ in items)]
    reporting.write_csv(out / "table3.csv", ["model", "source_loss", "mean_swd", "median_swd", "datasets"], rows)
    utils.atomic_write_bytes(out / "table3.md", ("\n".join(lines) + "\n").encode())
    return out / "table3.md"


def _grid_name(text: str) -> str:
    if text not in GRIDS:
        raise V2SError(f"--grid {text}: choose {' or '.join(sorted(GRIDS))} (or per net, e.g. 0=paper,3=small)")
    return text


def _seed_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise V2SError(f"--seeds {text}: give a whole number of seeds, at least 1 (or per net, e.g. 0=1,3=3)")
    return value


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag in ("eps", "jobs", "programs"):
        validation.at_least(f"--{flag}", getattr(args, flag), 1, whole=True)
    validation.zero_or_at_least("--folds", args.folds, 2, "0: one 20% validation split")
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    if not nets:
        raise V2SError("--nets: give at least one source AM (0 V2Sa, 3 V2Su)")
    for net in nets:
        if net not in NET_NAMES:
            raise V2SError(f"--nets {net}: Table 2 compares 0 (V2Sa) and 3 (V2Su)")
    grids = per_net(args.grid, nets, "--grid", _grid_name)
    seeds = per_net(args.seeds, nets, "--seeds", _seed_count, extra=("tfa",))
    out = Path(args.out)
    if args.table == 2 and not args.report_only:  # records go here: a bad --out fails now, not after a run
        validation.writable_dir("--out", out / "runs")
    else:
        validation.creatable_dir("--out", out)
    command = "python reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    utils.setup_tensorflow()
    rows, skipped = select_datasets(args.datasets, args.data_dir)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}")
    # the tables read the records of this plan only; TFa runs are shown wherever they exist
    tabled = plan_runs(rows, nets, grids, seeds, args.eps, args.data_dir, args.folds, tfa=True)
    if args.table == 3:
        records = load_records(str(out), tabled)
        if not records:
            raise V2SError(
                f"no run records of this plan under {out / 'runs'}: run --table 2 first (it records the SWD)"
            )
        table = table3(records, out, command)
        print(table.read_text())
        print(f"table={table}")
        return 0
    methods = [m for m, wanted in (("minirocket", args.minirocket), ("multirocket", args.multirocket)) if wanted]
    scores_extra = baseline_scores(rows, max(seeds.values()), str(out), args.data_dir, methods)
    specs = [s for s in tabled if args.tfa or s.mod != "tfa"]
    if not args.report_only:
        execute(
            specs,
            str(out),
            args.jobs,
            programs=args.programs,
            backend=args.backend,
            ray_address=args.ray_address,
            retry_failed=args.retry_failed,
        )
    scores = {**protocol_scores(load_records(str(out), tabled)), **scores_extra}
    lines, summary = build_table(rows, scores, nets, args.protocol)
    failed = failed_runs(specs, str(out))
    ours = tuple(f"ours {NET_NAMES[net]} ({args.protocol})" for net in nets) + ("ours TFa (honest)",)
    notes = (
        constant_predictor_notes(rows)
        + majority_notes(rows, lines, ours)
        + (
            [
                "",
                f"{len(failed)} planned runs failed (error records; the protocols chose among the others; "
                f"`--retry-failed` runs them again): {', '.join(failed)}",
            ]
            if failed
            else []
        )
    )
    table = write_outputs(lines, summary, skipped, out, args.protocol, command, notes)
    for column, stats in summary.items():
        print(
            f"{column:<24} mean {stats['mean']:.2f}  median {stats['median']:.2f}  MPCE {stats['mpce']:.2f}  "
            f"wins {stats['wins']}/{stats['n']}"
        )
    print(f"table={table}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
