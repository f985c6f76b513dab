"""Source loss and sliced Wasserstein distance of saved V2S runs, per acoustic model (the paper's Table 3).

Example:
    python swd_table.py                                   # every saved run in results/ with its weights
    python swd_table.py --runs 'results/*_net0_*eps100*' 'results/*_net3_*eps100*'

For each run: the sliced Wasserstein-2 distance (1,000 seeded projections, POT) between the AM's logits
(pre-softmax scores over its 36 classes) on a seeded sample of source speech and on the run's
reprogrammed TRAIN series (series tiled as in the run + its trained program), and the AM's
cross-entropy on that speech sample (the "source loss"). Per AM (V2Sa, V2Su, ...): the mean source loss
and the mean and median SWD over the runs' datasets. Written to <results-dir>/<name>.csv (one row per
run) and <name>.md (summary and rows); the last line printed is `table=<md path>`.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

import probes
import reporting
import runs
import utils
import validation
from utils import V2SError

FIELDS = [
    "am",
    "dataset",
    "run",
    "mod",
    "seg",
    "n_train",
    "n_speech",
    "source_loss",
    "source_accuracy",
    "swd",
    "test_accuracy",
]


def run_row(weight: str, speech: tuple[np.ndarray, np.ndarray], args) -> dict:
    """Source loss and SWD of one saved run (see the module docstring)."""
    model, record, data = runs.load_run(weight, args.weight_dir, args.results_dir, args.data_dir)
    am = probes.find_am(model)
    waves, labels = speech
    source_logits, loss, accuracy = probes.speech_logits(am, waves, labels)
    x = probes.subsample(data.x_train, args.max_series, args.seed)
    swd = probes.swd(
        am, source_logits, runs.tile_for_run(record, x), probes.program_of(model), args.projections, args.seed
    )
    return {
        "am": validation.net_name(record["config"]["net"]),
        "dataset": data.name,
        "run": record["run"],
        "mod": record["config"]["mod"],
        "seg": record["config"]["seg"],
        "n_train": len(x),
        "n_speech": len(labels),
        "source_loss": round(loss, 4),
        "source_accuracy": round(accuracy, 4),
        "swd": round(swd, 4),
        "test_accuracy": _round(record.get("metrics", {}).get("test", {}).get("accuracy")),
    }


def _round(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


def summarise(rows: list[dict]) -> list[dict]:
    """Per AM: runs, datasets, mean source loss, mean and median SWD."""
    out = []
    for am in sorted({row["am"] for row in rows}):
        mine = [row for row in rows if row["am"] == am]
        swd = np.array([row["swd"] for row in mine])
        out.append(
            {
                "am": am,
                "runs": len(mine),
                "datasets": len({row["dataset"] for row in mine}),
                "source_loss": round(float(np.mean([row["source_loss"] for row in mine])), 4),
                "swd_mean": round(float(swd.mean()), 4),
                "swd_median": round(float(np.median(swd)), 4),
            }
        )
    return out


def markdown(summary: list[dict], rows: list[dict], note: str) -> str:
    """The summary table, then one row per run, as GitHub markdown."""
    lines = reporting.markdown_table(
        ["AM", "runs", "datasets", "source loss", "SWD mean", "SWD median"],
        [
            [
                s["am"],
                str(s["runs"]),
                str(s["datasets"]),
                f"{s['source_loss']:.4f}",
                f"{s['swd_mean']:.4f}",
                f"{s['swd_median']:.4f}",
            ]
            for s in summary
        ],
    )
    lines += ["", note, ""]
    lines += reporting.markdown_table(FIELDS, [["" if row[f] is None else str(row[f]) for f in FIELDS] for row in rows])
    return "\n".join(lines) + "\n"


def find_runs(patterns: list[str] | None, results_dir: Path, weight_dir: Path) -> list[str]:
    """Run names from paths, names or glob patterns; default every record in results_dir with its weights."""
    if not patterns:
        names = sorted(p.stem for p in results_dir.glob("*.json") if (weight_dir / f"{p.stem}.weights.h5").is_file())
        if not names:
            raise V2SError(
                f"no saved runs (results/<run>.json with weight/<run>.weights.h5) in {results_dir}; "
                "train some with v2s_main.py or pass --runs"
            )
        return names
    names = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matches:
            raise V2SError(f"--runs {pattern}: matches nothing")
        for match in matches:
            name = Path(match).name.removesuffix(".weights.h5").removesuffix(".json")
            if name not in names:
                names.append(name)
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--runs",
        nargs="*",
        default=None,
        help="saved runs: weights/record paths, run names or glob patterns (quote them); default every "
        "results/<run>.json whose weight/<run>.weights.h5 exists",
    )
    parser.add_argument(
        "--speech-dir",
        default=None,
        help="source speech, a Speech-Commands-layout folder (<word>/*.wav); default $V2S_SPEECH_DIR or "
        "../shared/speech/gsc (required if neither exists)",
    )
    parser.add_argument("--n-speech", type=int, default=probes.N_SPEECH, help="speech clips drawn (seeded); 0 = all")
    parser.add_argument(
        "--max-series",
        type=int,
        default=probes.N_TARGET_SERIES,
        help="use at most this many TRAIN series per dataset (seeded sample); 0 = all",
    )
    parser.add_argument(
        "--projections",
        type=int,
        default=probes.N_PROJECTIONS,
        help="random projections of the sliced distance (paper: 1,000)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds the speech sample, the series sample and the projections"
    )
    parser.add_argument(
        "--data-dir", default=None, help="where to read the datasets (default: as recorded in each run)"
    )
    parser.add_argument("--weight-dir", default=None, help="where the runs' weights are (default weight/)")
    parser.add_argument(
        "--results-dir", default=None, help="where the runs' records are and the table goes (default results/)"
    )
    parser.add_argument("--name", default="swd_table", help="file name stem of the CSV and markdown outputs")
    args = parser.parse_args(argv)
    validation.at_least("--n-speech", args.n_speech, 0, "0: all", whole=True)
    validation.at_least("--max-series", args.max_series, 0, "0: all", whole=True)
    validation.at_least("--projections", args.projections, 1, whole=True)
    validation.seed("--seed", args.seed)
    validation.file_name("--name", args.name)
    validation.data_dir("--data-dir", args.data_dir)
    if args.results_dir:
        validation.creatable_dir("--results-dir", args.results_dir)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    utils.setup_tensorflow(seed=args.seed)
    results_dir = Path(args.results_dir or runs.RESULTS_DIR)
    weight_dir = Path(args.weight_dir or runs.WEIGHT_DIR)
    names = find_runs(args.runs, results_dir, weight_dir)
    folder = args.speech_dir or probes.default_speech_dir()
    speech = probes.speech_sample(folder, args.n_speech, args.seed)
    rows = []
    for run in names:
        rows.append(run_row(run, speech, args))
        print(
            f"{rows[-1]['am']:<6} {rows[-1]['dataset']:<20} swd {rows[-1]['swd']:.4f}  "
            f"source loss {rows[-1]['source_loss']:.4f}  ({run})"
        )
    summary = summarise(rows)
    for s in summary:
        print(
            f"{s['am']}: {s['runs']} runs, source loss {s['source_loss']:.4f}, "
            f"SWD mean {s['swd_mean']:.4f} median {s['swd_median']:.4f}"
        )
    csv_path, md_path = results_dir / f"{args.name}.csv", results_dir / f"{args.name}.md"
    reporting.write_csv(csv_path, FIELDS, rows)
    note = (
        f"Source: {len(speech[1])} clips of {folder} (seed {args.seed}); source loss = the AM's mean cross-entropy "
        f"on them (nats). SWD: sliced Wasserstein-2 between the AM's logits on those clips and on each run's "
        f"reprogrammed TRAIN series, {args.projections} projections, seed {args.seed}."
    )
    utils.atomic_write_bytes(md_path, markdown(summary, rows, note).encode())
    print(f"csv={csv_path}")
    print(f"table={md_path}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
