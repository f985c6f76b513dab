"""The runs of a sweep: which datasets, grids and seeds a command asks for, one `RunSpec` per run, and the
stacks they are trained in, in the order they are started. Reads the data folder to size the rows and to
give each its TEST class shares and `constant_per_batch_ceiling` (what a near-constant predictor can score)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import runs
import utils
from settings import DEFAULT_LR, DEFAULT_LR_DECAY, DEFAULT_OFFSET, DEFAULT_PRECISION, ORIGINAL_BATCH
from utils import V2SError

GRIDS = {
    "paper": {"dr": [0, 1, 2, 3, 4], "seg": list(range(1, 11))},
    "small": {"dr": [0, 4], "seg": [1, 10]},
}
NET_NAMES = {"0": "V2Sa", "3": "V2Su", "6": "cnn1d_small"}  # --nets value -> the table's name
# TFa's optimisers: the paper's (the V2S one: Adam 0.05, inverse-time decay 0.48 per step), which collapses to
# a constant predictor on most sets, and a fair fine-tuning baseline (Adam 1e-3, constant). (lr, lr_decay, column)
TFA_OPTIMISERS = {"paper": (DEFAULT_LR, DEFAULT_LR_DECAY, "ours TFa"), "adam1e-3": (1e-3, 0.0, "ours TFa Adam 1e-3")}
PAPER_COLUMNS = ("SOTA", "V2Sa", "V2Su", "TFa")


def constant_per_batch_ceiling(labels, batch: int = ORIGINAL_BATCH) -> float:
    """The best TEST accuracy (percent) of a predictor that gives one class to each run of `batch` consecutive
    series, in the order given (each batch's largest class count, summed): what a near-constant predictor
    can score when its class may change from batch to batch, as the original code's dropout on theta let it
    (a mask per call, so per batch of its TEST pass; inferred from its code). On a TEST file sorted by class
    this is far above the largest class share (Wine: 49 of 54)."""
    labels = np.asarray(labels)
    hits = sum(np.unique(labels[i : i + batch], return_counts=True)[1].max() for i in range(0, len(labels), batch))
    return 100.0 * float(hits) / len(labels)


def tfa_key(optimiser: str) -> str:
    """The score key (table column group) of TFa runs at a `TFA_OPTIMISERS` optimiser: "tfa", "tfa-adam1e-3"."""
    return "tfa" if optimiser == "paper" else f"tfa-{optimiser}"


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
    precision: str = DEFAULT_PRECISION  # V2S on the fast path: settings.PRECISIONS (TFa: always fp32)

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
            self.precision,
        )

    @property
    def group(self) -> tuple:
        """Runs with the same group share their data split and can be trained as one program stack."""
        return (
            self.dataset,
            self.net,
            self.mod,
            self.seed,
            self.fold,
            self.folds,
            self.eps,
            self.data_dir,
            self.precision,
        )


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
                    "batch_ceiling": round(constant_per_batch_ceiling(data.y_test), 2),
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


def grid_name(text: str) -> str:
    """`--grid`'s value for one net: a key of `GRIDS`."""
    if text not in GRIDS:
        raise V2SError(f"--grid {text}: choose {' or '.join(sorted(GRIDS))} (or per net, e.g. 0=paper,3=small)")
    return text


def seed_count(text: str) -> int:
    """`--seeds`' value for one net: a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise V2SError(f"--seeds {text}: give a whole number of seeds, at least 1 (or per net, e.g. 0=1,3=3)")
    return value


def plan_runs(
    rows: list[dict],
    nets: list[str],
    grid: str | dict,
    seeds: int | dict,
    eps: int,
    data_dir,
    folds: int = 0,
    tfa: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> list[RunSpec]:
    """Every (dataset, net, dropout, segments, seed, fold) run of the grid whose segments fit the window,
    plus, with `tfa`, one TFa run per (dataset, seed, fold) and TFa optimiser. `grid` and `seeds` are one
    value or {net: value} (`seeds` may also hold "tfa"; default the largest). Datasets come cheapest
    first (TRAIN size × epochs), so the table fills row by row. `precision` is that of the V2S runs
    (`settings.PRECISIONS`; TFa runs are fp32).

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
            fits[net] = [seg for seg in segs if seg <= utils.max_segments(row["length"], offset)]
            if len(fits[net]) < len(segs):
                print(
                    f"{row['ucr_name']}: segments {sorted(set(segs) - set(fits[net]))} do not fit "
                    f"{row['length']}-sample series in the window; left out"
                )
        for seed in range(max(tfa_seeds if tfa else 0, *(counts[net] for net in nets))):
            for fold in fold_ids:
                common = {"fold": fold, "folds": folds, "n_train": row.get("n_train", 0)}
                specs += [
                    RunSpec(row["ucr_name"], net, dr, seg, seed, eps, data_dir, precision=precision, **common)
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
