"""Interpretation tools: Grad-CAM (cam_v2s.py), logits and t-SNE (tsne_v2s.py), sliced Wasserstein distance
(probes, training.SWDCallback, swd_table.py). Tiny models where the real AM is not needed."""

import dataclasses
import json

import numpy as np
import pytest
from helpers import (
    AM_FILE,
    SPEECH_DIR,
    TINY_AM_INFO,
    assert_every_flag_is_explained,
    config,
    make_tiny_am,
    make_tiny_tf_am,
    needs,
    parser_of,
    waves,
    write_speech,
    write_toy,
)

import cam_v2s
import probes
import runs
import swd_table
import training
import ts_dataloader
import ts_model
import tsne_v2s
import utils
from utils import V2SError

GSC_DIR = SPEECH_DIR / "gsc"


# ---------------------------------------------------------------------------------------------
# Sliced Wasserstein distance


class TestSlicedWasserstein:
    def test_a_sample_with_itself_is_zero(self):
        x = np.random.default_rng(0).normal(size=(300, 36))
        assert probes.sliced_wasserstein_distance(x, x) == pytest.approx(0.0, abs=1e-12)

    def test_one_dimensional_shift_by_d_is_exactly_d(self):
        x = np.random.default_rng(0).normal(size=500)
        assert probes.sliced_wasserstein_distance(x, x + 2.5) == pytest.approx(2.5, rel=1e-9)

    def test_two_gaussians_shifted_by_d_in_1d(self):
        rng = np.random.default_rng(1)
        a, b = rng.normal(size=(4000, 1)), rng.normal(loc=3.0, size=(4000, 1))
        assert probes.sliced_wasserstein_distance(a, b) == pytest.approx(3.0, abs=0.1)

    def test_two_gaussians_shifted_by_v_in_36_dims_give_norm_over_sqrt_dim(self):
        """SW2 of a translation by v is sqrt(E[(theta.v)^2]) = |v| / sqrt(d) for random unit directions."""
        rng = np.random.default_rng(2)
        v = np.zeros(36)
        v[:4] = 6.0  # |v| = 12, expected 12 / 6 = 2
        a, b = rng.normal(size=(2000, 36)), rng.normal(size=(2000, 36)) + v
        assert probes.sliced_wasserstein_distance(a, b, n_projections=1000) == pytest.approx(2.0, rel=0.07)
        assert probes.sliced_wasserstein_distance(a, a + v, n_projections=1000) == pytest.approx(2.0, rel=0.07)

    def test_seeded_projections_repeat(self):
        rng = np.random.default_rng(3)
        a, b = rng.normal(size=(100, 36)), rng.normal(size=(80, 36)) + 1
        assert probes.sliced_wasserstein_distance(a, b, seed=4) == probes.sliced_wasserstein_distance(a, b, seed=4)

    def test_different_dimensions_are_a_clear_error(self):
        with pytest.raises(V2SError, match="same d"):
            probes.sliced_wasserstein_distance(np.zeros((5, 36)), np.zeros((5, 10)))


# ---------------------------------------------------------------------------------------------
# Logits and Grad-CAM with a tiny model


