"""Specifications of the source acoustic models: their architectures (speech_models.py), weights (am_weights.py),
speech folders (speech_data.py) and pretrain_am.py --eval-dir."""

import re
import shutil
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import AM_FILE, ROOT, SPEECH_DIR, needs
from scipy.io import wavfile
from scipy.signal import resample_poly

import am_weights
import speech_data
import speech_models as sm
import utils
import validation
from utils import V2SError

GSC = SPEECH_DIR / "gsc"
V2SA_PARAMS = 201_247
V2SU_PARAMS = 206_777


def core_clips(per_word: int) -> list:
    """The first `per_word` clips of each core-word folder of ../shared/speech/gsc."""
    return [wav for word in sm.CORE_WORDS for wav in sorted((GSC / word).glob("*.wav"))[:per_word]]


def assert_one_line_about(err: pytest.ExceptionInfo, path) -> None:
    message = str(err.value)
    assert "\n" not in message and str(path) in message


@pytest.fixture(scope="module")
def blank_v2sa():
    return sm.build_am("v2sa")


@pytest.fixture(scope="module")
def blank_v2su():
    return sm.build_am("v2su")


# --- architecture ---------------------------------------------------------------------------


@pytest.mark.parametrize("net, params", [("v2sa", V2SA_PARAMS), ("v2su", V2SU_PARAMS)])
def test_layer_names_shapes_and_parameter_counts(net, params, blank_v2sa, blank_v2su):
    model = {"v2sa": blank_v2sa, "v2su": blank_v2su}[net]
    for name in ("mel_stft", "conv2d", "conv2d_1", "attSoftmax", "output"):
        model.get_layer(name)
    assert model.count_params() == params
    assert tuple(model.input.shape) == (None, 16000)
    assert tuple(model.output.shape) == (None, 36)
    assert tuple(model.get_layer("mel_stft").output.shape) == (None, 125, 80, 1)
    assert tuple(model.get_layer("attSoftmax").output.shape) == (None, 125)
    assert model.get_layer("conv2d_1").filters == 1


def test_classes():
    assert len(sm.SOURCE_CLASSES) == 36 and sm.SOURCE_CLASSES[:3] == ("_unknown_", "nine", "yes")
    assert sm.SOURCE_CLASSES[-1] == "wow" and set(sm.CORE_WORDS) < set(sm.SOURCE_CLASSES)


CNN1D_PARAMS = 1_464_036


def test_cnn1d_layers_and_parameter_count():
    """The lab report's 256->64 shrinking network: 9 Conv1D(5) + BN + pooling to 2 steps, 2 dense layers.

    The report's 1,438,544 = convolutions (1,436,480) + Dense(128 -> 16); here + BatchNorm (6,400),
    + a hidden Dense(128) (16,512) and a 36-way output (4,644 instead of 2,064).
    """
    model = sm.build_am("cnn1d")
    assert model.count_params() == CNN1D_PARAMS
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.name for c in convs] == [f"conv1d_{i}" for i in range(1, 10)]
    assert [c.filters for c in convs] == [256, 256, 256, 256, 128, 128, 128, 128, 64]
    assert all(c.kernel_size == (5,) for c in convs)
    conv_params = sum(c.count_params() for c in convs)
    assert conv_params == 1_436_480 and conv_params + 128 * 16 + 16 == 1_438_544
    assert tuple(model.get_layer("pool_9").output.shape) == (None, 2, 64)
    assert tuple(model.input.shape) == (None, 16000) and tuple(model.output.shape) == (None, 36)
    model.get_layer("output")


def test_cnn1d_small_is_the_reports_64_to_16_network_with_the_same_head():
    """The lab report's cheaper shrinking network: channels 64 -> 16, the same pools and head as cnn1d.

    The report's 91,712 parameters; its convolutions are 90,320 of them. Built here: + BatchNorm
    (1,600), + a hidden Dense(32 -> 128) (4,224) and a 36-way output (4,644): 100,788, i.e. 9,076 more.
    """
    model = sm.build_am("cnn1d_small")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [c.filters for c in convs] == [64, 64, 64, 64, 32, 32, 32, 32, 16]
    assert all(c.kernel_size == (5,) for c in convs)
    assert sum(c.count_params() for c in convs) == 90_320
    assert model.count_params() == 100_788 == 91_712 + 9_076
    assert tuple(model.get_layer("pool_9").output.shape) == (None, 2, 16)
    assert tuple(model.input.shape) == (None, 16000) and tuple(model.output.shape) == (None, 36)
    with pytest.raises(V2SError, match="raw waveform"):
        sm.build_body("cnn1d_small")


