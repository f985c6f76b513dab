"""settings (one source of truth for a program's setting and the shared numbers) and fitting (the optimiser and
the epoch rule both training paths use)."""

import dataclasses

import pytest

import fitting
import multi_program
import probes
import speech_models
import training
from settings import DEFAULT_OFFSET, HOP, N_FFT, N_FRAMES, N_SOURCE, ProgramSetting, dropout_rate


def test_a_runs_config_and_a_program_setting_share_their_defaults():
    config, program = training.V2SConfig(), ProgramSetting()
    assert config.program_setting(None) == program
    assert program.offset == config.offset == DEFAULT_OFFSET == 448
    assert (config.dr, config.dropout, program.dropout) == (4, 0.4, 0.4)  # tenths on the CLI, a rate inside


def test_dropout_is_converted_from_tenths_once():
    assert [dropout_rate(dr) for dr in (0, 1, 2, 3, 4)] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert training.V2SConfig(dr=2).program_setting([[0]]).dropout == 0.2


def test_a_setting_from_a_dict_refuses_unknown_keys():
    assert ProgramSetting.from_dict({"seg": 3, "dropout": 0.0}) == ProgramSetting(seg=3, dropout=0.0)
    with pytest.raises(ValueError, match="unknown program setting keys \\['segments'\\]"):
        ProgramSetting.from_dict({"segments": 3})


def test_a_stack_fills_in_the_maximal_first_map():
    resolved = multi_program.resolve(ProgramSetting(seed=3), n_classes=4)
    assert resolved.groups == [list(range(k * 9, k * 9 + 9)) for k in range(4)]
    assert dataclasses.replace(resolved, groups=None) == ProgramSetting(seed=3)


def test_the_shared_numbers_are_the_front_ends():
    assert len(speech_models.SOURCE_CLASSES) == N_SOURCE
    assert -(-16000 // HOP) == N_FRAMES and N_FFT == 8 * HOP  # 1 s end-padded into frames, 87.5 % overlap


@pytest.mark.parametrize("values, mode, chosen", [([0.5, 0.3, 0.3, 0.4], "min", 1), ([0.5, 0.7, 0.7, 0.6], "max", 1)])
def test_the_epoch_rule_takes_the_first_best_in_its_direction(values, mode, chosen):
    best, best_epoch = None, None
    for epoch, value in enumerate(values):
        if fitting.is_better(value, best, mode):
            best, best_epoch = value, epoch
    assert best_epoch == chosen


def test_a_monitor_without_a_known_direction_needs_a_mode():
    assert fitting.monitor_mode("val_ce") == "min" and fitting.monitor_mode("test_accuracy") == "max"
    assert fitting.monitor_mode(None) is None and fitting.monitor_mode("val_error", "min") == "min"
    with pytest.raises(ValueError, match="val_error"):
        training.EpochSelector("val_error")
    with pytest.raises(ValueError, match="'min' or 'max'"):
        fitting.is_better(1.0, 2.0, "lowest")


def test_seeded_subsets_are_sorted_repeatable_and_all_when_small():
    picked = probes.subset_indices(50, 10, seed=3)
    assert len(picked) == 10 and list(picked) == sorted(picked) and len(set(picked)) == 10
    assert list(picked) == list(probes.subset_indices(50, 10, seed=3)) != list(probes.subset_indices(50, 10, seed=4))
    assert list(probes.subset_indices(5, 10)) == list(probes.subset_indices(5, 0)) == [0, 1, 2, 3, 4]
