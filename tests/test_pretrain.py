"""Specifications of pretrain_am.py's training mode (am_training): the speaker split, the corpus, the
distiller and its callbacks, a tiny end-to-end run, the shipped AMs and their cards, and V2S
reprogramming with each shipped AM."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, SPEECH_DIR, needs
from scipy.io import wavfile

import am_weights
import pretrain_am
import speech_data
import speech_models as sm
from am_training import card, corpus, distill, speech_split
from utils import V2SError

WEIGHT_DIR = ROOT / "weight"


def _write_wav(path: Path, freq: float, rate: int = 16000, seconds: float = 0.6) -> None:
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * freq * t) * np.hanning(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, rate, np.round(tone * 32767).astype(np.int16))


def _tiny_corpus(root: Path) -> Path:
    """yes/no/up clips of 6 speakers (tones), one of them listed in testing_list.txt."""
    folder = root / "corpus"
    for s, speaker in enumerate(["aaaa0001", "bbbb0002", "cccc0003", "dddd0004", "eeee0005", "ffff0006"]):
        for w, word in enumerate(["yes", "no", "up"]):
            _write_wav(folder / word / f"{speaker}_nohash_0.wav", 200 + 150 * w + 10 * s)
    (folder / "testing_list.txt").write_text("yes/ffff0006_nohash_0.wav\n")
    return folder


# --- speakers and the split ------------------------------------------------------------------


def test_speaker_of_gsc_fsdd_and_other_names():
    assert speech_split.speaker_of("gsc/yes/0bac8a71_nohash_0.wav") == "0bac8a71"
    assert speech_split.speaker_of("fsdd/7_jackson_12.wav") == "jackson"
    assert speech_split.speaker_of("tts/yes_v001.wav") == "yes_v001"


def test_speaker_disjoint_split_keeps_every_clip_of_a_heldout_speaker_out():
    items = [(f"c{i}", i % 3, f"spk{i % 5}") for i in range(40)]
    train, heldout = speech_split.speaker_disjoint_split(items, {"spk1", "spk3"})
    assert len(train) + len(heldout) == 40
    assert {i[-1] for i in heldout} == {"spk1", "spk3"}
    assert not {i[-1] for i in train} & {i[-1] for i in heldout}


def test_split_holds_out_all_clips_of_test_list_speakers(tmp_path):
    split = speech_split.split_corpus_dirs([_tiny_corpus(tmp_path)])
    assert [Path(i[0]).name for i in split.test_split] == ["ffff0006_nohash_0.wav"]
    assert {i[-1] for i in split.unseen} == {"ffff0006"} and len(split.unseen) == 3
    assert "ffff0006" not in {i[-1] for i in split.train} and len(split.train) == 15


def test_split_without_test_list_holds_out_random_speakers(tmp_path):
    folder = _tiny_corpus(tmp_path)
    (folder / "testing_list.txt").unlink()
    split = speech_split.split_corpus_dirs([folder], seed=3)
    assert len({i[-1] for i in split.unseen}) == 1  # 20 % of 6 speakers, at least one
    assert not {i[-1] for i in split.train} & {i[-1] for i in split.unseen}


@needs(SPEECH_DIR / "gsc")
def test_shared_gsc_test_split_speakers_never_train():
    split = speech_split.split_corpus_dirs([SPEECH_DIR / "gsc"])
    assert len(split.test_split) == 342
    assert not {i[-1] for i in split.train} & {i[-1] for i in split.unseen}
    assert len(split.train) + len(split.unseen) == 671


@needs(SPEECH_DIR / "fsdd")
def test_fsdd_holdout_speaker_and_word_labels():
    train, heldout = speech_split.fsdd_items(SPEECH_DIR / "fsdd", {"nicolas"})
    assert {i[-1] for i in heldout} == {"nicolas"} and len(heldout) == 500
    assert "nicolas" not in {i[-1] for i in train}
    labels = {sm.SOURCE_CLASSES[label] for _, label, _ in train}
    assert labels == set(speech_split.FSDD_WORDS)


def test_place_crops_to_the_active_part_with_a_margin_and_centres_without_jitter():
    wave = np.zeros(20000, np.float32)
    wave[5000:7000] = 0.5  # active part: 2000 samples; 480 samples of margin on each side
    wave[100] = 0.005  # below 2 % of the peak: not active
    out = corpus.place(wave, np.random.default_rng(0), jitter=False)
    kept = 2000 + 2 * 480
    start = (16000 - kept) // 2
    assert out.shape == (16000,) and out.dtype == np.float32
    np.testing.assert_array_equal(out[start : start + kept], wave[5000 - 480 : 7000 + 480])
    assert not out[:start].any() and not out[start + kept :].any()


def test_place_jitters_the_offset_and_keeps_silence_silent():
    wave = np.zeros(16000, np.float32)
    wave[8000:8100] = 1.0
    starts = {int(np.flatnonzero(corpus.place(wave, np.random.default_rng(seed)))[0]) for seed in range(5)}
    assert len(starts) > 1
    assert not corpus.place(np.zeros(16000, np.float32), np.random.default_rng(0)).any()


def test_a_clip_longer_than_a_second_is_cut_to_one_second():
    wave = np.ones(30000, np.float32)
    out = corpus.place(wave, np.random.default_rng(0))
    assert out.shape == (16000,) and out.all()


def test_augment_keeps_one_second_in_range():
    rng = np.random.default_rng(0)
    clip = np.zeros(16000, np.float32)
    clip[:4000] = 0.5 * np.sin(np.arange(4000) / 5)
    noise = [rng.normal(0, 0.1, 40000).astype(np.float32)]
    for _ in range(5):
        out = corpus.augment_speech(clip, rng, noise)
        assert out.shape == (16000,) and out.dtype == np.float32 and np.abs(out).max() <= 1


def test_read_noises_keeps_whole_files_longer_than_a_second(tmp_path):
    rng = np.random.default_rng(0)
    wavfile.write(tmp_path / "long.wav", 8000, np.round(rng.normal(0, 0.1, 12000) * 32767).astype(np.int16))
    wavfile.write(tmp_path / "short.wav", 16000, np.zeros(8000, np.int16))
    (noise,) = corpus.read_noises(tmp_path)
    np.testing.assert_array_equal(noise, speech_data.read_wav(tmp_path / "long.wav"))
    assert len(noise) == 24000  # 1.5 s resampled to 16 kHz, not cut to 1 s
    (tmp_path / "long.wav").unlink()
    with pytest.raises(V2SError, match="no WAV file longer than 1 s"):
        corpus.read_noises(tmp_path)


def test_corpus_key_depends_on_the_recipe_and_the_clips():
    split = speech_split.SpeechSplit(train=[("a.wav", 1, "s1")])
    recipe = corpus.CorpusRecipe(noise_dir="none", seed=0)
    key = corpus.corpus_key(recipe, split, [])
    assert re.fullmatch(r"[0-9a-f]{16}", key) and key == corpus.corpus_key(
        corpus.CorpusRecipe(noise_dir="none"), split, []
    )
    assert key != corpus.corpus_key(corpus.CorpusRecipe(noise_dir="none", seed=1), split, [])
    assert key != corpus.corpus_key(recipe, speech_split.SpeechSplit(train=[("b.wav", 1, "s1")]), [])


def test_training_names():
    names = ("0", "v2sa", "v2sa_local", "3", "v2su", "5", "cnn1d", "6", "cnn1d_small")
    assert [pretrain_am.training_name(n) for n in names] == [
        "v2sa_local",
        "v2sa_local",
        "v2sa_local",
        "v2su",
        "v2su",
        "cnn1d",
        "cnn1d",
        "cnn1d_small",
        "cnn1d_small",
    ]
    with pytest.raises(V2SError, match="not available"):
        pretrain_am.training_name("1")


def test_help_explains_every_flag():
    run = subprocess.run([sys.executable, str(ROOT / "pretrain_am.py"), "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    actions = [a for a in pretrain_am.build_parser()._actions if a.dest != "help"]
    for action in actions:
        assert action.help and action.help.strip(), action.option_strings
        assert action.option_strings[0] in run.stdout


# --- the distiller and its callbacks (tiny models on (125, 80, 1) features) --------------------


def _tiny_body(seed: int) -> keras.Model:
    """A small stand-in AM body: standardised log-mel (n, 125, 80, 1) -> BatchNorm -> (n, 36) softmax."""
    keras.utils.set_random_seed(seed)
    mel = keras.Input((125, 80, 1))
    x = keras.layers.AveragePooling2D((25, 16))(mel)
    x = keras.layers.BatchNormalization()(keras.layers.Flatten()(x))
    return keras.Model(mel, keras.layers.Dense(36, activation="softmax")(x))


def _features(n: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 125, 80, 1)).astype(np.float32)
    hard = rng.integers(0, 36, n)
    hard[::4] = -1  # teacher-only examples
    return x, hard


def test_kd_loss_is_t_squared_kl_at_temperature():
    rng = np.random.default_rng(0)
    p_t, p_s = (rng.dirichlet(np.ones(36), 4).astype(np.float32) for _ in range(2))
    t = 2.0
    soft_t = np.exp(np.log(p_t + 1e-7) / t)
    soft_t /= soft_t.sum(1, keepdims=True)
    soft_s = np.exp(np.log(p_s + 1e-7) / t)
    soft_s /= soft_s.sum(1, keepdims=True)
    want = t**2 * np.mean(np.sum(soft_t * np.log(soft_t / soft_s), axis=1))
    assert float(distill.kd_loss(p_t, np.log(p_s + 1e-7), t)) == pytest.approx(want, rel=1e-4)
    assert abs(float(distill.kd_loss(p_t, np.log(p_t + 1e-7), t))) < 1e-5


def test_hard_label_ce_counts_only_used_examples():
    log_p = np.log(np.full((3, 36), 1 / 36, np.float32))
    log_p[0, 5] = np.log(0.5)
    ce = distill.hard_label_ce(tf.constant(log_p), tf.constant([5, -1, 7]), tf.constant([1.0, 0.0, 0.0]))
    assert float(ce) == pytest.approx(-np.log(0.5))
    assert float(distill.hard_label_ce(tf.constant(log_p), tf.constant([5, -1, 7]), tf.zeros(3))) == 0.0


def test_augment_batch_is_seeded_standardised_and_mixes_only_when_asked():
    x = tf.constant(_features(8)[0])
    a, mixed_a = distill.augment_batch(x, "mel", 0.5, tf.constant([3, 1], tf.int64))
    b, mixed_b = distill.augment_batch(x, "mel", 0.5, tf.constant([3, 1], tf.int64))
    c, _ = distill.augment_batch(x, "mel", 0.5, tf.constant([3, 2], tf.int64))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(mixed_a, mixed_b)
    assert a.shape == x.shape and not np.array_equal(a, c)
    np.testing.assert_allclose(np.mean(a, axis=(1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(np.std(a, axis=(1, 2, 3)), 1, atol=1e-3)
    _, none_mixed = distill.augment_batch(x, "mel", 0.0, tf.constant([3, 1], tf.int64))
    assert not np.any(none_mixed)
    wave = tf.constant(np.random.default_rng(1).uniform(-0.5, 0.5, (4, 16000)).astype(np.float32))
    shifted, _ = distill.augment_batch(wave, "wave", 0.0, tf.constant([0, 0], tf.int64))
    for row, original in zip(shifted.numpy(), wave.numpy()):  # a circular shift of at most 0.1 s
        assert any(np.array_equal(row, np.roll(original, k)) for k in range(-1600, 1601))


def test_fit_draws_each_epochs_batches_in_the_order_of_that_epoch():
    """The order is set by the EpochOrder callback before Keras draws the epoch's first batch."""
    seen = []

    class Recorder(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            seen.append(data[1].numpy().tolist())
            return {"batches": tf.constant(1.0)}

    x = np.arange(22, dtype=np.float32)[:, None]
    batches = distill.ShuffledBatches(x, np.arange(22), np.arange(2, 22), batch_size=6, seed=4)  # 3 batches of 6
    model = Recorder()
    model(x[:1])
    model.compile(optimizer="sgd", run_eagerly=True)
    model.fit(batches, epochs=3, verbose=0, callbacks=[distill.EpochOrder(batches)], shuffle=False)  # as distill
    assert len(seen) == 9
    for epoch in range(3):
        order = np.random.default_rng([4, epoch]).permutation(np.arange(2, 22))
        assert seen[3 * epoch : 3 * epoch + 3] == [sorted(order[6 * i : 6 * i + 6].tolist()) for i in range(3)]


def test_time_limit_stops_fit_after_the_epoch_that_passes_the_budget(capsys):
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    for minutes, epochs_run in ((1e-9, 1), (0, 4), (60, 4)):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        history = model.fit(x, y, epochs=4, verbose=0, callbacks=[distill.TimeLimit(minutes)])
        assert len(history.history["loss"]) == epochs_run
    assert "stopping after epoch 1: --max-minutes 1e-09 reached" in capsys.readouterr().out


def _distill(student, teacher, x, hard, ckpt_dir, max_minutes=0.0, epochs=2):
    return distill.distill(
        student,
        teacher,
        x,
        hard,
        epochs=epochs,
        batch_size=8,
        lr=1e-2,
        temperature=2.0,
        alpha=0.5,
        mix_prob=0.3,
        kind="mel",
        ckpt_dir=ckpt_dir,
        max_minutes=max_minutes,
        seed=0,
        val_idx=np.arange(0, 40, 10),
    )


def test_distill_resumed_after_an_interruption_ends_as_an_uninterrupted_run(tmp_path, capsys):
    x, hard = _features()
    teacher = _tiny_body(1)
    teacher.trainable = False
    whole = _tiny_body(0)
    history = _distill(whole, teacher, x, hard, tmp_path / "whole")
    assert history["epochs_run"] == 2 and len(history["loss"]) == 2 and history["seconds"] > 0
    assert all(0 <= a <= 1 for a in history["val_agreement"])

    resumed = _tiny_body(0)
    first = _distill(resumed, teacher, x, hard, tmp_path / "resumed", max_minutes=1e-9)  # stops after epoch 1
    assert first["epochs_run"] == 1 and distill.completed_epochs(tmp_path / "resumed" / "backup") == 1
    resumed = _tiny_body(3)  # a new process: other initial weights, all restored from the backup
    second = _distill(resumed, teacher, x, hard, tmp_path / "resumed")
    assert "resumed from" in capsys.readouterr().out
    # the same numbers up to float32 rounding (TensorFlow's multi-threaded reductions are not bitwise
    # repeatable); a resume that restored the wrong state or re-drew the randomness is off by far more
    assert second["epochs_run"] == 2
    assert second["loss"] == pytest.approx(history["loss"], rel=1e-5) and second["kd"] == pytest.approx(
        history["kd"], rel=1e-5
    )
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    again = _distill(resumed, teacher, x, hard, tmp_path / "resumed")  # complete: nothing left to train
    assert again["loss"] == pytest.approx(history["loss"], rel=1e-5) and again["epochs_run"] == 2


def test_distill_without_teacher_trains_on_hard_labels_only(tmp_path):
    x, hard = _features()
    history = _distill(_tiny_body(0), None, x, hard, tmp_path, epochs=1)
    assert history["kd"] == [0.0] and history["ce"][0] > 0 and np.isnan(history["val_agreement"][0])


def test_read_history_keeps_the_last_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text(
        "epoch,ce,epoch_seconds,kd,loss,val_agreement\n0,1,2,3,4,5\n1,1,2,3,9,5\n1,1,2,3,7,5\n2,0,0,0,0,0\n"
    )
    history = distill.read_history(path, 2)
    assert history["loss"] == [4.0, 7.0] and history["epoch_seconds"] == [2.0, 2.0]


def test_recalibrated_batchnorm_holds_the_clean_batch_statistics():
    x, _ = _features(16)
    model = _tiny_body(0)
    distill.recalibrate_batchnorm(model, x, 16, seed=0)
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    pooled = keras.Model(model.input, bn.input)(x).numpy()
    np.testing.assert_allclose(bn.moving_mean.numpy(), pooled.mean(0), atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), pooled.var(0), rtol=1e-3)
    assert bn.momentum == 0.99


