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

This script is the command line; the `sweep` package does the work (plan, stack, executor, protocols,
tables, figures). Beside table2.md it writes table2_choices.md (the setting and epoch each protocol chose)
and table2_grid.md (the small grid vs all settings of the same runs). The last line printed is
`table=<path of table2.md>` (or table3.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import utils
import validation
from settings import DEFAULT_PRECISION, MEL_NETS
from sweep.breakdowns import choices_table, epochs_table, grid_table
from sweep.executor import execute, failed_runs, load_records
from sweep.plan import NET_NAMES, grid_name, per_net, plan_runs, seed_count, select_datasets
from sweep.protocols import PROTOCOLS, baseline_scores, protocol_scores
from sweep.tables import (
    build_table,
    constant_predictor_notes,
    majority_notes,
    scoring_artefact_notes,
    table3,
    write_outputs,
)
from utils import V2SError

PAPER_EPOCHS = 100  # the paper's epochs per run

DEFAULT_OUT = utils.PROJECT_DIR / "results" / "table2"


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
    parser.add_argument(
        "--nets", default="0", help="comma-separated source AMs: 0 V2Sa, 3 V2Su, 6 cnn1d_small (raw waveform)"
    )
    parser.add_argument(
        "--seeds",
        default="3",
        help="seeds 0..N-1 per setting: N for every AM, or per AM, e.g. 0=1,3=3 (tfa=N for TFa; default the largest)",
    )
    parser.add_argument(
        "--eps",
        type=int,
        default=PAPER_EPOCHS,
        help=f"epochs per run (the paper: {PAPER_EPOCHS}); above {PAPER_EPOCHS}, also a table of every protocol "
        f"after the first {PAPER_EPOCHS} epochs vs all epochs of the same runs (table2_eps<N>_vs_{PAPER_EPOCHS}.md)",
    )
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
    parser.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        help="the V2S runs' fast-path products: fp32 (default) or bf16 (opt-in, V2Sa/V2Su only; records named "
        "..._bf16; docs/performance.md)",
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
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    for flag in ("eps", "jobs", "programs"):
        validation.at_least(f"--{flag}", getattr(args, flag), 1, whole=True)
    validation.zero_or_at_least("--folds", args.folds, 2, "0: one 20% validation split")
    validation.data_dir("--data-dir", args.data_dir)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    if not nets:
        raise V2SError("--nets: give at least one source AM (0 V2Sa, 3 V2Su, 6 cnn1d_small)")
    for net in nets:
        if net not in NET_NAMES:
            raise V2SError(f"--nets {net}: Table 2 compares 0 (V2Sa), 3 (V2Su) and 6 (cnn1d_small)")
    validation.precision_settings(args)
    if args.precision != DEFAULT_PRECISION and any(validation.net_name(net) not in MEL_NETS for net in nets):
        raise V2SError(f"--precision {args.precision}: only the mel AMs (--nets 0,3) have the fast path")
    if args.precision != DEFAULT_PRECISION and Path(args.out).resolve() == DEFAULT_OUT.resolve():
        raise V2SError(
            f"--precision {args.precision}: give another --out than {DEFAULT_OUT} (its tables are Table 2's, fp32)"
        )
    grids = per_net(args.grid, nets, "--grid", grid_name)
    seeds = per_net(args.seeds, nets, "--seeds", seed_count, extra=("tfa",))
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
    tabled = plan_runs(
        rows, nets, grids, seeds, args.eps, args.data_dir, args.folds, tfa=True, precision=args.precision
    )
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
        + scoring_artefact_notes(rows)
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
    extras = {"choices": choices_table(scores, out, command)}
    extras["grid"] = grid_table(load_records(str(out), tabled), lines, out, command)
    for name, path in extras.items():
        if path:
            print(f"{name}={path}")
    if args.eps > PAPER_EPOCHS:  # do more epochs move the protocols? the first 100 epochs of the same runs
        epochs = epochs_table(load_records(str(out), tabled), PAPER_EPOCHS, out, command)
        if epochs:
            print(f"epochs={epochs}")
    for column, stats in summary.items():
        print(
            f"{column:<24} mean {stats['mean']:.2f}  median {stats['median']:.2f}  MPCE {stats['mpce']:.2f}  "
            f"wins {stats['wins']}/{stats['n']}"
        )
    print(f"table={table}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
