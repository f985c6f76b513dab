"""runs: the names of runs (which resuming a sweep depends on), reading a saved record and the flags that name one."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import config

import runs
import validation
from sweep.plan import RunSpec
from utils import V2SError


def test_a_single_runs_name_spells_its_settings(tmp_path):
    assert runs.single_run_name(config(tmp_path), "Toy", 3) == "Toy_net0_mod1_map3first_seg1_dr4_eps3_seed5"
    assert (
        runs.single_run_name(config(tmp_path, offset=0, mask=True, dr=2.5), "Toy", 3)
        == "Toy_net0_mod1_map3first_seg1_off0_dr2.5_mask_eps3_seed5"
    )
    assert runs.single_run_name(config(tmp_path, mod="tfa"), "Toy", None) == "Toy_net0_modtfa_eps3_seed5"
    assert (
        runs.single_run_name(config(tmp_path, precision="bf16"), "Toy", 3)
        == "Toy_net0_mod1_map3first_seg1_dr4_eps3_seed5_bf16"
    )


def test_a_sweep_runs_name_is_unchanged():
    """Names are record file names: a sweep resumes by them, so they must not drift."""
    assert RunSpec("ECG200", "0", 4, 10, 2, 100, None).name == "ECG200_net0_dr4_seg10_seed2_eps100"
    assert (
        RunSpec("ECG200", "0", 4, 10, 2, 100, None, precision="bf16").name == "ECG200_net0_dr4_seg10_seed2_eps100_bf16"
    )
    assert (
        RunSpec("ECG200", "3", 0, 1, 0, 100, None, fold=1, folds=5).name == "ECG200_net3_dr0_seg1_seed0_eps100_fold1of5"
    )
    assert (
        RunSpec("ECG200", "0", 0, 1, 0, 100, None, mod="tfa", optimiser="adam1e-3").name
        == "ECG200_net0_tfa-adam1e-3_seed0_eps100"
    )
    assert runs.fidelity_stack_name("Wine", "const", 0, 100) == "Wine_const_seed0_eps100"


def test_a_record_missing_what_rebuilding_needs_is_a_clear_error(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"config": {}, "dataset": {}, "label_mapping": {"type": "first"}}))
    with pytest.raises(V2SError, match="not a v2s run record \\(no label_mapping.groups\\)"):
        runs.read_record(path)
    path.write_text("{not json")
    with pytest.raises(V2SError, match="not a v2s run record \\(JSONDecodeError"):
        runs.read_record(path)


def test_records_from_before_the_offset_are_tiled_at_zero():
    x = np.ones((1, 100), np.float32)
    assert runs.tile_for_run({"config": {"seg": 1}}, x)[0, :100].sum() == 100
    assert runs.tile_for_run({"config": {"seg": 1, "offset": 448}}, x)[0, 448:548].sum() == 100


def _run_flags(argv: list[str], weight_required: bool = True):
    """`argv` parsed by a script's parser: `runs.add_run_flags` plus the script's own --out."""
    parser = validation.ArgumentParser()
    runs.add_run_flags(parser, weight_required=weight_required)
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def test_weight_is_required_only_where_the_script_has_no_other_input():
    with pytest.raises(V2SError, match="--weight"):
        _run_flags([])
    assert _run_flags([], weight_required=False).weight is None


def test_bad_run_flags_are_refused_before_anything_is_loaded(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    for argv, message in (
        (["--mapping", "0"], "--mapping 0: must be at least 1"),
        (["--out", str(tmp_path)], "--out .*is a folder"),
        (["--results-dir", str(plain)], "--results-dir .*is a file, not a folder"),
    ):
        with pytest.raises(V2SError, match=message):
            runs.check_run_flags(_run_flags(["--weight", "w", *argv]))
    runs.check_run_flags(_run_flags(["--weight", "w", "--results-dir", str(plain), "--out", str(tmp_path / "f.png")]))


@pytest.fixture
def run_dirs(tmp_path) -> list[str]:
    """--weight-dir and --results-dir of a saved run "Run" (Coffee, mapping 18, V2Sa): its weights in one
    folder, its record only in the other."""
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "Run.weights.h5").write_bytes(b"")
    (tmp_path / "r").mkdir()
    record = {
        "run": "Run",
        "config": {"net": "0"},
        "dataset": {"name": "Coffee"},
        "label_mapping": {"per_class": 18, "groups": [list(range(18)), list(range(18, 36))]},
    }
    (tmp_path / "r" / "Run.json").write_text(json.dumps(record))
    return ["--weight-dir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r")]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dataset", "Wine"], "--dataset Wine (Wine) but the run was trained on Coffee"),
        (["--mapping", "3"], "--mapping 3 but the run was trained with mapping 18"),
        (["--net", "3"], "--net 3 (v2su) but the run reprograms v2sa"),
    ],
)
def test_the_run_is_found_where_its_flags_say_and_checked_against_them(run_dirs, flags, message):
    with pytest.raises(V2SError, match=re.escape(message)):
        runs.load_run_from_flags(_run_flags(["--weight", "Run", *run_dirs, *flags]))


def test_a_missing_run_names_where_it_was_looked_for(run_dirs):
    with pytest.raises(V2SError, match=re.escape(str(Path(run_dirs[1]) / "NoSuchRun.weights.h5"))):
        runs.load_run_from_flags(_run_flags(["--weight", "NoSuchRun", *run_dirs]))


def test_the_output_goes_to_out_or_else_into_the_results_folder(tmp_path):
    assert runs.output_path(str(tmp_path / "f.png"), str(tmp_path / "r"), "run_cam.png") == tmp_path / "f.png"
    assert runs.output_path(None, str(tmp_path / "r"), "run_cam.png") == tmp_path / "r" / "run_cam.png"
    assert runs.output_path(None, None, "run_cam.png") == runs.RESULTS_DIR / "run_cam.png"