class TestProbes:
    def test_logits_are_exact_pre_softmax_scores(self):
        am = make_tiny_tf_am()
        x = waves()
        logits = probes.am_logits(am, x)
        assert logits.shape == (3, 36)
        softmax = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), am.predict(x, verbose=0), atol=1e-6)

    def test_reprogrammed_waveform_is_series_plus_program(self):
        model = ts_model.build_v2s(make_tiny_am(), 2, [[0, 1], [2, 3]])
        tiled = ts_model.tile_segments(np.ones((2, 100), np.float32))
        theta = model.get_layer("art").theta.numpy()[:, 0]
        np.testing.assert_allclose(probes.reprogram(model, tiled), tiled + theta[None, :], atol=1e-7)

    def test_series_are_tiled_as_the_run_was_trained(self):
        x = np.ones((2, 100), np.float32)
        record = {"config": {"seg": 2, "offset": 50}}
        np.testing.assert_array_equal(runs.tile_for_run(record, x), ts_model.tile_segments(x, 2, 50))
        assert runs.tile_for_run({"config": {"seg": 1}}, x)[0, :100].sum() == 100  # records without offset

    @pytest.mark.parametrize("layer", ["conv2d", "conv2d_1"])
    def test_grad_cam_has_the_layers_time_frequency_shape_and_is_non_negative(self, layer):
        cam = cam_v2s.grad_cam(make_tiny_tf_am(), waves(), layer)
        assert cam.heatmap.shape == (3, 125, 128)
        assert (cam.heatmap >= 0).all() and (cam.normalised >= 0).all() and (cam.normalised <= 1 + 1e-6).all()

    def test_grad_cam_explains_the_predicted_target_class_through_the_label_map(self):
        am = make_tiny_tf_am()
        groups = [[0, 1, 2], [3, 4, 5]]
        model = ts_model.build_v2s(am, 2, groups)
        x = waves(4)
        cam = cam_v2s.grad_cam(am, probes.reprogram(model, x), "conv2d", ts_model.mapping_matrix(groups))
        predicted = model.predict(x, verbose=0)
        np.testing.assert_array_equal(cam.classes, predicted.argmax(1))
        np.testing.assert_allclose(cam.scores, predicted.max(1), rtol=1e-5)

    def test_guided_grad_cam_is_never_all_zero_for_a_one_channel_layer(self):
        cam = cam_v2s.grad_cam(make_tiny_tf_am(), waves(), "conv2d_1", method="guided")
        assert (cam.heatmap.reshape(3, -1).max(1) > 0).all()

    def test_unknown_layer_lists_the_conv_layers(self):
        with pytest.raises(V2SError, match="no layer 'conv9'.*conv2d, conv2d_1"):
            cam_v2s.grad_cam(make_tiny_tf_am(), waves(1), "conv9")

    def test_five_panel_figure_is_written(self, tmp_path):
        am = make_tiny_tf_am()
        x = waves(1)[0]
        mel, attention, cams, scores = cam_v2s.analyse(am, x, ["conv2d", "conv2d_1"])
        assert mel.shape == (125, 128) and attention.shape == (125,) and scores.shape == (36,)
        out = tmp_path / "cam.png"
        cam_v2s.plot_cam(cam_v2s.CamInputs("tiny", x, x, mel, attention, cams, "class 0"), out)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000

    def test_tsne_figure_is_written_with_a_note_when_no_tfa(self, tmp_path):
        rng = np.random.default_rng(0)
        labels = np.arange(20) % 2
        logits = rng.normal(size=(20, 36)) + 4 * labels[:, None]
        embedding = tsne_v2s.tsne_2d(logits)
        assert embedding.shape == (20, 2)
        assert tsne_v2s.separation(logits, labels) > 0.3
        out = tmp_path / "tsne.png"
        tsne_v2s.plot_tsne(
            [("(1) a", embedding, 0.1), ("(2) b", embedding, 0.2), ("(3) TFa", None, np.nan)],
            labels,
            ["0", "1"],
            "title",
            out,
        )
        assert out.stat().st_size > 10_000

    def test_tfa_logits_come_from_the_fine_tuned_am(self, tmp_path):
        import keras

        am = make_tiny_tf_am()
        wave = keras.Input(shape=(16000,))
        tfa = keras.Model(wave, keras.layers.Dense(2, activation="softmax")(am(wave)))
        tfa.save(tmp_path / "tfa.keras")
        np.testing.assert_allclose(
            tsne_v2s.tfa_logits(tmp_path / "tfa.keras", waves(2)), probes.am_logits(am, waves(2)), atol=1e-5
        )
        (tmp_path / "tfa.h5").write_bytes(b"not a model")
        with pytest.raises(V2SError, match=r"\.keras"):
            tsne_v2s.tfa_logits(tmp_path / "tfa.h5", waves(1))


# ---------------------------------------------------------------------------------------------
# SWD recorded during training


