"""The bf16 acceptance test of the fast path (docs/performance.md): the honest TEST accuracy of the same
plan trained in float32 and in bfloat16 products, per dataset, from the sweep's run records.

bf16 is accepted if, on every dataset, its mean honest accuracy over seeds lies within the fp32 runs' seed
spread (their smallest to largest seed), and its mean over datasets is within 0.5 points of fp32's.
Accuracies are fractions (0-1) in, percentage points out.
"""

from __future__ import annotations

import numpy as np

from settings import DEFAULT_PRECISION
from sweep.protocols import protocol_scores

MEAN_TOLERANCE = 0.5  # points: the largest accepted |bf16 - fp32| of the mean over datasets
_EPS = 1e-9  # accuracies are ratios k/n: a tie with a bound must not depend on floating-point rounding


def compare(records: list[dict], other: str = "bf16") -> dict:
    """Honest TEST accuracy per dataset and precision, and the verdict.

    Records of both precisions (`config.precision`, absent: fp32) of one plan; a dataset counts only
    if both precisions have the same seeds and the same number of settings per seed. Returns {"rows": [{dataset, net, seeds, fp32 (per seed,
    points), <other> (per seed), fp32_mean, fp32_min, fp32_max, <other>_mean, within_spread}], "mean_fp32",
    "mean_<other>", "mean_difference", "every_dataset_within_spread", "mean_within_tolerance", "accepted"}.
    """
    split = {DEFAULT_PRECISION: [], other: []}
    for record in records:
        precision = record["config"].get("precision", DEFAULT_PRECISION)
        if precision in split:
            split[precision].append(record)
    scores = {precision: protocol_scores(recs) for precision, recs in split.items()}
    rows = []
    for key in sorted(set(scores[DEFAULT_PRECISION]) & set(scores[other])):
        base, low = scores[DEFAULT_PRECISION][key], scores[other][key]
        if base["seeds"] != low["seeds"] or base["n_settings"] != low["n_settings"]:
            continue
        fp32 = [100 * v for v in base["honest"]]
        reduced = [100 * v for v in low["honest"]]
        rows.append(
            {
                "dataset": key[0],
                "net": key[1],
                "seeds": base["seeds"],
                DEFAULT_PRECISION: fp32,
                other: reduced,
                "fp32_mean": float(np.mean(fp32)),
                "fp32_min": min(fp32),
                "fp32_max": max(fp32),
                f"{other}_mean": float(np.mean(reduced)),
                "within_spread": min(fp32) - _EPS <= float(np.mean(reduced)) <= max(fp32) + _EPS,
            }
        )
    result = {"rows": rows, "other": other}
    if rows:
        mean_fp32 = float(np.mean([r["fp32_mean"] for r in rows]))
        mean_other = float(np.mean([r[f"{other}_mean"] for r in rows]))
        result.update(
            {
                "mean_fp32": mean_fp32,
                f"mean_{other}": mean_other,
                "mean_difference": mean_other - mean_fp32,
                "every_dataset_within_spread": all(r["within_spread"] for r in rows),
                "mean_within_tolerance": abs(mean_other - mean_fp32) <= MEAN_TOLERANCE + _EPS,
            }
        )
        result["accepted"] = result["every_dataset_within_spread"] and result["mean_within_tolerance"]
    return result


def markdown(result: dict, command: str) -> str:
    """The comparison as a Markdown table with its verdict lines (`compare`'s result)."""
    other = result["other"]
    lines = [
        f"# {other} vs fp32: honest TEST accuracy (%)",
        "",
        f"Command: `{command}`",
        "",
        f"| dataset | net | seeds | fp32 per seed | fp32 mean | fp32 spread | {other} per seed | {other} mean | within spread |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['dataset']} | {r['net']} | {len(r['seeds'])} | {', '.join(f'{v:.1f}' for v in r['fp32'])} | "
            f"{r['fp32_mean']:.2f} | {r['fp32_min']:.1f}–{r['fp32_max']:.1f} | "
            f"{', '.join(f'{v:.1f}' for v in r[other])} | {r[f'{other}_mean']:.2f} | "
            f"{'yes' if r['within_spread'] else 'no'} |"
        )
    lines.append("")
    if not result["rows"]:
        lines.append("No dataset has records of both precisions with the same seeds yet.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Mean over {len(result['rows'])} datasets: fp32 {result['mean_fp32']:.2f}, {other} "
        f"{result[f'mean_{other}']:.2f} (difference {result['mean_difference']:+.2f} points; tolerance "
        f"{MEAN_TOLERANCE}).",
        f"Every dataset within the fp32 seed spread: {'yes' if result['every_dataset_within_spread'] else 'no'}; "
        f"mean within tolerance: {'yes' if result['mean_within_tolerance'] else 'no'} -> "
        f"{other} {'accepted' if result['accepted'] else 'not accepted'} on accuracy.",
    ]
    lines += [
        "",
        "Speed is not read from these records (their wall time includes other jobs on the cores): the timed, "
        "interleaved comparison is in docs/performance.md (tried and not kept).",
    ]
    return "\n".join(lines) + "\n"