def test_build_body_has_the_full_models_weighted_layers():
    for net in ("v2sa", "v2su"):
        full, body = sm.build_am(net), sm.build_body(net)
        assert sorted(layer.name for layer in full.layers if layer.weights) == sorted(
            layer.name for layer in body.layers if layer.weights
        )
        assert body.count_params() == full.count_params()
    with pytest.raises(V2SError, match="raw waveform"):
        sm.build_body("cnn1d")


def test_body_with_copied_weights_matches_full_model_on_features(original_v2sa):
    model, _ = original_v2sa
    body = sm.build_body("v2sa")
    assert len(sm.copy_weights_by_name(model, body)) == 10
    x = np.random.default_rng(2).uniform(-0.3, 0.3, (2, 16000)).astype(np.float32)
    feats = keras.Model(model.input, model.get_layer("mel_stft").output).predict_on_batch(x)
    np.testing.assert_allclose(body.predict_on_batch(feats), model.predict_on_batch(x), atol=1e-5)


def test_keras3_save_and_reload_without_lambda(blank_v2sa, tmp_path):
    assert not [layer for layer in blank_v2sa.layers if isinstance(layer, keras.layers.Lambda)]
    blank_v2sa.save(tmp_path / "am.keras")
    reloaded = keras.models.load_model(tmp_path / "am.keras")
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    np.testing.assert_allclose(reloaded.predict_on_batch(x), blank_v2sa.predict_on_batch(x), atol=1e-6)


@pytest.mark.parametrize(
    "net, expected",
    [
        (0, "v2sa"),
        ("0", "v2sa"),
        ("V2SA", "v2sa"),
        (3, "v2su"),
        ("v2su", "v2su"),
        (5, "cnn1d"),
        ("CNN1D", "cnn1d"),
        (6, "cnn1d_small"),
        ("cnn1d_small", "cnn1d_small"),
    ],
)
def test_net_name(net, expected):
    assert validation.net_name(net) == expected


@pytest.mark.parametrize("net", [1, 2, "1"])
def test_net_name_vggish_not_available(net):
    with pytest.raises(V2SError, match="not available"):
        validation.net_name(net)


def test_net_name_invalid_lists_valid_values():
    with pytest.raises(V2SError, match="valid values: 0 or v2sa, 3 or v2su, 5 or cnn1d, 6 or cnn1d_small"):
        validation.net_name(7)


# --- the original weights on real speech ----------------------------------------------------


@needs(GSC)
def test_front_end_matches_tf_signal_reference(original_v2sa):
    """kapre STFT + TF mel matrix + log + per-example standardisation vs plain tf.signal.

    Tolerance 1e-4: both are float32 with the same ops; only reduction order may differ.
    """
    model, _ = original_v2sa
    waves = np.stack([speech_data.read_clip(path) for path in core_clips(1)])
    front = keras.Model(model.input, model.get_layer("mel_stft").output)
    got = front.predict_on_batch(waves)[..., 0]
    spec = tf.abs(tf.signal.stft(waves, 1024, 128, 1024, window_fn=tf.signal.hann_window, pad_end=True))
    mel = tf.tensordot(spec, tf.signal.linear_to_mel_weight_matrix(80, 513, 16000, 40.0, 8000.0), axes=1)
    logmel = tf.math.log(mel + 1e-6).numpy()
    mean = logmel.mean(axis=(1, 2), keepdims=True)
    want = (logmel - mean) / logmel.std(axis=(1, 2), keepdims=True)
    assert got.shape == (10, 125, 80)
    assert np.abs(got - want).max() <= 1e-4


@needs(GSC)
def test_original_weights_classify_gsc(original_v2sa):
    """All 671 clips (400 core-word) of ../shared/speech/gsc: ~4 s on 2 cores, so not marked slow."""
    model, info = original_v2sa
    assert info.original and info.sha256 == am_weights.AM_SHA256 and info.source == "argument"
    result = speech_data.predict_folder(model, GSC)
    assert result["n_core10"] == 400
    assert result["accuracy_core10"] >= 0.90
    assert result["accuracy_36"] >= 0.85
    assert result["skipped"] == ["LICENSE_CC-BY-4.0.txt"]


def test_all_zero_waveform_gives_finite_scores(original_v2sa):
    scores = original_v2sa[0].predict_on_batch(np.zeros((2, 16000), np.float32))
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)