def test_swd_callback_records_one_value_per_epoch_and_plots_it(tmp_path, monkeypatch):
    write_toy(tmp_path / "data")
    monkeypatch.setenv("V2S_SPEECH_DIR", str(write_speech(tmp_path / "speech")))
    cfg = config(tmp_path, eps=3, val_split=0.0, swd=True, plot=True)
    record = training.run(cfg, am=make_tiny_am(), am_info=TINY_AM_INFO)
    swd = record["history"]["swd"]
    assert len(swd) == 3 and np.isfinite(swd).all() and min(swd) > 0
    assert record["swd"]["n_source"] == 9 and record["swd"]["n_projections"] == 1000
    saved = json.loads((tmp_path / "results" / f"{record['run']}.json").read_text())
    assert saved["history"]["swd"] == swd
    assert (tmp_path / "results" / f"{record['run']}.png").stat().st_size > 10_000

    # the last value is the documented quantity for the kept (last-epoch) weights
    model = ts_model.build_v2s(make_tiny_am(), 2, record["label_mapping"]["groups"])
    model.load_weights(record["weights"])
    speech, _ = probes.speech_sample(tmp_path / "speech", 400, cfg.seed)
    data = ts_dataloader.load_dataset("Toy", tmp_path / "data")
    fit = ts_dataloader.validation_split(
        ts_model.tile_segments(data.x_train, cfg.seg, cfg.offset), data.y_train, 0.0, cfg.seed
    )[0]
    am = probes.find_am(model)
    expected = probes.sliced_wasserstein_distance(
        probes.am_logits(am, speech), probes.am_logits(am, probes.reprogram(model, fit)), 1000, cfg.seed
    )
    assert swd[-1] == pytest.approx(expected, rel=1e-4)
    assert probes.swd(am, probes.am_logits(am, speech), fit, probes.program_of(model), 1000, cfg.seed) == pytest.approx(
        expected, rel=1e-12
    )


def test_swd_without_a_speech_folder_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("V2S_SPEECH_DIR", raising=False)
    monkeypatch.setattr(probes, "DEFAULT_SPEECH_DIR", probes.DEFAULT_SPEECH_DIR / "absent")
    with pytest.raises(V2SError, match="--speech-dir"):
        probes.speech_sample(None)


# ---------------------------------------------------------------------------------------------
# The scripts on a saved run of the real AM (no training: a V2S model around the original weights)


@pytest.fixture(scope="module")
def saved_run(original_v2sa, tmp_path_factory):
    """weight/<run>.weights.h5 + results/<run>.json of an untrained V2Sa-based V2S on a toy dataset."""
    root = tmp_path_factory.mktemp("run")
    write_toy(root / "data", n_train=12, n_test=6)
    data = ts_dataloader.load_dataset("Toy", root / "data")
    am, info = original_v2sa
    groups = ts_model.label_mapping(2, 18)
    model = ts_model.build_v2s(am, 2, groups)
    run = "Toy_net0_test"
    (root / "weight").mkdir()
    model.save_weights(root / "weight" / f"{run}.weights.h5")
    cfg = training.V2SConfig(dataset="Toy", data_dir=str(root / "data"), mapping=18, seg=2)
    record = {
        "run": run,
        "config": {**dataclasses.asdict(cfg), "dropout": cfg.dropout, "mapping": 18},
        "dataset": data.describe(),
        "label_mapping": {
            "type": "first",
            "per_class": 18,
            "groups": groups,
            "groups_named": [[runs.source_name(s) for s in g] for g in groups],
        },
        "am": dataclasses.asdict(info),
        "metrics": {"test": {"accuracy": 0.5}},
    }
    utils.atomic_write_json(root / "results" / f"{run}.json", record)
    return root, run


