"""The README's results are the committed table's numbers (regenerating the table without updating the
README fails here)."""

import csv

from helpers import ROOT

VS_PAPER = ROOT / "results" / "table2" / "table2_vs_paper.csv"


def _readme_results_rows() -> dict[tuple[str, str], list[str]]:
    """The README's results table: (protocol, rows) -> [datasets, ours mean / median, paper mean / median]."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Results\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 5 and cells[2].isdigit():
            rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_the_readme_results_table_is_the_committed_v2sa_comparison():
    expected = {}
    with VS_PAPER.open() as handle:
        for row in csv.DictReader(handle):
            if row["column"].startswith("ours V2Sa ("):
                protocol = row["column"][len("ours V2Sa (") : -1]
                expected[(protocol, row["rows"])] = [
                    row["datasets"],
                    f"{float(row['ours mean']):.2f} / {float(row['ours median']):.2f}",
                    f"{float(row['paper mean']):.2f} / {float(row['paper median']):.2f}",
                ]
    # three protocols over all rows, the unflagged rows and those without a scoring artefact
    assert len(expected) == 9
    assert _readme_results_rows() == expected


def test_the_readme_states_the_gap_under_original_over_the_unflagged_rows():
    with VS_PAPER.open() as handle:
        row = next(
            r for r in csv.DictReader(handle) if (r["rows"], r["column"]) == ("unflagged", "ours V2Sa (original)")
        )
    gap = f"{float(row['mean gap']):.2f}".replace("-", "\N{MINUS SIGN}")
    assert f"({gap} on {row['datasets']} rows)" in (ROOT / "README.md").read_text()
