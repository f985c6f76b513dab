"""The figure beside Table 2: our accuracy against the paper's, per dataset and protocol."""

from __future__ import annotations

from pathlib import Path

import reporting


def scatter(lines: list[dict], path: Path) -> None:
    """The scatter of Table 2 as a PNG at `path`: per line, our accuracy (percent; V2Sa and V2Su, one marker
    per protocol) against the paper's, naming the datasets more than 10 points off it under honest V2Sa."""
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