@pytest.mark.parametrize("module", [cam_v2s, tsne_v2s, swd_table])
def test_help_explains_every_flag(module, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert_every_flag_is_explained(parser_of(module.parse_args), text)
    assert "(default:" in text


def test_cam_needs_exactly_one_of_weight_and_audio():
    for argv in ([], ["--weight", "w", "--audio", "a.wav"], ["--audio", "a.wav", "--mapping", "3"]):
        with pytest.raises(V2SError, match="--weight|--audio"):  # one `error:` line, exit 2, via utils.run_cli
            cam_v2s.parse_args(argv)


def cli(module, args, capsys):
    """Run a script's main as the shell would (utils.run_cli); returns (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(lambda: module.main(args))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def dirs(root):
    return ["--weight-dir", str(root / "weight"), "--results-dir", str(root / "results")]


@needs(AM_FILE)
class TestScripts:
    def test_cam_writes_the_figure_and_prints_its_path_last(self, saved_run, capsys):
        root, run = saved_run
        status, out, _ = cli(cam_v2s, ["--weight", run, "--index", "1", *dirs(root)], capsys)
        assert status == 0
        figure = root / "results" / f"{run}_cam.png"
        assert out.strip().splitlines()[-1] == f"figure={figure}"
        assert figure.stat().st_size > 30_000

    @pytest.mark.parametrize(
        "flags, fragment",
        [
            (["--mapping", "9"], "--mapping 9 but the run was trained with mapping 18"),
            (["--net", "3"], "--net 3 (v2su) but the run reprograms v2sa"),
            (["--dataset", "ECG200"], "--dataset ECG200 (ECG200) but the run was trained on Toy"),
        ],
    )
    def test_mismatched_flags_are_one_line_errors(self, saved_run, capsys, flags, fragment):
        root, run = saved_run
        for module in (cam_v2s, tsne_v2s):
            status, _, err = cli(module, ["--weight", run, *flags, *dirs(root)], capsys)
            assert status == 2 and "Traceback" not in err
            assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err

    def test_missing_weights_and_index_out_of_range_are_one_line_errors(self, saved_run, capsys):
        root, run = saved_run
        status, _, err = cli(cam_v2s, ["--weight", "NoSuchRun", *dirs(root)], capsys)
        assert status == 2 and "not found" in err and err.count("\n") == 1
        status, _, err = cli(cam_v2s, ["--weight", run, "--index", "6", *dirs(root)], capsys)
        assert status == 2 and "--index 6 out of range" in err

    @needs(GSC_DIR)
    def test_cam_of_a_speech_clip_through_the_bare_am(self, tmp_path, capsys):
        clip = sorted((GSC_DIR / "yes").glob("*.wav"))[0]
        status, out, _ = cli(
            cam_v2s, ["--audio", str(clip), "--am-weights", str(AM_FILE), "--results-dir", str(tmp_path)], capsys
        )
        assert status == 0
        assert "AM predicts 'yes'" in out
        assert (tmp_path / f"v2sa_yes_{clip.stem}_cam.png").stat().st_size > 30_000

    def test_tsne_writes_the_three_panel_figure(self, saved_run, capsys):
        root, run = saved_run
        status, out, _ = cli(tsne_v2s, ["--weight", run, "--data-dir", str(root / "data"), *dirs(root)], capsys)
        assert status == 0
        assert out.strip().splitlines()[-1] == f"figure={root / 'results' / f'{run}_tsne.png'}"
        assert (root / "results" / f"{run}_tsne.png").stat().st_size > 10_000

    def test_swd_table_writes_csv_and_markdown(self, saved_run, tmp_path, capsys):
        root, run = saved_run
        speech = write_speech(tmp_path / "speech")
        status, out, _ = cli(swd_table, ["--runs", run, "--speech-dir", str(speech), *dirs(root)], capsys)
        assert status == 0
        rows = (root / "results" / "swd_table.csv").read_text().splitlines()
        assert rows[0].split(",") == swd_table.FIELDS and len(rows) == 2
        markdown = (root / "results" / "swd_table.md").read_text()
        assert markdown.startswith("| AM | runs | datasets | source loss | SWD mean | SWD median |")
        assert "| v2sa | 1 | 1 |" in markdown
        assert out.strip().splitlines()[-1] == f"table={root / 'results' / 'swd_table.md'}"
