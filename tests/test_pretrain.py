"""Specifications of pretrain_am.py's training mode (am_training): the speaker split, the corpus, a tiny
end-to-end run, and V2S reprogramming with each shipped AM."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, SPEECH_DIR, needs
from scipy.io import wavfile

import pretrain_am
import speech_models as sm
from am_training import corpus
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
    assert corpus.speaker_of("gsc/yes/0bac8a71_nohash_0.wav") == "0bac8a71"
    assert corpus.speaker_of("fsdd/7_jackson_12.wav") == "jackson"
    assert corpus.speaker_of("tts/yes_v001.wav") == "yes_v001"


def test_speaker_disjoint_split_keeps_every_clip_of_a_heldout_speaker_out():
    items = [(f"c{i}", i % 3, f"spk{i % 5}") for i in range(40)]
    train, heldout = corpus.speaker_disjoint_split(items, {"spk1", "spk3"})
    assert len(train) + len(heldout) == 40
    assert {i[-1] for i in heldout} == {"spk1", "spk3"}
    assert not {i[-1] for i in train} & {i[-1] for i in heldout}


def test_split_holds_out_all_clips_of_test_list_speakers(tmp_path):
    split = corpus.split_corpus_dirs([_tiny_corpus(tmp_path)])
    assert [Path(i[0]).name for i in split.test_split] == ["ffff0006_nohash_0.wav"]
    assert {i[-1] for i in split.unseen} == {"ffff0006"} and len(split.unseen) == 3
    assert "ffff0006" not in {i[-1] for i in split.train} and len(split.train) == 15


def test_split_without_test_list_holds_out_random_speakers(tmp_path):
    folder = _tiny_corpus(tmp_path)
    (folder / "testing_list.txt").unlink()
    split = corpus.split_corpus_dirs([folder], seed=3)
    assert len({i[-1] for i in split.unseen}) == 1  # 20 % of 6 speakers, at least one
    assert not {i[-1] for i in split.train} & {i[-1] for i in split.unseen}


@needs(SPEECH_DIR / "gsc")
def test_shared_gsc_test_split_speakers_never_train():
    split = corpus.split_corpus_dirs([SPEECH_DIR / "gsc"])
    assert len(split.test_split) == 342
    assert not {i[-1] for i in split.train} & {i[-1] for i in split.unseen}
    assert len(split.train) + len(split.unseen) == 671


@needs(SPEECH_DIR / "fsdd")
def test_fsdd_holdout_speaker_and_word_labels():
    train, heldout = corpus.fsdd_items(SPEECH_DIR / "fsdd", {"nicolas"})
    assert {i[-1] for i in heldout} == {"nicolas"} and len(heldout) == 500
    assert "nicolas" not in {i[-1] for i in train}
    labels = {sm.SOURCE_CLASSES[label] for _, label, _ in train}
    assert labels == set(corpus.FSDD_WORDS)


def test_place_and_augment_keep_one_second_in_range():
    rng = np.random.default_rng(0)
    clip = np.zeros(16000, np.float32)
    clip[:4000] = 0.5 * np.sin(np.arange(4000) / 5)
    noise = [rng.normal(0, 0.1, 40000).astype(np.float32)]
    for _ in range(5):
        out = corpus.augment_speech(clip, rng, noise)
        assert out.shape == (16000,) and out.dtype == np.float32 and np.abs(out).max() <= 1


def test_training_names():
    assert [pretrain_am.training_name(n) for n in ("0", "v2sa", "v2sa_local", "3", "v2su", "5", "cnn1d")] == [
        "v2sa_local", "v2sa_local", "v2sa_local", "v2su", "v2su", "cnn1d", "cnn1d"]  # fmt: skip
    with pytest.raises(V2SError, match="not available"):
        pretrain_am.training_name("1")


def test_help_explains_every_flag():
    run = subprocess.run([sys.executable, str(ROOT / "pretrain_am.py"), "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for flag in ("--net", "--eval-dir", "--corpus-dir", "--fsdd-dir", "--noise-dir", "--tts", "--teacher",
                 "--epochs", "--out", "--ucr-dir", "--max-minutes", "--cache-dir", "--fresh"):  # fmt: skip
        assert flag in run.stdout


# --- a tiny end-to-end pretrain --------------------------------------------------------------


def test_tiny_end_to_end_pretrain_writes_weights_and_card(tmp_path, capsys):
    """1 epoch of v2sa_local on 15 tone clips + 10 noise clips, hard labels (no teacher: fast, no ../shared)."""
    folder = _tiny_corpus(tmp_path)
    noise_dir = tmp_path / "noise"
    wavfile.write(noise_dir.mkdir() or noise_dir / "white.wav", 16000,
                  np.round(np.random.default_rng(0).normal(0, 0.05, 48000) * 32767).astype(np.int16))  # fmt: skip
    argv = ["--net", "0", "--corpus-dir", str(folder), "--fsdd-dir", "none", "--ucr-dir", "none", "--no-tts",
            "--noise-dir", str(noise_dir), "--n-noise", "10", "--copies-gsc", "1", "--epochs", "1", "--batch-size", "8",
            "--teacher", "none", "--out", str(tmp_path / "weight"), "--results-dir", str(tmp_path / "results"),
            "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert pretrain_am.main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("gsc_unseen_speakers: clips=3 speakers=1 accuracy_36=")
    card = json.loads((tmp_path / "weight" / "v2sa_local.json").read_text())
    assert card["epochs"] == 1 and card["parameters"] == 201_247
    assert card["corpus"]["composition"] == {"gsc": 15, "fsdd": 0, "tts": 0, "noise": 10, "ucr": 0, "total": 25}
    assert card["corpus"]["train_eval_speakers_disjoint"] is True
    assert set(card["accuracy"]["gsc_test_split"]) >= {"n", "accuracy_36", "accuracy_core10"}
    assert (tmp_path / "results" / "am_v2sa_local_confusion.png").stat().st_size > 1000
    model = sm.build_am("v2sa")
    sm.load_weights(model, tmp_path / "weight" / "v2sa_local.weights.h5")
    (ckpt,) = (tmp_path / "cache" / "ckpt").iterdir()  # the resumable checkpoint
    assert (ckpt / "checkpoint").is_file() and (ckpt / "done.txt").read_text() == "1"


# --- V2S with each shipped AM ---------------------------------------------------------------


def _v2s_main(net, tmp_path, env):
    command = [sys.executable, str(ROOT / "v2s_main.py"), "--dataset", "Coffee", "--eps", "2", "--net", str(net),
               "--results-dir", str(tmp_path / "results"), "--weight-dir", str(tmp_path / "weight")]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env={**os.environ, "V2S_OFFLINE": "1", **env})  # fmt: skip


@pytest.mark.parametrize("net, weights", [("0", "v2sa_local"), ("3", "v2su"), ("cnn1d", "cnn1d")])
def test_v2s_main_reprograms_coffee_with_each_shipped_am(net, weights, tmp_path):
    """--net 0 offline with no original file anywhere: the local fallback; 3 and cnn1d: weight/<name>.weights.h5.

    ~45 s for the three on 2 quiet cores (2.5 min when the cores were shared), so not marked slow.
    """
    if not (WEIGHT_DIR / f"{weights}.weights.h5").is_file():
        pytest.skip(f"weight/{weights}.weights.h5 not trained yet")
    env = {"V2S_AM_DIR": "", "KERAS_HOME": str(tmp_path / "keras"),
           "V2S_AM_ORIGIN": (tmp_path / "offline" / "model-attRNN.h5").as_uri()}  # fmt: skip
    (tmp_path / "keras").mkdir(parents=True)
    run = _v2s_main(net, tmp_path, env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1].startswith("test_accuracy=")
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert weights in json.dumps(record)
    if net == "0":
        assert "locally trained fallback" in run.stderr


@pytest.mark.parametrize("name, params", [("v2sa_local", 201_247), ("v2su", 206_777), ("cnn1d", 1_464_036)])
def test_shipped_weights_and_cards(name, params):
    weights, card_path = WEIGHT_DIR / f"{name}.weights.h5", WEIGHT_DIR / f"{name}.json"
    if not weights.is_file():
        pytest.skip(f"weight/{name}.weights.h5 not trained yet")
    assert weights.stat().st_size < 10 * 2**20
    card = json.loads(card_path.read_text())
    assert card["parameters"] == params and card["corpus"]["train_eval_speakers_disjoint"]
    for key in ("gsc_test_split", "gsc_unseen_speakers"):
        assert 0 <= card["accuracy"][key]["accuracy_core10"] <= 1
    model = sm.build_am(pretrain_am.arch_of(name))
    sm.load_weights(model, weights)