def test_score_items_agrees_with_predict_folder(tmp_path):
    folder = _tiny_corpus(tmp_path)
    model = _tiny_wave_am()
    items = [(str(path), label, speech_split.speaker_of(path)) for path, label in speech_data.scan_folder(folder)[0]]
    result = card.score_items(model, items, batch_size=4)
    want = speech_data.predict_folder(model, folder, batch_size=5)
    np.testing.assert_array_equal(result["predicted"], want["predicted"])
    assert (result["n"], result["speakers"], result["n_core10"]) == (18, 6, 18)  # yes, no, up: core words
    assert result["accuracy_36"] == want["accuracy_36"] and result["accuracy_core10"] == want["accuracy_core10"]
    assert list(card.public(result)) == ["n", "speakers", "accuracy_36", "n_core10", "accuracy_core10"]
    assert card.score_items(model, [])["n"] == 0


def _tiny_wave_am() -> keras.Model:
    keras.utils.set_random_seed(0)
    wave = keras.Input((16000,))
    x = keras.layers.Reshape((100, 160))(wave)
    return keras.Model(wave, keras.layers.Dense(36, activation="softmax")(keras.layers.Flatten()(x)))


# --- a tiny end-to-end pretrain --------------------------------------------------------------


def _tiny_pretrain_argv(tmp_path) -> list[str]:
    """1 epoch of v2sa_local on 15 tone clips + 10 noise clips, hard labels (no teacher: fast, no ../shared)."""
    folder = _tiny_corpus(tmp_path)
    noise_dir = tmp_path / "noise"
    wavfile.write(
        noise_dir.mkdir() or noise_dir / "white.wav",
        16000,
        np.round(np.random.default_rng(0).normal(0, 0.05, 48000) * 32767).astype(np.int16),
    )
    return [
        "--net",
        "0",
        "--corpus-dir",
        str(folder),
        "--fsdd-dir",
        "none",
        "--ucr-dir",
        "none",
        "--no-tts",
        "--noise-dir",
        str(noise_dir),
        "--n-noise",
        "10",
        "--copies-gsc",
        "1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--teacher",
        "none",
        "--out",
        str(tmp_path / "weight"),
        "--results-dir",
        str(tmp_path / "results"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]


def test_tiny_end_to_end_pretrain_writes_weights_and_card(tmp_path, capsys):
    """1 epoch of v2sa_local on 15 tone clips + 10 noise clips, hard labels (no teacher: fast, no ../shared)."""
    assert pretrain_am.main(_tiny_pretrain_argv(tmp_path)) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("gsc_unseen_speakers: clips=3 speakers=1 accuracy_36=")
    card = json.loads((tmp_path / "weight" / "v2sa_local.json").read_text())
    assert card["epochs"] == 1 and card["parameters"] == 201_247
    assert card["corpus"]["composition"] == {"gsc": 15, "fsdd": 0, "tts": 0, "noise": 10, "ucr": 0, "total": 25}
    assert card["corpus"]["train_eval_speakers_disjoint"] is True
    assert set(card["accuracy"]["gsc_test_split"]) >= {"n", "accuracy_36", "accuracy_core10"}
    assert (tmp_path / "results" / "am_v2sa_local_confusion.png").stat().st_size > 1000
    assert len(card["history"]["loss"]) == 1 and card["wall_time_seconds_per_run"] == [
        card["wall_time_seconds_all_runs"]
    ]
    model = sm.build_am("v2sa")
    am_weights.load_weights(model, tmp_path / "weight" / "v2sa_local.weights.h5")
    (ckpt,) = (tmp_path / "cache" / "ckpt").iterdir()  # the resumable checkpoint
    assert distill.completed_epochs(ckpt / "backup") == 1


@pytest.mark.slow
def test_a_finished_pretrain_resumes_for_more_epochs_and_its_card_counts_both_runs(tmp_path, capsys):
    """As the shipped cnn1d was trained (3 epochs, then resumed to 6); ~40 s on 2 cores."""
    argv = _tiny_pretrain_argv(tmp_path)
    assert pretrain_am.main(argv) == 0
    assert pretrain_am.main([*argv, "--epochs", "2"]) == 0  # resumes: one more epoch
    assert "resumed from" in capsys.readouterr().out
    card = json.loads((tmp_path / "weight" / "v2sa_local.json").read_text())
    assert card["epochs"] == 2 and card["epochs_planned"] == 2 and len(card["history"]["loss"]) == 2
    assert len(card["wall_time_seconds_per_run"]) == 2


# --- V2S with each shipped AM ---------------------------------------------------------------


def _v2s_main(net, tmp_path, env):
    command = [
        sys.executable,
        str(ROOT / "v2s_main.py"),
        "--dataset",
        "Coffee",
        "--eps",
        "2",
        "--net",
        str(net),
        "--results-dir",
        str(tmp_path / "results"),
        "--weight-dir",
        str(tmp_path / "weight"),
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "V2S_OFFLINE": "1", **env},
    )