@needs(GSC)
def test_frozen_model_batchnorm_runs_in_inference_mode(original_v2sa):
    model, _ = original_v2sa
    waves = np.stack([speech_data.read_clip(path) for path in core_clips(1)[:4]])
    conv_block = keras.Model(model.input, model.get_layer("batch_normalization_1").output)
    model.trainable = False
    try:
        np.testing.assert_allclose(conv_block(waves, training=True), conv_block(waves, training=False), atol=1e-6)
    finally:
        model.trainable = True
    assert not np.allclose(conv_block(waves, training=True), conv_block(waves, training=False), atol=1e-3)


# --- weight files ---------------------------------------------------------------------------


@needs(AM_FILE)
def test_legacy_h5_loads_every_layer_by_name_and_direction(original_v2sa):
    model, _ = original_v2sa
    with h5py.File(AM_FILE, "r") as fh:
        group = fh["model_weights"]
        conv = group["conv2d"]["conv2d/kernel:0"][()]
        backward = group["bidirectional_1"]["bidirectional_1/backward_lstm_1/lstm_cell_5/recurrent_kernel:0"][()]
        out_bias = group["output"]["output/bias:0"][()]
    np.testing.assert_array_equal(model.get_layer("conv2d").kernel.numpy(), conv)
    bidir = model.get_layer("bidirectional_1")
    np.testing.assert_array_equal(bidir.backward_layer.cell.recurrent_kernel.numpy(), backward)
    np.testing.assert_array_equal(model.get_layer("output").bias.numpy(), out_bias)


def _foreign_h5(path):
    with h5py.File(path, "w") as fh:
        fh.attrs["layer_names"] = [b"encoder"]
        fh.create_group("encoder").attrs["weight_names"] = [b"encoder/kernel:0"]
        fh["encoder"].create_dataset("encoder/kernel:0", data=np.zeros((3, 3), np.float32))


def _wrong_shape_h5(path):
    shutil.copy(AM_FILE, path)
    with h5py.File(path, "r+") as fh:
        layer = fh["model_weights"]["dense_1"]
        del layer["dense_1/kernel:0"]
        layer.create_dataset("dense_1/kernel:0", data=np.zeros((128, 65), np.float32))


def _truncated_h5(path):
    data = AM_FILE.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text_file(path):
    path.write_text("not a weights file\n")


@needs(AM_FILE)
@pytest.mark.parametrize(
    "make, message",
    [
        (_foreign_h5, r"layers do not match model 'v2sa' \(missing in file: batch_normalization, .*encoder"),
        (_wrong_shape_h5, r"dense_1/kernel has shape \(128, 65\) in the file, \(128, 64\) in the model"),
        (_truncated_h5, "cannot read as a Keras HDF5 weights file"),
        (_text_file, "cannot read as a Keras HDF5 weights file"),
    ],
)
def test_bad_weight_files_raise_one_line_and_load_nothing(make, message, blank_v2sa, tmp_path):
    path = tmp_path / "model-attRNN.h5"
    make(path)
    before = [v.numpy() for v in blank_v2sa.weights]
    with pytest.raises(V2SError, match=message) as err:
        am_weights.load_weights(blank_v2sa, path)
    assert_one_line_about(err, path)
    for variable, value in zip(blank_v2sa.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)


def test_missing_weights_file(blank_v2sa, tmp_path):
    with pytest.raises(V2SError, match="no such weights file"):
        am_weights.load_weights(blank_v2sa, tmp_path / "absent.h5")


