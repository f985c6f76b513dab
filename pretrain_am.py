"""Train a source acoustic model here (v2sa_local, v2su, cnn1d), or evaluate one on a folder.

Train (distilled from the original V2Sa when it is available, see docs/acoustic_models.md):
    python pretrain_am.py --net v2sa_local [--corpus-dir DIR ...] [--fsdd-dir DIR] [--noise-dir DIR]
                          [--tts | --no-tts] [--teacher PATH|none] [--epochs N] [--out weight/]
    python pretrain_am.py --net v2su    (3)       python pretrain_am.py --net cnn1d    (5)

Evaluate:
    python pretrain_am.py --eval-dir DIR --net 0 [--am-weights PATH] [--batch-size 64]

DIR/<word>/*.wav for the 35 words of `speech_models.SOURCE_CLASSES` and DIR/_unknown_/*.wav
(scored as class 0); other entries (e.g. `_background_noise_`) are skipped and counted.
Evaluation prints per-word results, then as its last two lines `accuracy_36=<fraction>` and
`accuracy_core10=<fraction>` (clips of the 10 core-word folders, right when the 36-way argmax is
that word). Training writes <out>/<name>.weights.h5, the model card <out>/<name>.json and
results/am_<name>_confusion.png, and prints the held-out accuracies last.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import utils
import validation
from utils import SAMPLE_RATE, WAVE_LEN, V2SError

SHARED_DIR = Path(os.environ.get("V2S_SHARED_DIR", utils.PROJECT_DIR.parent / "shared"))
TRAINABLE = ("v2sa_local", "v2su", "cnn1d")
FSDD_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CORPUS_VERSION = "corpus-v1"  # bump when the corpus recipe changes (invalidates caches)
ESPEAK_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-029",
                  "en-gb-x-gbclan", "en-gb-x-gbcwmd")  # fmt: skip
DEFAULTS = {  # per model: epochs, learning rate
    "v2sa_local": {"epochs": 8, "lr": 2e-3},
    "v2su": {"epochs": 3, "lr": 5e-4},
    "cnn1d": {"epochs": 4, "lr": 1e-3},
}


# ----------------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Train a model with --net v2sa_local|v2su|cnn1d; evaluate with --eval-dir. "
        "Paths under ../shared are the defaults of this workplace; pass 'none' to leave a source out.",
    )
    parser.add_argument("--net", default="0",
                        help="evaluation: 0/v2sa, 3/v2su, 5/cnn1d; training: v2sa_local (V2Sa trained here, the "
                             "offline fallback of --net 0), v2su (3) or cnn1d (5)")
    parser.add_argument("--eval-dir", help="only evaluate: a Speech-Commands-layout folder to score")
    parser.add_argument("--am-weights", help="evaluation: weights file (default: the usual search, see speech_models)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips per batch (evaluation and training)")
    train = parser.add_argument_group("training")
    train.add_argument("--corpus-dir", action="append", default=None,
                       help="Speech-Commands-layout folder(s) of real speech, repeatable (default ../shared/speech/gsc). "
                            "Clips in testing_list.txt (or, for ../shared, the v0.02 TEST rows of SOURCES.tsv) are "
                            "evaluation only, and so are all clips of their speakers")
    train.add_argument("--fsdd-dir", default=str(SHARED_DIR / "speech" / "fsdd"),
                       help="Free Spoken Digit Dataset recordings (<digit>_<speaker>_<n>.wav, 8 kHz, resampled); 'none' to skip")
    train.add_argument("--fsdd-holdout", default="nicolas",
                       help="comma-separated FSDD speakers kept out of training and scored")
    train.add_argument("--noise-dir", default=str(SHARED_DIR / "noise"),
                       help="background-noise WAVs: mixed into speech and cut into class-0 (silence/unknown) clips; 'none' to skip")
    train.add_argument("--ucr-dir", default=str(SHARED_DIR / "ucr"),
                       help="UCR <Name>/<Name>_TRAIN.tsv files (TEST files are never read): V2S-like inputs, tiled "
                            "series + random programs, labelled by the teacher only; 'none' to skip")
    train.add_argument("--tts", action=argparse.BooleanOptionalAction, default=True,
                       help="synthesise the 35 words with the installed offline TTS voices (espeak-ng variants, flite)")
    train.add_argument("--espeak-voices", type=int, default=90,
                       help="espeak-ng voice configurations (accent x variant x speed x pitch) drawn at random")
    train.add_argument("--teacher", default=None,
                       help="weights of the teacher V2Sa (default: speech_models' search for the original "
                            "model-attRNN.h5); 'none' trains on hard labels only")
    train.add_argument("--epochs", type=int, default=None, help="training epochs (default per model: v2sa_local 8, v2su 3, cnn1d 4)")
    train.add_argument("--lr", type=float, default=None, help="Adam's peak learning rate, cosine decay (default per model)")
    train.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    train.add_argument("--alpha", type=float, default=0.5, help="weight of the hard-label cross-entropy beside the distillation loss")
    train.add_argument("--mix-prob", type=float, default=0.3, help="fraction of each batch mixed with another example (teacher labels only)")
    train.add_argument("--copies-gsc", type=int, default=8, help="augmented copies of each real Speech-Commands training clip")
    train.add_argument("--copies-tts", type=int, default=2, help="augmented copies of each TTS clip")
    train.add_argument("--n-noise", type=int, default=1500, help="class-0 clips cut from the noise files")
    train.add_argument("--n-ucr", type=int, default=3000, help="V2S-like inputs from UCR TRAIN series")
    train.add_argument("--max-clips", type=int, default=0, help="cap on the augmented corpus (0 = no cap), e.g. for cnn1d's compute")
    train.add_argument("--max-minutes", type=float, default=0, help="stop training after the epoch that passes this wall time (0 = none)")
    train.add_argument("--init-from-teacher", action=argparse.BooleanOptionalAction, default=None,
                       help="v2su: start the layers shared with V2Sa (BiLSTMs, attention, dense) from the teacher and "
                            "fit the new conv block to the teacher's first (default on for v2su, off otherwise)")
    train.add_argument("--out", default=str(utils.PROJECT_DIR / "weight"), help="where <name>.weights.h5 and <name>.json go")
    train.add_argument("--results-dir", default=str(utils.PROJECT_DIR / "results"), help="where the confusion-matrix PNG goes")
    train.add_argument("--cache-dir", default=os.environ.get("V2S_CACHE_DIR", str(Path(tempfile.gettempdir()) / "v2s_cache")),
                       help="corpus, feature and checkpoint cache (exact: the front end has no weights)")
    train.add_argument("--fresh", action="store_true", help="ignore a checkpoint of an interrupted run (default: resume it)")
    train.add_argument("--seed", type=int, default=0, help="seeds the corpus, augmentation, split and initialisation")
    args = parser.parse_args(argv)
    validation.at_least("--batch-size", args.batch_size, 1, whole=True)
    if args.epochs is not None:
        validation.at_least("--epochs", args.epochs, 1, whole=True)
    if args.lr is not None:
        validation.greater_than("--lr", args.lr, 0)
    validation.greater_than("--temperature", args.temperature, 0)
    validation.in_range("--alpha", args.alpha, 0, 1, high_included=True)
    validation.in_range("--mix-prob", args.mix_prob, 0, 1, high_included=True)
    for flag in ("espeak_voices", "copies_gsc", "copies_tts", "n_noise", "n_ucr", "max_clips"):
        validation.at_least("--" + flag.replace("_", "-"), getattr(args, flag), 0, whole=True)
    validation.at_least("--max-minutes", args.max_minutes, 0, "0: no time limit")
    validation.seed("--seed", args.seed)
    return args


def training_name(net: str) -> str:
    """The model trained for a `--net` value: v2sa_local (also for 0/v2sa), v2su (3), cnn1d (5)."""
    key = str(net).strip().lower()
    if key in TRAINABLE:
        return key
    import speech_models

    name = speech_models.resolve_net(key)
    return "v2sa_local" if name == "v2sa" else name


def arch_of(name: str) -> str:
    return "v2sa" if name == "v2sa_local" else name


def _none(value) -> bool:
    return value is None or str(value).lower() in ("", "none")


# ----------------------------------------------------------------------------------------------
# Speakers and the split


def speaker_of(path: str | os.PathLike) -> str:
    """The speaker of a clip: Speech Commands `<speaker>_nohash_<n>.wav`, FSDD `<digit>_<speaker>_<n>.wav`."""
    name = Path(path).name
    if "_nohash_" in name:
        return name.split("_nohash_")[0]
    match = re.fullmatch(r"\d_([A-Za-z]+)_\d+\.wav", name)
    return match.group(1) if match else Path(path).stem


def official_test_files(corpus_dir: str | os.PathLike) -> set[str]:
    """'<word>/<file>.wav' names that are evaluation only in a Speech-Commands-layout folder.

    `testing_list.txt` in the folder (the real GSC) or, for ../shared/speech/gsc, the rows of the
    parent's SOURCES.tsv taken from the official v0.02 TEST split (source PICO-tinyML-benchmark).
    """
    corpus_dir = Path(corpus_dir)
    listing = corpus_dir / "testing_list.txt"
    if listing.is_file():
        return {line.strip() for line in listing.read_text().splitlines() if line.strip()}
    sources = corpus_dir.parent / "SOURCES.tsv"
    found = set()
    if sources.is_file():
        with open(sources, newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                parts = Path(row.get("file", "")).parts
                if "PICO-tinyML-benchmark" in row.get("source_repo", "") and len(parts) >= 2 and parts[0] == corpus_dir.name:
                    found.add("/".join(parts[-2:]))
    return found


def speaker_disjoint_split(items: list, heldout_speakers: set[str]) -> tuple[list, list]:
    """(train, held-out) items (tuples whose last element is the speaker); no speaker is in both."""
    train = [item for item in items if item[-1] not in heldout_speakers]
    heldout = [item for item in items if item[-1] in heldout_speakers]
    assert not {i[-1] for i in train} & {i[-1] for i in heldout}
    return train, heldout


def choose_heldout_speakers(speakers, fraction: float, seed: int) -> set[str]:
    """A seeded random `fraction` (at least one) of `speakers`, for corpora without a test list."""
    speakers = sorted(set(speakers))
    if not speakers:
        return set()
    n = max(1, round(fraction * len(speakers)))
    return set(np.random.default_rng(seed).permutation(speakers)[:n].tolist())


@dataclass
class SpeechSplit:
    """Real speech clips as (path, label, speaker), split by speaker."""

    train: list = field(default_factory=list)
    test_split: list = field(default_factory=list)  # official TEST-split clips
    unseen: list = field(default_factory=list)  # every clip of a speaker never trained on
    notes: list = field(default_factory=list)


def split_corpus_dirs(corpus_dirs, seed: int = 0) -> SpeechSplit:
    """Split Speech-Commands-layout folders by speaker: the speakers of the official TEST clips are held out.

    A folder without a test list holds out a seeded 20 % of its speakers instead.
    """
    import speech_models

    split = SpeechSplit()
    for corpus_dir in corpus_dirs:
        corpus_dir = Path(corpus_dir)
        clips, _ = speech_models.scan_folder(corpus_dir)
        items = [(str(path), label, speaker_of(path)) for path, label in clips]
        test_names = official_test_files(corpus_dir)
        is_test = {item[0] for item in items if "/".join(Path(item[0]).parts[-2:]) in test_names}
        if is_test:
            heldout = {item[-1] for item in items if item[0] in is_test}
            how = f"{len(is_test)} official TEST clips; their {len(heldout)} speakers held out"
        else:
            heldout = choose_heldout_speakers([item[-1] for item in items], 0.2, seed)
            is_test = {item[0] for item in items if item[-1] in heldout}
            how = f"no test list: {len(heldout)} random speakers (20 %) held out"
        train, unseen = speaker_disjoint_split(items, heldout)
        split.train += train
        split.unseen += unseen
        split.test_split += [item for item in items if item[0] in is_test]
        split.notes.append(f"{corpus_dir}: {len(items)} clips, {len({i[-1] for i in items})} speakers; {how}; "
                           f"train {len(train)} clips / {len({i[-1] for i in train})} speakers")  # fmt: skip
    return split


def fsdd_items(fsdd_dir, holdout: set[str]) -> tuple[list, list]:
    """FSDD clips as (path, word label, speaker): (train, held-out speakers)."""
    import speech_models

    items = []
    for path in sorted(Path(fsdd_dir).glob("*.wav")):
        match = re.fullmatch(r"(\d)_([A-Za-z]+)_\d+\.wav", path.name)
        if match:
            label = speech_models.SOURCE_CLASSES.index(FSDD_WORDS[int(match.group(1))])
            items.append((str(path), label, match.group(2)))
    if not items:
        raise V2SError(f"--fsdd-dir {fsdd_dir}: no <digit>_<speaker>_<n>.wav files")
    return speaker_disjoint_split(items, holdout)


# ----------------------------------------------------------------------------------------------
# Offline TTS voices


def tts_voices(n_espeak: int, seed: int) -> list[dict]:
    """Voice configurations of the installed offline TTS engines (espeak-ng, flite), seeded."""
    rng = np.random.default_rng(seed)
    voices = []
    if shutil.which("espeak-ng") and n_espeak > 0:
        listed = subprocess.run(["espeak-ng", "--voices=en"], capture_output=True, text=True).stdout
        accents = [a for a in ESPEAK_ACCENTS if re.search(rf"\s{re.escape(a)}\s", listed)] or ["en"]
        variants = [""]
        for data_dir in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/share/espeak-ng-data", "/usr/lib/espeak-ng-data"):
            vdir = Path(data_dir) / "voices" / "!v"
            if vdir.is_dir():
                variants += sorted(p.name for p in vdir.iterdir() if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", p.name))
                break
        for _ in range(n_espeak):
            accent, variant = accents[rng.integers(len(accents))], variants[rng.integers(len(variants))]
            voice = accent + (f"+{variant}" if variant else "")
            speed, pitch = int(rng.integers(110, 210)), int(rng.integers(15, 85))
            voices.append({"engine": "espeak-ng", "voice": voice, "speed": speed, "pitch": pitch,
                           "id": f"espeak-ng:{voice}:s{speed}:p{pitch}"})  # fmt: skip
    if shutil.which("flite"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        names = listed.split(":", 1)[-1].split()
        for name in names:
            for stretch in (0.9, 1.15, 1.4):
                f0 = int(rng.integers(80, 220))
                voices.append({"engine": "flite", "voice": name, "stretch": stretch, "f0": f0,
                               "id": f"flite:{name}:d{stretch}:f{f0}"})  # fmt: skip
    return voices


def synthesise(voice: dict, word: str, path: Path) -> bool:
    if voice["engine"] == "espeak-ng":
        cmd = ["espeak-ng", "-v", voice["voice"], "-s", str(voice["speed"]), "-p", str(voice["pitch"]), "-w", str(path), word]
    else:
        cmd = ["flite", "-voice", voice["voice"], "--setf", f"duration_stretch={voice['stretch']}",
               "--setf", f"int_f0_target_mean={voice['f0']}", "-t", word, "-o", str(path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, timeout=60)
    return done.returncode == 0 and path.is_file() and path.stat().st_size > 100


def tts_items(voices: list[dict], out_dir: Path) -> list:
    """Synthesise the 35 words with each voice into out_dir: (path, label, voice id)."""
    import speech_models
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for v, voice in enumerate(voices):
        for label, word in enumerate(speech_models.SOURCE_CLASSES):
            if label:
                jobs.append((voice, word, label, out_dir / f"{word}_v{v:03d}.wav"))
    todo = [job for job in jobs if not job[3].is_file()]
    with ThreadPoolExecutor(2) as pool, tqdm(total=len(todo), desc="tts", unit="clip", file=sys.stderr,
                                             mininterval=10, disable=None) as bar:  # fmt: skip
        for _ in pool.map(lambda job: (synthesise(job[0], job[1], job[3]), bar.update(1)), todo):
            pass
    return [(str(path), label, voice["id"]) for voice, _, label, path in jobs if path.is_file()]


# ----------------------------------------------------------------------------------------------
# Augmentation (numpy, seeded) and the corpus


def place(wave: np.ndarray, rng: np.random.Generator, jitter: bool = True) -> np.ndarray:
    """Crop a clip to its active part (> 2 % of its peak, 30 ms margin) and put it at a random offset in 1 s."""
    peak = np.abs(wave).max()
    if peak <= 0:
        return np.zeros(WAVE_LEN, np.float32)
    active = np.flatnonzero(np.abs(wave) > 0.02 * peak)
    lo, hi = max(0, active[0] - 480), min(len(wave), active[-1] + 480)
    core = wave[lo:hi][:WAVE_LEN]
    out = np.zeros(WAVE_LEN, np.float32)
    start = int(rng.integers(0, WAVE_LEN - len(core) + 1)) if jitter else (WAVE_LEN - len(core)) // 2
    out[start : start + len(core)] = core
    return out


def noise_segment(noises: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    noise = noises[rng.integers(len(noises))]
    start = int(rng.integers(0, len(noise) - WAVE_LEN + 1))
    return noise[start : start + WAVE_LEN].astype(np.float32)


def augment_speech(wave: np.ndarray, rng: np.random.Generator, noises: list, noise_prob: float = 0.6) -> np.ndarray:
    """Random placement, peak gain in [0.05, 0.9], and (with `noise_prob`) noise at an SNR of 0-30 dB."""
    out = place(wave, rng)
    out *= rng.uniform(0.05, 0.9) / max(np.abs(out).max(), 1e-6)
    if noises and rng.random() < noise_prob:
        noise = noise_segment(noises, rng)
        snr = rng.uniform(0, 30)
        rms_s, rms_n = np.sqrt(np.mean(out**2)) + 1e-8, np.sqrt(np.mean(noise**2)) + 1e-8
        out = out + noise * (rms_s / rms_n) / 10 ** (snr / 20)
    return np.clip(out, -1, 1).astype(np.float32)


def read_noises(noise_dir) -> list[np.ndarray]:
    import speech_models
    from scipy.io import wavfile

    noises = []
    for path in sorted(Path(noise_dir).glob("*.wav")):
        rate, data = wavfile.read(path)
        data = data.astype(np.float32) / (32768.0 if data.dtype == np.int16 else 1.0)
        if data.ndim == 2:
            data = data.mean(axis=1)
        if rate != SAMPLE_RATE:
            from scipy.signal import resample_poly

            g = math.gcd(rate, SAMPLE_RATE)
            data = resample_poly(data, SAMPLE_RATE // g, rate // g).astype(np.float32)
        if len(data) > WAVE_LEN:
            noises.append(data)
    del speech_models
    if not noises:
        raise V2SError(f"--noise-dir {noise_dir}: no WAV file longer than 1 s")
    return noises


def ucr_inputs(ucr_dir, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """n V2S-like waveforms: a UCR TRAIN series tiled 1-5 times into 1 s plus a random program.

    Only *_TRAIN.tsv files are read. The program is uniform noise of a random amplitude
    (0 to 0.5, log-spread) or smoothed noise; a quarter get none.
    """
    import ts_model

    files = sorted(Path(ucr_dir).glob("*/*_TRAIN.tsv"))
    if not files:
        raise V2SError(f"--ucr-dir {ucr_dir}: no <Name>/<Name>_TRAIN.tsv files")
    series = []
    for path in files:
        data = np.loadtxt(path, delimiter="\t", ndmin=2)[:, 1:]
        data = data[:, : min(data.shape[1], WAVE_LEN)]
        if np.isfinite(data).all():
            series.append(data.astype(np.float32))
    out = np.zeros((n, WAVE_LEN), np.float32)
    for i in range(n):
        data = series[rng.integers(len(series))]
        x = data[rng.integers(len(data))][None, :]
        fit = WAVE_LEN // x.shape[1]
        wave = ts_model.tile_segments(x, int(rng.integers(1, min(5, fit) + 1)))[0]
        kind = rng.random()
        if kind > 0.25:
            amp = float(np.exp(rng.uniform(np.log(0.003), np.log(0.5))))
            theta = rng.uniform(-amp, amp, WAVE_LEN).astype(np.float32)
            if kind > 0.7:
                width = int(rng.integers(2, 64))
                theta = np.convolve(theta, np.ones(width) / math.sqrt(width), mode="same").astype(np.float32)
            wave = wave + theta
        out[i] = wave
    return out, [f.parent.name for f in files]


@dataclass
class Corpus:
    waves: np.ndarray  # (n, 16000) float32
    hard: np.ndarray  # (n,) int, -1 where only the teacher labels it
    source: np.ndarray  # (n,) str: gsc, fsdd, tts, noise, ucr
    composition: dict
    voices: list
    speakers: dict


def build_corpus(args, split: SpeechSplit, fsdd_train: list, rng: np.random.Generator, cache_root: Path) -> Corpus:
    """The fixed augmented training corpus (see docs/acoustic_models.md)."""
    import speech_models

    waves, hard, source = [], [], []
    noises = read_noises(args.noise_dir) if not _none(args.noise_dir) else []

    def add(wave, label, src):
        waves.append(wave)
        hard.append(label)
        source.append(src)

    for path, label, _ in split.train:
        clip = speech_models.read_clip(path)
        for _ in range(args.copies_gsc):
            add(augment_speech(clip, rng, noises), label, "gsc")
    for path, label, _ in fsdd_train:
        add(augment_speech(speech_models.read_clip(path), rng, noises, noise_prob=0.5), label, "fsdd")
    voices = []
    if args.tts:
        voices = tts_voices(args.espeak_voices, args.seed)
        engines = sorted({v["engine"] for v in voices})
        print(f"TTS engines: {', '.join(engines) or 'none installed'}; {len(voices)} voice configurations", flush=True)
        for v in voices[:: max(1, len(voices) // 12)]:
            print(f"  voice {v['id']}", flush=True)
        items = tts_items(voices, cache_root / "tts")
        for path, label, _ in items:
            clip = speech_models.read_clip(path)
            for _ in range(args.copies_tts):
                add(augment_speech(clip, rng, noises, noise_prob=0.5), label, "tts")
    if noises:
        for i in range(args.n_noise):
            seg = noise_segment(noises, rng)
            gain = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))
            seg = seg * gain / max(np.abs(seg).max(), 1e-6)
            if i % 50 == 0:
                seg = np.zeros(WAVE_LEN, np.float32) if i % 100 == 0 else rng.normal(0, 1e-4, WAVE_LEN).astype(np.float32)
            add(np.clip(seg, -1, 1).astype(np.float32), 0, "noise")
    ucr_names = []
    if not _none(args.ucr_dir) and args.n_ucr > 0:
        ucr, ucr_names = ucr_inputs(args.ucr_dir, args.n_ucr, rng)
        for wave in ucr:
            add(wave, -1, "ucr")
    if not waves:
        raise V2SError("the training corpus is empty: give --corpus-dir, --fsdd-dir, --tts or --noise-dir")
    waves, hard, source = np.stack(waves), np.array(hard), np.array(source)
    if args.max_clips and len(waves) > args.max_clips:
        keep = np.sort(rng.permutation(len(waves))[: args.max_clips])
        waves, hard, source = waves[keep], hard[keep], source[keep]
    composition = {src: int(np.sum(source == src)) for src in ("gsc", "fsdd", "tts", "noise", "ucr")}
    composition["total"] = int(len(waves))
    speakers = {
        "gsc_train_speakers": len({i[-1] for i in split.train}),
        "gsc_train_clips": len(split.train),
        "fsdd_train_speakers": sorted({i[-1] for i in fsdd_train}),
        "tts_voice_configurations": len(voices),
        "ucr_train_files_of": ucr_names,
    }
    return Corpus(waves, hard, source, composition, voices, speakers)


def corpus_key(args, split: SpeechSplit, fsdd_train: list) -> str:
    recipe = {
        "version": CORPUS_VERSION, "gsc": [i[0] for i in split.train], "fsdd": [i[0] for i in fsdd_train],
        "noise": args.noise_dir, "ucr": args.ucr_dir, "tts": args.tts, "espeak": args.espeak_voices,
        "copies": [args.copies_gsc, args.copies_tts], "n": [args.n_noise, args.n_ucr, args.max_clips], "seed": args.seed,
    }  # fmt: skip
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build_corpus(args, split, fsdd_train, rng) -> tuple[Corpus, Path]:
    cache_root = Path(args.cache_dir)
    key_dir = cache_root / f"corpus_{corpus_key(args, split, fsdd_train)}"
    meta_path = key_dir / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        corpus = Corpus(np.load(key_dir / "waves.npy", mmap_mode="r"), np.load(key_dir / "hard.npy"),
                        np.load(key_dir / "source.npy"), meta["composition"], meta["voices"], meta["speakers"])  # fmt: skip
        print(f"corpus: cached {key_dir} ({corpus.composition['total']} clips)", flush=True)
        return corpus, key_dir
    started = time.time()
    corpus = build_corpus(args, split, fsdd_train, rng, cache_root)
    key_dir.mkdir(parents=True, exist_ok=True)
    for name, array in (("waves", corpus.waves), ("hard", corpus.hard), ("source", corpus.source)):
        utils.atomic_save(key_dir / f"{name}.npy", lambda tmp, a=array: np.save(tmp, a))
    utils.atomic_write_json(meta_path, {"composition": corpus.composition, "voices": corpus.voices,
                                        "speakers": corpus.speakers, "seconds": time.time() - started})  # fmt: skip
    print(f"corpus: built {corpus.composition} in {time.time() - started:.0f} s -> {key_dir}", flush=True)
    return corpus, key_dir


# ----------------------------------------------------------------------------------------------
# Features, teacher, distillation


def front_end_model():
    import keras

    import speech_models

    wave = keras.Input((WAVE_LEN,), dtype="float32")
    return keras.Model(wave, speech_models.mel_front_end(wave), name="front_end")


def batched(fn, x, batch_size: int, desc: str | None = None) -> np.ndarray:
    from tqdm import tqdm

    outs = []
    for start in tqdm(range(0, len(x), batch_size), desc=desc, file=sys.stderr, mininterval=10, disable=None if desc else True):
        outs.append(np.asarray(fn(np.asarray(x[start : start + batch_size], np.float32))))
    return np.concatenate(outs)


def mel_features(waves, key_dir: Path, batch_size: int = 128) -> np.ndarray:
    """Standardised log-mel features (n, 125, 80, 1) of the corpus, cached as float16 beside it."""
    path = key_dir / "mel_f16.npy"
    if path.is_file():
        return np.load(path).astype(np.float32)
    front = front_end_model()
    feats = batched(lambda b: front(b, training=False), waves, batch_size, "features").astype(np.float16)
    utils.atomic_save(path, lambda tmp: np.save(tmp, feats))
    return feats.astype(np.float32)


def load_teacher(path: str | None):
    """The original V2Sa (full model on waveforms, body on features) and its AMInfo; None for 'none'."""
    import speech_models

    if _none(path) and path is not None:
        return None
    model, info = speech_models.load_am("v2sa", path)
    if info.source == "local_fallback":
        raise V2SError("no original V2Sa found to distil from (only the local fallback): pass --teacher PATH or 'none'")
    body = speech_models.build_body("v2sa")
    speech_models.copy_weights_by_name(model, body)
    model.trainable = False
    body.trainable = False
    return model, body, info


def make_augment(kind: str, mix_prob: float):
    """A tf function (x) -> (x', mixed): time shift, masks (mel), mixup of a `mix_prob` share of the batch."""
    import tensorflow as tf

    def standardise(x):
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        var = tf.math.reduce_variance(x, axis=[1, 2, 3], keepdims=True)
        return (x - mean) / tf.sqrt(var + 1e-6)

    def augment(x):
        n = tf.shape(x)[0]
        length, max_shift = (125, 10) if kind == "mel" else (WAVE_LEN, 1600)
        shift = tf.random.uniform([n], -max_shift, max_shift + 1, tf.int32)
        idx = tf.math.floormod(tf.range(length)[None, :] - shift[:, None], length)
        x = tf.gather(x, idx, batch_dims=1)
        if kind == "mel":
            def band(size, width):
                lo = tf.random.uniform([n, 1], 0, size, tf.int32)
                w = tf.random.uniform([n, 1], 0, width + 1, tf.int32)
                r = tf.range(size)[None, :]
                return (r >= lo) & (r < lo + w)

            mask = band(125, 15)[:, :, None] | band(80, 10)[:, None, :]
            x = tf.where(mask[..., None], tf.zeros_like(x), x)
        mixed = tf.random.uniform([n]) < mix_prob
        lam = tf.where(mixed, tf.random.uniform([n], 0.4, 0.8), tf.ones([n]))
        lam = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
        x = lam * x + (1.0 - lam) * tf.gather(x, tf.random.shuffle(tf.range(n)))
        if kind == "mel":
            x = standardise(x)
        return x, mixed

    return augment


def distill(student, teacher, x, hard, *, epochs, batch_size, lr, temperature, alpha, mix_prob, kind,
            ckpt_dir: Path, fresh: bool, max_minutes: float, seed: int, val_idx=None) -> dict:  # fmt: skip
    """Train `student` on KL(teacher || student) at `temperature` plus `alpha` x cross-entropy on hard labels.

    Inputs are augmented on the fly (`make_augment`) and the teacher labels each augmented batch;
    mixed examples get no hard-label loss. Without a teacher: cross-entropy on hard labels only.
    A checkpoint is written after every epoch to `ckpt_dir` and resumed unless `fresh`.

    Returns:
        a history dict: per-epoch loss and teacher agreement on `val_idx`, epochs run, seconds.
    """
    import keras
    import tensorflow as tf

    labelled = np.flatnonzero(hard >= 0) if teacher is None else np.arange(len(x))
    train_idx = np.setdiff1d(labelled, val_idx if val_idx is not None else [])
    steps = max(1, len(train_idx) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=steps * epochs, alpha=0.05,
                                                      warmup_target=None)  # fmt: skip
    optimizer = keras.optimizers.Adam(schedule, clipnorm=5.0)
    optimizer.build(student.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64)
    ckpt = tf.train.Checkpoint(student=student, optimizer=optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=1)
    if fresh and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
        manager = tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=1)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        print(f"resumed from {manager.latest_checkpoint} (epoch {int(epoch_var.numpy())})", flush=True)
    augment = make_augment(kind, mix_prob if teacher is not None else 0.0)
    t2 = float(temperature) ** 2

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        xa, mixed = augment(xb)
        with tf.GradientTape() as tape:
            ps = student(xa, training=True)
            log_ps = tf.math.log(ps + 1e-7)
            use_hard = tf.cast((yb >= 0) & ~mixed, tf.float32)
            ce = -tf.reduce_sum(tf.gather(log_ps, tf.maximum(yb, 0), batch_dims=1) * use_hard)
            ce = ce / tf.maximum(tf.reduce_sum(use_hard), 1.0)
            if teacher is not None:
                pt = teacher(xa, training=False)
                soft_t = tf.nn.softmax(tf.math.log(pt + 1e-7) / temperature)
                log_soft_s = tf.nn.log_softmax(log_ps / temperature)
                kd = t2 * tf.reduce_mean(tf.reduce_sum(soft_t * (tf.math.log(soft_t + 1e-9) - log_soft_s), axis=1))
                loss = kd + alpha * ce
            else:
                kd = tf.constant(0.0)
                loss = ce
        grads = tape.gradient(loss, student.trainable_variables)
        optimizer.apply_gradients(zip(grads, student.trainable_variables))
        return loss, kd, ce

    history = {"loss": [], "kd": [], "ce": [], "val_agreement": [], "epoch_seconds": []}
    history_path = ckpt_dir / "history.json"
    if manager.latest_checkpoint and history_path.is_file():
        history = {k: v[: int(epoch_var.numpy())] for k, v in json.loads(history_path.read_text()).items() if k in history}
    rng = np.random.default_rng(seed + int(epoch_var.numpy()))
    started = time.time()
    val_teacher = None
    if val_idx is not None and len(val_idx) and teacher is not None:
        val_teacher = np.argmax(batched(lambda b: teacher(b, training=False), x[val_idx], 128), axis=1)
    while int(epoch_var.numpy()) < epochs:
        epoch = int(epoch_var.numpy()) + 1
        t0 = time.time()
        order = rng.permutation(train_idx)
        totals = np.zeros(3)
        for s in range(steps):
            idx = np.sort(order[s * batch_size : (s + 1) * batch_size])
            out = step(tf.constant(np.asarray(x[idx], np.float32)), tf.constant(hard[idx].astype(np.int32)))
            totals += [float(v) for v in out]
            if (s + 1) % max(1, steps // 10) == 0:
                rate = (s + 1) * batch_size / (time.time() - t0)
                print(f"  epoch {epoch} step {s + 1}/{steps} loss {totals[0] / (s + 1):.4f} ({rate:.0f} samples/s)", flush=True)
        totals /= steps
        agreement = float("nan")
        if val_teacher is not None:
            pred = np.argmax(batched(lambda b: student(b, training=False), x[val_idx], 128), axis=1)
            agreement = float(np.mean(pred == val_teacher))
        epoch_var.assign(epoch)
        utils.atomic_save(ckpt_dir / "done.txt", lambda tmp: Path(tmp).write_text(str(epoch)))
        manager.save()
        seconds = time.time() - t0
        for key, value in zip(("loss", "kd", "ce", "val_agreement", "epoch_seconds"), (*totals, agreement, seconds)):
            history[key].append(float(value))
        utils.atomic_write_json(history_path, history)
        print(f"epoch {epoch}/{epochs} loss {totals[0]:.4f} kd {totals[1]:.4f} ce {totals[2]:.4f} "
              f"teacher_agreement {agreement:.4f} ({seconds:.0f} s)", flush=True)  # fmt: skip
        if max_minutes and time.time() - started > 60 * max_minutes and epoch < epochs:
            print(f"stopping after epoch {epoch}: --max-minutes {max_minutes} reached", flush=True)
            break
    history["epochs_run"] = int(epoch_var.numpy())
    history["seconds"] = float(sum(history["epoch_seconds"]))
    return history


def recalibrate_batchnorm(model, x, n: int, seed: int) -> None:
    """Set every BatchNorm's moving mean/variance to the statistics of `n` clean (unaugmented) examples.

    One forward pass in training mode with momentum 0: each layer then holds exactly the batch
    statistics, so inference on clean inputs normalises as training did. (Statistics tracked on the
    augmented, mixed batches during training fit clean inputs badly: measured on v2su, agreement with
    the teacher on clean corpus clips 0.20 in inference mode against 0.67 with batch statistics.)
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return
    idx = np.sort(np.random.default_rng(seed).permutation(len(x))[: min(n, len(x))])
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        model(np.asarray(x[idx], np.float32), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def teacher_agreement(student, teacher, x, idx) -> float:
    if teacher is None or idx is None or not len(idx):
        return float("nan")
    xs = x[np.sort(idx)]
    want = np.argmax(batched(lambda b: teacher(b, training=False), xs, 128), axis=1)
    got = np.argmax(batched(lambda b: student(b, training=False), xs, 128), axis=1)
    return float(np.mean(got == want))


def fit_conv_block(student_body, teacher_body, feats, *, epochs: int, batch_size: int, seed: int) -> list[float]:
    """v2su stage 1: fit the new conv block's output (`batch_normalization_1`) to the teacher's (MSE)."""
    import keras

    source = keras.Model(student_body.input, student_body.get_layer("batch_normalization_1").output)
    target = keras.Model(teacher_body.input, teacher_body.get_layer("batch_normalization_1").output)
    y = batched(lambda b: target(b, training=False), feats, 128, "teacher conv features")
    source.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    hist = source.fit(feats, y, batch_size=batch_size, epochs=epochs, verbose=2, shuffle=True)
    return [float(v) for v in hist.history["loss"]]


# ----------------------------------------------------------------------------------------------
# Evaluation, card, plot


def score_items(model, items: list, batch_size: int = 64) -> dict:
    """36-way and core-10 accuracy of a waveform model on (path, label, speaker) clips."""
    import speech_models

    if not items:
        return {"n": 0, "accuracy_36": float("nan"), "n_core10": 0, "accuracy_core10": float("nan")}
    waves = np.stack([speech_models.read_clip(path) for path, _, _ in items])
    labels = np.array([label for _, label, _ in items])
    pred = np.argmax(batched(lambda b: model(b, training=False), waves, batch_size), axis=1)
    core = np.isin(labels, [speech_models.SOURCE_CLASSES.index(w) for w in speech_models.CORE_WORDS])
    right = pred == labels
    return {
        "n": int(len(items)),
        "speakers": len({i[-1] for i in items}),
        "accuracy_36": float(right.mean()),
        "n_core10": int(core.sum()),
        "accuracy_core10": float(right[core].mean()) if core.any() else float("nan"),
        "labels": labels,
        "predicted": pred,
    }


def plot_confusion(labels, predicted, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import speech_models

    k = len(speech_models.SOURCE_CLASSES)
    matrix = np.zeros((k, k), int)
    for t, p in zip(labels, predicted):
        matrix[t, p] += 1
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.imshow(matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), speech_models.SOURCE_CLASSES, rotation=90, fontsize=7)
    ax.set_yticks(range(k), speech_models.SOURCE_CLASSES, fontsize=7)
    for t, p in zip(*np.nonzero(matrix)):
        ax.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=5,
                color="white" if t == p else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    utils.atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def _public(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("labels", "predicted")}


# ----------------------------------------------------------------------------------------------
# Training entry point


def train_model(args) -> dict:
    """Build the corpus, distil/train one model, evaluate on held-out real speakers, write weights + card."""
    started = time.time()
    tf = utils.setup_tensorflow(seed=args.seed)
    import keras

    import speech_models

    name = training_name(args.net)
    arch = arch_of(name)
    defaults = DEFAULTS[name]
    epochs = args.epochs or defaults["epochs"]
    lr = args.lr or defaults["lr"]
    init_from_teacher = args.init_from_teacher if args.init_from_teacher is not None else name == "v2su"
    rng = np.random.default_rng(args.seed)
    print(f"training {name} ({arch} architecture), {epochs} epochs, lr {lr}", flush=True)

    corpus_dirs = args.corpus_dir if args.corpus_dir is not None else [str(SHARED_DIR / "speech" / "gsc")]
    corpus_dirs = [d for d in corpus_dirs if not _none(d)]
    split = split_corpus_dirs(corpus_dirs, args.seed) if corpus_dirs else SpeechSplit()
    for note in split.notes:
        print(note, flush=True)
    fsdd_holdout = {s.strip() for s in args.fsdd_holdout.split(",") if s.strip()}
    fsdd_train, fsdd_heldout = fsdd_items(args.fsdd_dir, fsdd_holdout) if not _none(args.fsdd_dir) else ([], [])
    train_speakers = {i[-1] for i in split.train} | {i[-1] for i in fsdd_train}
    eval_speakers = {i[-1] for i in split.unseen} | {i[-1] for i in fsdd_heldout}
    overlap = train_speakers & eval_speakers
    if overlap:
        raise V2SError(f"speaker split is not disjoint: {sorted(overlap)[:5]}")
    print(f"speakers: {len(train_speakers)} real training speakers, {len(eval_speakers)} held out, none shared", flush=True)

    teacher = None if (args.teacher is not None and _none(args.teacher)) else load_teacher(args.teacher)
    if teacher is not None:
        print(f"teacher: {teacher[2].path} (original={teacher[2].original})", flush=True)
    corpus, key_dir = load_or_build_corpus(args, split, fsdd_train, rng)
    print(f"corpus composition: {corpus.composition}", flush=True)

    keras.utils.set_random_seed(args.seed)
    if arch == "cnn1d":
        student = speech_models.build_am("cnn1d")
        x, kind = corpus.waves, "wave"
        teacher_model = teacher[0] if teacher else None
    else:
        student = speech_models.build_body(arch)
        x, kind = mel_features(corpus.waves, key_dir), "mel"
        teacher_model = teacher[1] if teacher else None
    conv_losses = []
    ckpt_dir = Path(args.cache_dir) / "ckpt" / f"{name}_{key_dir.name}"
    if init_from_teacher:
        if teacher is None or arch != "v2su":
            raise V2SError("--init-from-teacher needs --net v2su and a teacher")
        if not (ckpt_dir.exists() and not args.fresh):
            shared = {layer.name for layer in student.layers if layer.weights
                      and not layer.name.startswith(("conv2d", "batch_normalization"))}  # fmt: skip
            copied = speech_models.copy_weights_by_name(teacher[1], student, layers=shared)
            print(f"initialised from the teacher: {', '.join(copied)}", flush=True)
            conv_losses = fit_conv_block(student, teacher[1], x, epochs=1, batch_size=args.batch_size, seed=args.seed)
            utils.atomic_write_json(ckpt_dir / "conv_fit.json", {"mse": conv_losses})
        elif (ckpt_dir / "conv_fit.json").is_file():
            conv_losses = json.loads((ckpt_dir / "conv_fit.json").read_text())["mse"]
    val_idx = np.random.default_rng(args.seed + 1).permutation(len(x))[: max(1, len(x) // 40)]
    history = distill(student, teacher_model, x, corpus.hard, epochs=epochs, batch_size=args.batch_size, lr=lr,
                      temperature=args.temperature, alpha=args.alpha, mix_prob=args.mix_prob, kind=kind,
                      ckpt_dir=ckpt_dir, fresh=args.fresh, max_minutes=args.max_minutes, seed=args.seed,
                      val_idx=val_idx)  # fmt: skip

    before = teacher_agreement(student, teacher_model, x, val_idx)
    recalibrate_batchnorm(student, x, 128 if arch == "cnn1d" else 1024, args.seed + 2)
    after = teacher_agreement(student, teacher_model, x, val_idx)
    history["batchnorm_recalibration"] = {"examples": 128 if arch == "cnn1d" else 1024,
                                          "teacher_agreement_before": before, "teacher_agreement_after": after}  # fmt: skip
    print(f"BatchNorm statistics recalibrated on clean clips: teacher agreement {before:.4f} -> {after:.4f}", flush=True)
    model = student
    if arch != "cnn1d":
        model = speech_models.build_am(arch)
        speech_models.copy_weights_by_name(student, model)
    results = {
        "gsc_test_split": score_items(model, split.test_split),
        "gsc_unseen_speakers": score_items(model, split.unseen),
        "fsdd_heldout_speakers": score_items(model, fsdd_heldout),
    }
    teacher_results = {}
    if teacher is not None:
        teacher_results = {k: _public(score_items(teacher[0], items)) for k, items in
                           (("gsc_test_split", split.test_split), ("gsc_unseen_speakers", split.unseen),
                            ("fsdd_heldout_speakers", fsdd_heldout))}  # fmt: skip

    out = Path(args.out)
    weights_path = out / f"{name}.weights.h5"
    utils.atomic_save(weights_path, lambda tmp: model.save_weights(tmp))
    png = Path(args.results_dir) / f"am_{name}_confusion.png"
    shown = results["gsc_unseen_speakers"] if results["gsc_unseen_speakers"]["n"] else results["fsdd_heldout_speakers"]
    if shown["n"]:
        plot_confusion(shown["labels"], shown["predicted"], png,
                       f"{name} on held-out real speakers ({shown['n']} clips): 36-way {shown['accuracy_36']:.3f}, "
                       f"core10 {shown['accuracy_core10']:.3f}")  # fmt: skip
    card = {
        "name": name,
        "architecture": arch,
        "parameters": int(model.count_params()),
        "input": "float32 waveform (batch, 16000), 16 kHz, 1 s",
        "classes": list(speech_models.SOURCE_CLASSES),
        "how_trained": describe_training(name, teacher, init_from_teacher, args, lr),
        "teacher": None if teacher is None else {"path": teacher[2].path, "sha256": teacher[2].sha256, "original": teacher[2].original},
        "corpus": {"composition": corpus.composition, "augmented_copies": {"gsc": args.copies_gsc, "tts": args.copies_tts},
                   "split_notes": split.notes, **corpus.speakers,
                   "fsdd_heldout_speakers": sorted(fsdd_holdout) if fsdd_train or fsdd_heldout else [],
                   "train_eval_speakers_disjoint": not overlap},
        "voices": [v["id"] for v in corpus.voices],
        "epochs": history["epochs_run"],
        "epochs_planned": epochs,
        "history": history,
        "conv_block_fit_mse": conv_losses,
        "wall_time_seconds": round(time.time() - started, 1),  # this run (see wall_time_seconds_all_runs)
        "training_seconds": round(history["seconds"], 1),
        "accuracy": {k: _public(v) for k, v in results.items()},
        "teacher_accuracy_same_clips": teacher_results,
        "confusion_png": str(png) if shown["n"] else None,
        "command": "python pretrain_am.py " + " ".join(sys.argv[1:]),
        "seed": args.seed,
        "versions": utils.versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    wall_path = ckpt_dir / "wall.json"
    earlier = json.loads(wall_path.read_text()) if wall_path.is_file() else []
    runs = earlier + [round(time.time() - started, 1)]
    utils.atomic_write_json(wall_path, runs)
    card["wall_time_seconds_per_run"] = runs  # a resumed run adds one entry
    card["wall_time_seconds_all_runs"] = round(sum(runs), 1)
    utils.atomic_write_json(out / f"{name}.json", card)
    print(f"weights={weights_path}")
    print(f"card={out / f'{name}.json'}")
    for key, result in results.items():
        if result["n"]:
            print(f"{key}: clips={result['n']} speakers={result['speakers']} accuracy_36={result['accuracy_36']:.4f} "
                  f"core10_clips={result['n_core10']} accuracy_core10={result['accuracy_core10']:.4f}")  # fmt: skip
    return card


def describe_training(name, teacher, init_from_teacher, args, lr) -> str:
    how = ("distilled from the original V2Sa (KL at temperature %.1f + %.2f x cross-entropy on known labels), "
           % (args.temperature, args.alpha)) if teacher else "trained on hard labels only (no teacher), "
    how += f"Adam peak lr {lr}, cosine decay, batch {args.batch_size}; on-the-fly time shift, "
    how += "SpecAugment-style masks and mixup of standardised log-mel features" if name != "cnn1d" else "mixup of waveforms"
    how += "; the teacher labels every augmented batch" if teacher else ""
    how += "; after training, BatchNorm statistics recomputed on clean (unaugmented) corpus clips"
    if name == "v2sa_local":
        how += "; all weights trained from random initialisation (no weight copied from the original)"
    if init_from_teacher:
        how += ("; BiLSTMs, attention query and dense layers initialised from the teacher, the new U-Net conv block "
                "first fitted (1 epoch, MSE) to the teacher's conv-block output, then everything fine-tuned")
    return how


def evaluate(args) -> int:
    utils.setup_tensorflow()
    import speech_models

    net = speech_models.resolve_net(args.net)
    speech_models.scan_folder(args.eval_dir)
    model, info = speech_models.load_am(net, args.am_weights)
    print(f"model {info.name}: {info.path} ({info.source}, sha256 {info.sha256[:12]}, original={info.original})")
    result = speech_models.predict_folder(model, args.eval_dir, batch_size=args.batch_size)
    for line in format_per_class(result["per_class"]):
        print(line)
    print(f"clips={len(result['labels'])} core10_clips={result['n_core10']} "
          f"skipped={len(result['skipped'])} ({', '.join(result['skipped']) or 'none'})")  # fmt: skip
    print(f"accuracy_36={result['accuracy_36']:.4f}")
    print(f"accuracy_core10={result['accuracy_core10']:.4f}")
    return 0


def format_per_class(per_class: dict, columns: int = 4) -> list[str]:
    """`word correct/n` entries, `columns` to a line."""
    cells = [f"{word:>9} {r['correct']:>3}/{r['n']:<3}" for word, r in per_class.items()]
    return ["  ".join(cells[i : i + columns]).rstrip() for i in range(0, len(cells), columns)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.eval_dir:
        return evaluate(args)
    for flag in ("out", "results_dir", "cache_dir"):  # outputs fail now, not after hours of training
        validation.writable_dir("--" + flag.replace("_", "-"), getattr(args, flag))
    train_model(args)
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