@pytest.mark.parametrize(
    "net, weights", [("0", "v2sa_local"), ("3", "v2su"), ("cnn1d", "cnn1d"), ("cnn1d_small", "cnn1d_small")]
)
def test_v2s_main_reprograms_coffee_with_each_shipped_am(net, weights, tmp_path):
    """--net 0 offline with no original file anywhere: the local fallback; 3 and cnn1d: weight/<name>.weights.h5.

    ~45 s for the three on 2 quiet cores (2.5 min when the cores were shared), so not marked slow.
    """
    if not (WEIGHT_DIR / f"{weights}.weights.h5").is_file():
        pytest.skip(f"weight/{weights}.weights.h5 not trained yet")
    env = {
        "V2S_AM_DIR": "",
        "KERAS_HOME": str(tmp_path / "keras"),
        "V2S_AM_ORIGIN": (tmp_path / "offline" / "model-attRNN.h5").as_uri(),
    }
    (tmp_path / "keras").mkdir(parents=True)
    run = _v2s_main(net, tmp_path, env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1].startswith("test_accuracy=")
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert record["am"]["path"].endswith(f"{weights}.weights.h5")
    if net == "0":
        assert "locally trained fallback" in run.stderr


SHIPPED = [("v2sa_local", 201_247), ("v2su", 206_777), ("cnn1d", 1_464_036), ("cnn1d_small", 100_788)]