def test_keras3_weights_round_trip(original_v2sa, tmp_path):
    model, _ = original_v2sa
    model.save_weights(tmp_path / "v2sa_local.weights.h5")
    copy = sm.build_am("v2sa")
    am_weights.load_weights(copy, tmp_path / "v2sa_local.weights.h5")
    x = np.random.default_rng(1).uniform(-0.3, 0.3, (2, 16000)).astype(np.float32)
    np.testing.assert_allclose(copy.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_keras3_weights_of_another_model_refused_and_rolled_back(blank_v2sa, blank_v2su, tmp_path):
    path = tmp_path / "v2su.weights.h5"
    blank_v2su.save_weights(path)
    before = [v.numpy() for v in blank_v2sa.weights]
    with pytest.raises(V2SError, match="cannot load into model 'v2sa'") as err:
        am_weights.load_weights(blank_v2sa, path)
    assert_one_line_about(err, path)
    for variable, value in zip(blank_v2sa.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)


# --- where the weights come from ------------------------------------------------------------


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty project dir, Keras cache and env dir; the origin points at a missing file (offline)."""
    dirs = {name: tmp_path / name for name in ("project", "keras", "env")}
    for path in dirs.values():
        path.mkdir()
    (dirs["project"] / "weight").mkdir()
    monkeypatch.setattr(utils, "PROJECT_DIR", dirs["project"])
    monkeypatch.setenv("KERAS_HOME", str(dirs["keras"]))
    monkeypatch.delenv("V2S_AM_DIR", raising=False)
    monkeypatch.setenv("V2S_AM_ORIGIN", (tmp_path / "offline" / "model-attRNN.h5").as_uri())
    return dirs


@needs(AM_FILE)
def test_weight_resolution_order(places, tmp_path, monkeypatch):
    cached = places["keras"] / "models" / "model-attRNN.h5"
    cached.parent.mkdir()
    shutil.copy(AM_FILE, cached)
    assert am_weights.find_weights("v2sa") == (cached, "keras_cache")

    in_weight_dir = places["project"] / "weight" / "model-attRNN.h5"
    in_weight_dir.write_bytes(b"x")
    assert am_weights.find_weights("v2sa") == (in_weight_dir, "weight_dir")

    in_env_dir = places["env"] / "model-attRNN.h5"
    in_env_dir.write_bytes(b"x")
    monkeypatch.setenv("V2S_AM_DIR", str(places["env"]))
    assert am_weights.find_weights("v2sa") == (in_env_dir, "env")

    argument = tmp_path / "mine.h5"
    argument.write_bytes(b"x")
    assert am_weights.find_weights(0, str(argument)) == (argument, "argument")


def test_missing_argument_file_is_an_error(places, tmp_path):
    with pytest.raises(V2SError, match="--am-weights .*no such file"):
        am_weights.find_weights("v2sa", str(tmp_path / "absent.h5"))


def test_cache_with_wrong_hash_is_not_used(places):
    cached = places["keras"] / "models" / "model-attRNN.h5"
    cached.parent.mkdir()
    cached.write_bytes(b"stale")
    with pytest.raises(V2SError):
        am_weights.find_weights("v2sa")


@needs(AM_FILE)
def test_download_from_origin_checks_sha256(places, monkeypatch):
    monkeypatch.setenv("V2S_AM_ORIGIN", AM_FILE.as_uri())
    model, info = am_weights.load_am("v2sa")
    cached = places["keras"] / "models" / "model-attRNN.h5"
    assert info == am_weights.AMInfo("v2sa", str(cached), am_weights.AM_SHA256, "download", True)
    assert am_weights.find_weights("v2sa") == (cached, "keras_cache")


def test_download_with_wrong_hash_is_refused(places, tmp_path, monkeypatch):
    impostor = tmp_path / "impostor.h5"
    impostor.write_bytes(b"not the model")
    monkeypatch.setenv("V2S_AM_ORIGIN", impostor.as_uri())
    with pytest.raises(V2SError, match="refused: sha256 is not c73134a0"):
        am_weights.find_weights("v2sa")
    assert not (places["keras"] / "models" / "model-attRNN.h5").exists()


def test_offline_with_nothing_anywhere_says_where_to_put_the_file(places):
    with pytest.raises(V2SError) as err:
        am_weights.find_weights("v2sa")
    message = str(err.value)
    assert "\n" not in message
    for needed in ("$V2S_AM_DIR", str(places["project"] / "weight"), "--am-weights", "offline/model-attRNN.h5"):
        assert needed in message


def test_offline_uses_local_fallback_with_a_note(places, original_v2sa, capsys):
    fallback = places["project"] / "weight" / "v2sa_local.weights.h5"
    original_v2sa[0].save_weights(fallback)
    model, info = am_weights.load_am("v2sa")
    assert (info.source, info.original, info.path) == ("local_fallback", False, str(fallback))
    note = capsys.readouterr().err.strip()
    assert "\n" not in note and "not found" in note and "fallback" in note


def test_untrained_v2su_says_how_to_make_it(places):
    with pytest.raises(V2SError, match=r"not been trained/shipped yet.*pretrain_am.py --net v2su"):
        am_weights.load_am(3)


# --- reading clips and the evaluation CLI ---------------------------------------------------


@needs(GSC)
def test_read_clip_resamples_8khz_and_pads(tmp_path):
    path = sorted((GSC / "yes").glob("*.wav"))[0]
    original = speech_data.read_clip(path)
    low = resample_poly(original, 1, 2)
    wavfile.write(tmp_path / "low.wav", 8000, np.round(low[:6000] * 32767).astype(np.int16))
    clip = speech_data.read_clip(tmp_path / "low.wav")
    assert clip.shape == (16000,) and clip.dtype == np.float32
    assert not clip[12000:].any()
    band_limited = resample_poly(low[:6000], 2, 1)
    assert np.corrcoef(clip[:12000], band_limited)[0, 1] > 0.999


def test_read_wav_reads_the_whole_file_and_read_clip_one_second_of_it(tmp_path):
    rng = np.random.default_rng(0)
    stereo = np.round(rng.uniform(-0.5, 0.5, (12000, 2)) * 32767).astype(np.int16)  # 1.5 s at 8 kHz
    wavfile.write(tmp_path / "long.wav", 8000, stereo)
    whole = speech_data.read_wav(tmp_path / "long.wav")
    want = resample_poly(stereo.astype(np.float32).mean(axis=1) / 32768, 2, 1)
    assert whole.shape == (24000,) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, want, atol=1e-6)
    np.testing.assert_array_equal(speech_data.read_clip(tmp_path / "long.wav"), whole[:16000])


def test_accuracies_over_all_clips_and_the_core_words():
    yes, nine = sm.SOURCE_CLASSES.index("yes"), sm.SOURCE_CLASSES.index("nine")
    labels, predicted = np.array([yes, yes, nine, 0]), np.array([yes, 0, nine, nine])
    assert speech_data.accuracies(labels, predicted) == {"accuracy_36": 0.5, "accuracy_core10": 0.5, "n_core10": 2}
    assert np.isnan(speech_data.accuracies(labels[2:], predicted[2:])["accuracy_core10"])


def test_predict_folder_scores_each_clip_and_counts_per_class(tmp_path, blank_v2sa):
    for word, n in (("yes", 2), ("nine", 1)):
        (tmp_path / word).mkdir()
        for i in range(n):
            wavfile.write(tmp_path / word / f"s{i}_nohash_0.wav", 16000, np.zeros(16000, np.int16))
    (tmp_path / "notes.txt").write_text("not a class")
    result = speech_data.predict_folder(blank_v2sa, tmp_path, batch_size=2)
    want = np.argmax(blank_v2sa.predict_on_batch(np.zeros((3, 16000), np.float32)), axis=1)
    np.testing.assert_array_equal(result["predicted"], want)
    np.testing.assert_array_equal(speech_data.predict_clips(blank_v2sa, sorted(tmp_path.glob("*/*.wav")), 1), want)
    assert result["skipped"] == ["notes.txt"] and set(result["per_class"]) == {"nine", "yes"}
    assert result["per_class"]["yes"]["n"] == 2 and result["n_core10"] == 2


def test_predict_folder_rejects_empty_folder(tmp_path, blank_v2sa):
    (tmp_path / "_background_noise_").mkdir()
    with pytest.raises(V2SError, match="no .wav clips"):
        speech_data.predict_folder(blank_v2sa, tmp_path)


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "pretrain_am.py"), *map(str, args)], capture_output=True, text=True, timeout=300
    )


@needs(GSC)
@needs(AM_FILE)
def test_cli_eval_dir_prints_accuracies_last(tmp_path):
    for word in ("yes", "no"):
        (tmp_path / word).mkdir()
        for wav in sorted((GSC / word).glob("*.wav"))[:2]:
            shutil.copy(wav, tmp_path / word)
    (tmp_path / "_unknown_").mkdir()
    shutil.copy(sorted((GSC / "bed").glob("*.wav"))[0], tmp_path / "_unknown_")
    (tmp_path / "_background_noise_").mkdir()
    shutil.copy(sorted((GSC / "cat").glob("*.wav"))[0], tmp_path / "_background_noise_")

    run = _run_cli("--eval-dir", tmp_path, "--net", 0, "--am-weights", AM_FILE)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert re.fullmatch(r"accuracy_36=(0|1)\.\d{4}", lines[-2])
    assert re.fullmatch(r"accuracy_core10=(0|1)\.\d{4}", lines[-1])
    assert "clips=5 core10_clips=4 skipped=1 (_background_noise_)" in lines[-3]


def test_cli_nonexistent_dir_fails_with_one_line(tmp_path):
    run = _run_cli("--eval-dir", tmp_path / "absent")
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert run.stderr.strip() == f"error: {tmp_path / 'absent'}: no such directory"
