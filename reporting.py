"""Writing results for people: markdown tables, CSV files, figures (all written atomically), and the
curves of a run (`plot_history`). matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import csv
import io

import numpy as np

import utils


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A GitHub markdown table as lines: the header, the `|---|` rule and one line per row (cells as given)."""
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def write_csv(path, fields: list[str], rows: list[dict], extrasaction: str = "raise") -> None:
    """Write `rows` (dicts) under the header `fields` to `path`, atomically; a missing field is an empty cell.
    `extrasaction="ignore"` drops keys that are not in `fields` (the default refuses them)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, restval="", extrasaction=extrasaction)
    writer.writeheader()
    writer.writerows(rows)
    utils.atomic_write_bytes(path, buffer.getvalue().encode())


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int) -> None:
    """Lay out `fig`, write it to `path` as a PNG at `dpi` (atomically) and close it."""
    fig.tight_layout()
    utils.atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    pyplot().close(fig)


def plot_history(record: dict, path) -> None:
    """Accuracy, cross-entropy (and SWD if recorded) per epoch of a run record, for fit, validation (and
    test if monitored), the chosen epoch marked. Writes a PNG."""
    plt = pyplot()
    history = record["history"]
    epochs = np.arange(1, len(history["loss"]) + 1)
    metrics = ("accuracy", "ce", "swd") if "swd" in history else ("accuracy", "ce")
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6))
    for ax, metric in zip(axes, metrics):
        for prefix, label in (("", "fit"), ("val_", "validation"), ("test_", "test")):
            if prefix + metric in history:
                ax.plot(epochs, history[prefix + metric], label=label, **({"marker": "."} if metric == "swd" else {}))
        ax.axvline(record["selection"]["epoch"], color="grey", linestyle=":", label="chosen epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel({"ce": "cross-entropy", "swd": "sliced Wasserstein distance (logits)"}.get(metric, metric))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    test = record["metrics"]["test"]["accuracy"]
    fig.suptitle(f"{record['run']}  (test accuracy {test:.4f})", fontsize=9)
    save_figure(fig, path, dpi=110)