def _shipped(name):
    weights = WEIGHT_DIR / f"{name}.weights.h5"
    if not weights.is_file():
        pytest.skip(f"weight/{name}.weights.h5 not trained yet")
    return weights, json.loads((WEIGHT_DIR / f"{name}.json").read_text())


def _documented_rows(name: str) -> list[str]:
    """The results-table rows of `name` in the README and docs/ (`| `name` | ... |`)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [
        line
        for page in pages
        if page.is_file()
        for line in page.read_text().splitlines()
        if line.startswith(f"| `{name}` |")
    ]


@pytest.mark.parametrize("name, params", SHIPPED)
def test_shipped_weights_load_and_the_documented_accuracies_are_the_cards(name, params):
    weights, card_ = _shipped(name)
    assert weights.stat().st_size < 10 * 2**20
    assert card_["parameters"] == params and card_["corpus"]["train_eval_speakers_disjoint"] is True
    accuracy = card_["accuracy"]
    test, unseen = accuracy["gsc_test_split"], accuracy["gsc_unseen_speakers"]
    assert (test["n"], test["speakers"], test["n_core10"], unseen["n"]) == (342, 147, 300, 393)
    cells = [
        f"**{test['accuracy_36']:.3f} / {test['accuracy_core10']:.3f}**",
        f"{unseen['accuracy_36']:.3f} / {unseen['accuracy_core10']:.3f}",
        f"{accuracy['fsdd_heldout_speakers']['accuracy_36']:.3f}",
    ]
    rows = _documented_rows(name)
    assert rows, f"no results row for {name} in README.md or docs/"
    for row in rows:
        assert [cell.strip() for cell in row.split("|")][5:8] == cells
    model = sm.build_am(pretrain_am.arch_of(name))
    fresh = [w.copy() for w in model.get_weights()]
    am_weights.load_weights(model, weights)
    assert model.count_params() == params
    assert not all(np.array_equal(a, b) for a, b in zip(fresh, model.get_weights()))


@needs(SPEECH_DIR / "gsc")
@pytest.mark.parametrize("name", [name for name, _ in SHIPPED])
def test_shipped_weights_score_their_cards_test_split_accuracy(name):
    """The weights as loaded today reproduce the card's TEST-split scores (342 clips)."""
    weights, card_ = _shipped(name)
    model = sm.build_am(pretrain_am.arch_of(name))
    am_weights.load_weights(model, weights)
    split = speech_split.split_corpus_dirs([SPEECH_DIR / "gsc"])
    got = card.public(card.score_items(model, split.test_split))
    assert got == card_["accuracy"]["gsc_test_split"]
