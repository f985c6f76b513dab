"""The paper's TFa baseline (`--mod tfa`): no program, the AM fine-tuned with a dense head (tiny AM, toy data)."""

import json

import numpy as np
import pytest
from helpers import TINY_AM_INFO, assert_one_line_error, config, make_tiny_am, v2s_main, write_toy

import probes
import runs
import training
import ts_model
import tsne_v2s
from settings import DEFAULT_OFFSET
from utils import V2SError


def run_tfa(tmp_path, am=None, **overrides):
    return training.run(config(tmp_path, mod="tfa", eps=2, **overrides), am=am or make_tiny_am(), am_info=TINY_AM_INFO)


@pytest.fixture
def toy(tmp_path):
    write_toy(tmp_path / "data")
    return tmp_path


def test_tfa_model_is_the_am_and_a_dense_head_without_a_program():
    model = ts_model.build_tfa(make_tiny_am(), n_classes=3)
    assert [layer.name for layer in model.layers] == ["waveform", "tiny_am", "tfa_head"]
    assert not any("theta" in w.path for w in model.weights)
    assert model.get_layer("tfa_head").units == 3
    assert model.get_layer("tiny_am").trainable and all(layer.trainable for layer in model.get_layer("tiny_am").layers)
    assert model.output.shape == (None, 3)
    assert model(np.zeros((2, 16000), np.float32)).shape == (2, 3)


def test_fit_trains_the_am_and_its_batchnorm_statistics(toy):
    am = make_tiny_am()
    before = {w.path: np.array(w) for w in am.weights}
    run_tfa(toy, am=am)
    after = {w.path: np.array(w) for w in am.weights}
    for path in ("conv/kernel", "output/kernel", "bn/gamma", "bn/moving_mean"):
        name = next(p for p in before if p.endswith(path))
        assert not np.allclose(before[name], after[name]), name


def test_record_says_tfa_and_carries_validation_and_test_metrics(toy):
    record = run_tfa(toy)
    saved = json.loads(open(record["results"]).read())
    assert saved["run"] == "Toy_net0_modtfa_eps2_seed5"
    assert saved["config"]["mod"] == "tfa" and saved["config"]["mapping"] is None
    assert saved["label_mapping"]["type"].startswith("none (TFa") and saved["label_mapping"]["groups"] is None
    assert saved["selection"]["criterion"] == "lowest validation loss (cross-entropy)"
    assert saved["selection"]["epoch"] == int(np.argmin(saved["history"]["val_ce"])) + 1
    chosen = saved["selection"]["epoch"] - 1
    assert saved["metrics"]["validation"]["ce"] == pytest.approx(saved["history"]["val_ce"][chosen], rel=1e-5)
    for split, n in (("train", saved["n_fit"]), ("validation", saved["n_validation"]), ("test", 20)):
        correct = saved["metrics"][split]["accuracy"] * n  # a whole number of the split's series
        assert correct == pytest.approx(round(correct), abs=1e-4), split
        assert saved["metrics"][split]["loss"] == pytest.approx(saved["metrics"][split]["ce"], rel=1e-5)  # no L2
    head = ts_model.build_tfa(make_tiny_am(), n_classes=2).get_layer("tfa_head").count_params()
    assert saved["trainable_params"] == sum(int(np.prod(w.shape)) for w in make_tiny_am().trainable_weights) + head
    assert saved["weights"].endswith("Toy_net0_modtfa_eps2_seed5.keras")


@pytest.mark.parametrize(
    "flags, named", [(dict(seg=3), "--seg 3"), (dict(mask=True), "--mask"), (dict(swd=True), "--swd")]
)
def test_flags_that_need_a_program_are_refused_before_anything_is_written(toy, flags, named):
    with pytest.raises(V2SError, match=f"{named} cannot be used with --mod tfa"):
        run_tfa(toy, **flags)
    assert not (toy / "results").exists() and not (toy / "weight").exists()


def test_seg_with_tfa_is_a_one_line_cli_error_with_status_2(toy):
    result = v2s_main(
        "--dataset", "Toy", "--data-dir", str(toy / "data"), "--mod", "tfa", "--seg", "3", tmp_path=toy / "cli"
    )
    assert result.returncode == 2
    assert_one_line_error(result, "--seg 3", "--mod tfa")


def test_saved_model_loads_back_as_trained_and_tsne_reads_its_fine_tuned_am(toy):
    """The .keras file holds the chosen epoch's model: it scores TEST as the record says, and the
    logits tsne_v2s reads from it are those of the AM trained in this process."""
    import keras

    import ts_dataloader

    am = make_tiny_am()
    record = run_tfa(toy, am=am)
    reloaded = keras.saving.load_model(record["weights"], compile=False)
    data = ts_dataloader.load_dataset("Toy", str(toy / "data"))
    probs = reloaded.predict(ts_model.tile_segments(data.x_test, 1, DEFAULT_OFFSET), verbose=0)
    ce = -np.mean(np.log(probs[np.arange(len(data.y_test)), data.y_test]))
    assert ce == pytest.approx(record["metrics"]["test"]["ce"], rel=1e-5)
    assert np.mean(probs.argmax(axis=1) == data.y_test) == pytest.approx(record["metrics"]["test"]["accuracy"])
    waves = ts_model.tile_segments(data.x_train, 1, DEFAULT_OFFSET)
    np.testing.assert_allclose(
        tsne_v2s.tfa_logits(record["weights"], waves), probes.am_logits(am, waves), rtol=1e-5, atol=1e-5
    )


def test_v2s_tools_point_a_tfa_run_to_tsne(toy):
    record = run_tfa(toy)
    with pytest.raises(V2SError, match="is a TFa run .*--tfa-weight"):
        runs.find_run(record["run"], str(toy / "weight"), str(toy / "results"))
