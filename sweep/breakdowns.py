"""The pages beside Table 2 that break its numbers down, all from the same run records: what each protocol
chose (table2_choices.md), the small grid vs all settings of the same runs (table2_grid.md) and the first 100
vs all epochs (table2_eps<N>_vs_100.md). Each is one paragraph and one table, written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import reporting
import utils
from paper_tables import REVISED_V2SA
from sweep.plan import GRIDS
from sweep.protocols import PROTOCOLS, TFA_PROTOCOLS, column_key, first_epochs, protocol_scores
from sweep.tables import column_label, is_net_key, unflagged


def _write_markdown(path: Path, title: str, command: str, text: str, header: list[str], rows: list[list[str]]) -> Path:
    """A generated markdown page: the title, the command that made it, one paragraph and one table."""
    md = [f"# {title}", "", f"Command: `{command}`", "", text, "", *reporting.markdown_table(header, rows)]
    utils.atomic_write_bytes(path, ("\n".join(md) + "\n").encode())
    return path


def epochs_table(records: list[dict], short: int, out: Path, command: str) -> Path | None:
    """`<out>/table2_eps<N>_vs_<short>.md`: do more epochs move the protocols? Per (dataset, column), each
    protocol's mean TEST accuracy over seeds (percent) after the first `short` epochs and after all N epochs
    of the same runs (`first_epochs`), and the epoch `original` chooses at N. Only (dataset, column, seed)
    groups whose every record has the per-epoch TEST history are compared (older records have none); None
    (nothing written) if there is no such group."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["dataset"]["name"], column_key(r), r["config"]["seed"]), []).append(r)
    records = [
        r for members in groups.values() if all("test_accuracy" in m["history"] for m in members) for r in members
    ]
    if not records:
        return None
    epochs = max(len(r["history"]["test_accuracy"]) for r in records)
    full = protocol_scores(records)
    cut = protocol_scores([first_epochs(r, short) for r in records])
    shown = [p for p in PROTOCOLS if any(p in s for s in full.values())]
    header = ["dataset", "column", *(f"{p}: {short} → {epochs} epochs" for p in shown), "original's epoch"]
    rows = []
    for key in sorted(full):
        protocols = PROTOCOLS if is_net_key(key[1]) else TFA_PROTOCOLS
        cells = [
            f"{100 * np.mean(cut[key][p]):.2f} → {100 * np.mean(full[key][p]):.2f}"
            if p in protocols and p in full[key]
            else "–"
            for p in shown
        ]
        chosen = ", ".join(str(c["epoch"]) for c in full[key].get("original_choice", [])) or "–"
        rows.append([key[0], column_label(key[1]).removeprefix("ours "), *cells, chosen])
    return _write_markdown(
        out / f"table2_eps{epochs}_vs_{short}.md",
        f"More epochs: the first {short} vs all {epochs} epochs of the same runs",
        command,
        "Mean TEST accuracy over seeds (percent). The first epochs of a run are those of the shorter run "
        "(docs/reproduction.md), so each pair compares one set of runs.",
        header,
        rows,
    )


