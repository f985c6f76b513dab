"""runs: the names of runs (which resuming a sweep depends on) and reading a saved record."""

import json

import numpy as np
import pytest
from helpers import config

import reproduce
import runs
from utils import V2SError


def test_a_single_runs_name_spells_its_settings(tmp_path):
    assert runs.single_run_name(config(tmp_path), "Toy", 3) == "Toy_net0_mod1_map3first_seg1_dr4_eps3_seed5"
    assert (
        runs.single_run_name(config(tmp_path, offset=0, mask=True, dr=2.5), "Toy", 3)
        == "Toy_net0_mod1_map3first_seg1_off0_dr2.5_mask_eps3_seed5"
    )
    assert runs.single_run_name(config(tmp_path, mod="tfa"), "Toy", None) == "Toy_net0_modtfa_eps3_seed5"


def test_a_sweep_runs_name_is_unchanged():
    """Names are record file names: a sweep resumes by them, so they must not drift."""
    assert reproduce.RunSpec("ECG200", "0", 4, 10, 2, 100, None).name == "ECG200_net0_dr4_seg10_seed2_eps100"
    assert (
        reproduce.RunSpec("ECG200", "3", 0, 1, 0, 100, None, fold=1, folds=5).name
        == "ECG200_net3_dr0_seg1_seed0_eps100_fold1of5"
    )
    assert (
        reproduce.RunSpec("ECG200", "0", 0, 1, 0, 100, None, mod="tfa", optimiser="adam1e-3").name
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