def grid_table(records: list[dict], lines: list[dict], out: Path, command: str) -> Path | None:
    """`<out>/table2_grid.md`: how much the grid adds, like for like. Per (dataset, net column) whose runs of
    a seed hold the small grid's 4 settings and more, every run with the per-epoch TEST history: each
    protocol's mean TEST accuracy (percent, over seeds) with the small grid's settings alone and with all the
    settings of the same runs, beside the paper's number (from the table `lines`); then the means over these
    rows and over the unflagged ones (ECG200 at the authors' 85.5). None (nothing written) if no group has
    them."""
    small = {(dr, seg) for dr in GRIDS["small"]["dr"] for seg in GRIDS["small"]["seg"]}
    groups: dict = {}
    for r in records:
        if is_net_key(column_key(r)):
            groups.setdefault((r["dataset"]["name"], column_key(r), r["config"]["seed"]), []).append(r)
    wide = [
        members
        for members in groups.values()
        if all(m["history"].get("test_accuracy") for m in members)
        and small < {(m["config"]["dr"], m["config"]["seg"]) for m in members}
    ]
    if not wide:
        return None
    every = protocol_scores([r for members in wide for r in members])
    only_small = protocol_scores(
        [r for members in wide for r in members if (r["config"]["dr"], r["config"]["seg"]) in small]
    )
    paper_of = {line["dataset"]: line for line in lines}
    kept = {line["dataset"]: line for line in unflagged(lines)}
    header = ["dataset", "column", "seeds", "settings"]
    header += [f"small grid: {p}" for p in PROTOCOLS] + [f"all settings: {p}" for p in PROTOCOLS] + ["paper"]
    rows, by_column = [], {}
    for key in sorted(every):
        label = column_label(key[1]).removeprefix("ours ")
        paper = paper_of.get(key[0], {}).get(f"paper {label}")
        values = [100 * np.mean(only_small[key][p]) for p in PROTOCOLS] + [
            100 * np.mean(every[key][p]) for p in PROTOCOLS
        ]
        by_column.setdefault(label, []).append((key[0], values, paper))
        cells = [f"{v:.2f}" for v in values] + [f"{paper:.2f}" if paper is not None else "–"]
        rows.append([key[0], label, str(len(every[key]["seeds"])), str(every[key]["n_settings"]), *cells])
    for label, members in by_column.items():
        for title, chosen, paper_lines in (
            ("all", members, paper_of),
            ("unflagged", [m for m in members if m[0] in kept], kept),
        ):
            if not chosen:
                continue
            means = np.mean([values for _, values, _ in chosen], axis=0)
            papers = [paper_lines[name].get(f"paper {label}") for name, _, _ in chosen]
            paper = f"{np.mean(papers):.2f}" if all(p is not None for p in papers) else "–"
            rows.append([f"**mean, {title} ({len(chosen)})**", label, "", "", *(f"{v:.2f}" for v in means), paper])
    return _write_markdown(
        out / "table2_grid.md",
        "The grid and the protocols, like for like",
        command,
        "Mean TEST accuracy (percent, over seeds) of the same runs, choosing among the small grid's settings "
        "(dropout {0, 0.4} × m {1, 10}) or among all the settings run. Rows: the run groups that hold the small "
        "grid and more, with the per-epoch TEST history. The unflagged mean leaves out the artefact rows and "
        f"compares ECG200 with the authors' revised {REVISED_V2SA['ECG200']}.",
        header,
        rows,
    )


def _setting(choice: dict) -> str:
    return f"{choice['dr'] / 10:g} / {choice['seg']}"


def choices_table(scores: dict, out: Path, command: str) -> Path | None:
    """`<out>/table2_choices.md`: what each protocol chose, per (dataset, net column) and seed: the setting
    (dropout / m) of honest and of setting-on-test, and the setting and epoch of original, with how many
    settings reach original's TEST accuracy at some epoch (many ties: the number says little about the
    setting). Only groups with the per-epoch TEST history; None (nothing written) if there are none."""
    rows = []
    for key in sorted(k for k in scores if is_net_key(k[1]) and scores[k].get("original_choice")):
        score = scores[key]
        for i, seed in enumerate(score["seeds"]):
            original = score["original_choice"][i]
            rows.append(
                [
                    key[0],
                    column_label(key[1]).removeprefix("ours "),
                    str(seed),
                    str(original["settings"]),
                    f"{_setting(score['settings'][i])}: {100 * score['honest'][i]:.2f}",
                    f"{_setting(score['test_settings'][i])}: {100 * score['setting-on-test'][i]:.2f}",
                    f"{_setting(original)}, epoch {original['epoch']}: {100 * score['original'][i]:.2f}",
                    str(original["tied"]),
                ]
            )
    if not rows:
        return None
    header = ["dataset", "column", "seed", "settings", "honest", "setting-on-test", "original", "settings tied"]
    return _write_markdown(
        out / "table2_choices.md",
        "What each protocol chose",
        command,
        "Per run group and seed: the chosen setting as dropout / m (copies of the series) and its TEST accuracy "
        "(percent); for original also the epoch (1-based). Settings tied: how many settings reach original's "
        "TEST accuracy at some epoch. Ties: honest takes the smaller dropout, then m; setting-on-test and "
        "original the larger, and original the earlier epoch.",
        header,
        rows,
    )
