"""The training corpus of an acoustic model: augmented real speech, offline TTS, noise and UCR inputs.

The corpus is a fixed set of augmented 1 s waveforms, (n, 16000) float32 at 16 kHz (`build_corpus`),
made from the training side of the speaker split (`speech_split`) by its recipe (`CorpusRecipe`) and
cached under a key of both (`load_or_build_corpus`); see docs/acoustic_models.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import speech_data
import speech_models
import ts_model
import utils
from am_training.speech_split import SpeechSplit, is_none
from utils import WAVE_LEN, V2SError

CORPUS_VERSION = "corpus-v1"  # bump when the corpus recipe changes (invalidates caches)
ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-us-nyc",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
PLACE_MARGIN = 480  # samples (30 ms) kept around a clip's active part
ACTIVE_FRACTION = 0.02  # of the peak: where a clip's active part starts and ends


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
        for data_dir in (
            "/usr/lib/x86_64-linux-gnu/espeak-ng-data",
            "/usr/share/espeak-ng-data",
            "/usr/lib/espeak-ng-data",
        ):
            vdir = Path(data_dir) / "voices" / "!v"
            if vdir.is_dir():
                variants += sorted(p.name for p in vdir.iterdir() if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", p.name))
                break
        for _ in range(n_espeak):
            accent, variant = accents[rng.integers(len(accents))], variants[rng.integers(len(variants))]
            voice = accent + (f"+{variant}" if variant else "")
            speed, pitch = int(rng.integers(110, 210)), int(rng.integers(15, 85))
            voices.append(
                {
                    "engine": "espeak-ng",
                    "voice": voice,
                    "speed": speed,
                    "pitch": pitch,
                    "id": f"espeak-ng:{voice}:s{speed}:p{pitch}",
                }
            )
    if shutil.which("flite"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout
        names = listed.split(":", 1)[-1].split()
        for name in names:
            for stretch in (0.9, 1.15, 1.4):
                f0 = int(rng.integers(80, 220))
                voices.append(
                    {
                        "engine": "flite",
                        "voice": name,
                        "stretch": stretch,
                        "f0": f0,
                        "id": f"flite:{name}:d{stretch}:f{f0}",
                    }
                )
    return voices


def synthesise(voice: dict, word: str, path: Path) -> bool:
    """Say `word` with `voice` (a `tts_voices` entry) into the WAV file `path`; True if it was written."""
    if voice["engine"] == "espeak-ng":
        cmd = [
            "espeak-ng",
            "-v",
            voice["voice"],
            "-s",
            str(voice["speed"]),
            "-p",
            str(voice["pitch"]),
            "-w",
            str(path),
            word,
        ]
    else:
        cmd = [
            "flite",
            "-voice",
            voice["voice"],
            "--setf",
            f"duration_stretch={voice['stretch']}",
            "--setf",
            f"int_f0_target_mean={voice['f0']}",
            "-t",
            word,
            "-o",
            str(path),
        ]
    done = subprocess.run(cmd, capture_output=True, timeout=60)
    return done.returncode == 0 and path.is_file() and path.stat().st_size > 100


def tts_items(voices: list[dict], out_dir: Path) -> list:
    """Synthesise the 35 words with each voice into out_dir: (path, label, voice id)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for v, voice in enumerate(voices):
        for label, word in enumerate(speech_models.SOURCE_CLASSES):
            if label:
                jobs.append((voice, word, label, out_dir / f"{word}_v{v:03d}.wav"))
    todo = [job for job in jobs if not job[3].is_file()]
    with (
        ThreadPoolExecutor(2) as pool,
        tqdm(total=len(todo), desc="tts", unit="clip", file=sys.stderr, mininterval=10, disable=None) as bar,
    ):
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
    active = np.flatnonzero(np.abs(wave) > ACTIVE_FRACTION * peak)
    lo, hi = max(0, active[0] - PLACE_MARGIN), min(len(wave), active[-1] + PLACE_MARGIN)
    core = wave[lo:hi][:WAVE_LEN]
    out = np.zeros(WAVE_LEN, np.float32)
    start = int(rng.integers(0, WAVE_LEN - len(core) + 1)) if jitter else (WAVE_LEN - len(core)) // 2
    out[start : start + len(core)] = core
    return out


def noise_segment(noises: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A random 1 s cut of a random noise recording (each longer than 1 s)."""
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
    """The WAV files of `noise_dir` longer than 1 s, whole, as `speech_data.read_wav` reads them."""
    noises = [wave for wave in map(speech_data.read_wav, sorted(Path(noise_dir).glob("*.wav"))) if len(wave) > WAVE_LEN]
    if not noises:
        raise V2SError(f"--noise-dir {noise_dir}: no WAV file longer than 1 s")
    return noises


def ucr_inputs(ucr_dir, n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """n V2S-like waveforms: a UCR TRAIN series tiled 1-5 times into 1 s plus a random program.

    Only *_TRAIN.tsv files are read. The program is uniform noise of a random amplitude
    (0 to 0.5, log-spread) or smoothed noise; a quarter get none.
    """
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
    """The augmented training corpus and how it was made (the model card reports the last three)."""

    waves: np.ndarray  # (n, 16000) float32
    hard: np.ndarray  # (n,) int, -1 where only the teacher labels it
    source: np.ndarray  # (n,) str: gsc, fsdd, tts, noise, ucr
    composition: dict
    voices: list
    speakers: dict


@dataclass
class CorpusRecipe:
    """What goes into the corpus (the `pretrain_am.py` flags of the same names); its hash keys the cache."""

    noise_dir: str | None = None
    ucr_dir: str | None = None
    tts: bool = False
    espeak_voices: int = 0
    copies_gsc: int = 8
    copies_tts: int = 2
    n_noise: int = 1500
    n_ucr: int = 3000
    max_clips: int = 0  # 0: no cap
    seed: int = 0

    @classmethod
    def from_args(cls, args) -> CorpusRecipe:
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def build_corpus(
    recipe: CorpusRecipe, split: SpeechSplit, fsdd_train: list, rng: np.random.Generator, cache_root: Path
) -> Corpus:
    """The fixed augmented training corpus (see docs/acoustic_models.md); TTS clips are cached in cache_root/tts."""
    waves, hard, source = [], [], []
    noises = read_noises(recipe.noise_dir) if not is_none(recipe.noise_dir) else []

    def add(wave, label, src):
        waves.append(wave)
        hard.append(label)
        source.append(src)

    for path, label, _ in split.train:
        clip = speech_data.read_clip(path)
        for _ in range(recipe.copies_gsc):
            add(augment_speech(clip, rng, noises), label, "gsc")
    for path, label, _ in fsdd_train:
        add(augment_speech(speech_data.read_clip(path), rng, noises, noise_prob=0.5), label, "fsdd")
    voices = []
    if recipe.tts:
        voices = tts_voices(recipe.espeak_voices, recipe.seed)
        engines = sorted({v["engine"] for v in voices})
        print(f"TTS engines: {', '.join(engines) or 'none installed'}; {len(voices)} voice configurations", flush=True)
        for v in voices[:: max(1, len(voices) // 12)]:
            print(f"  voice {v['id']}", flush=True)
        items = tts_items(voices, cache_root / "tts")
        for path, label, _ in items:
            clip = speech_data.read_clip(path)
            for _ in range(recipe.copies_tts):
                add(augment_speech(clip, rng, noises, noise_prob=0.5), label, "tts")
    if noises:
        for i in range(recipe.n_noise):
            seg = noise_segment(noises, rng)
            gain = float(np.exp(rng.uniform(np.log(1e-3), np.log(1.0))))
            seg = seg * gain / max(np.abs(seg).max(), 1e-6)
            if i % 50 == 0:
                seg = (
                    np.zeros(WAVE_LEN, np.float32) if i % 100 == 0 else rng.normal(0, 1e-4, WAVE_LEN).astype(np.float32)
                )
            add(np.clip(seg, -1, 1).astype(np.float32), 0, "noise")
    ucr_names = []
    if not is_none(recipe.ucr_dir) and recipe.n_ucr > 0:
        ucr, ucr_names = ucr_inputs(recipe.ucr_dir, recipe.n_ucr, rng)
        for wave in ucr:
            add(wave, -1, "ucr")
    if not waves:
        raise V2SError("the training corpus is empty: give --corpus-dir, --fsdd-dir, --tts or --noise-dir")
    waves, hard, source = np.stack(waves), np.array(hard), np.array(source)
    if recipe.max_clips and len(waves) > recipe.max_clips:
        keep = np.sort(rng.permutation(len(waves))[: recipe.max_clips])
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


def corpus_key(recipe: CorpusRecipe, split: SpeechSplit, fsdd_train: list) -> str:
    """16 hex digits naming the corpus of this recipe and these training clips (the cache key)."""
    parts = {
        "version": CORPUS_VERSION,
        "gsc": [i[0] for i in split.train],
        "fsdd": [i[0] for i in fsdd_train],
        "noise": recipe.noise_dir,
        "ucr": recipe.ucr_dir,
        "tts": recipe.tts,
        "espeak": recipe.espeak_voices,
        "copies": [recipe.copies_gsc, recipe.copies_tts],
        "n": [recipe.n_noise, recipe.n_ucr, recipe.max_clips],
        "seed": recipe.seed,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_or_build_corpus(
    recipe: CorpusRecipe, split: SpeechSplit, fsdd_train: list, rng: np.random.Generator, cache_dir
) -> tuple[Corpus, Path]:
    """The cached corpus of this recipe (memory-mapped waves) or a new one, and its cache folder."""
    cache_root = Path(cache_dir)
    key_dir = cache_root / f"corpus_{corpus_key(recipe, split, fsdd_train)}"
    meta_path = key_dir / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        corpus = Corpus(
            np.load(key_dir / "waves.npy", mmap_mode="r"),
            np.load(key_dir / "hard.npy"),
            np.load(key_dir / "source.npy"),
            meta["composition"],
            meta["voices"],
            meta["speakers"],
        )
        print(f"corpus: cached {key_dir} ({corpus.composition['total']} clips)", flush=True)
        return corpus, key_dir
    started = time.time()
    corpus = build_corpus(recipe, split, fsdd_train, rng, cache_root)
    key_dir.mkdir(parents=True, exist_ok=True)
    for name, array in (("waves", corpus.waves), ("hard", corpus.hard), ("source", corpus.source)):
        utils.atomic_save(key_dir / f"{name}.npy", lambda tmp, a=array: np.save(tmp, a))
    utils.atomic_write_json(
        meta_path,
        {
            "composition": corpus.composition,
            "voices": corpus.voices,
            "speakers": corpus.speakers,
            "seconds": time.time() - started,
        },
    )
    print(f"corpus: built {corpus.composition} in {time.time() - started:.0f} s -> {key_dir}", flush=True)
    return corpus, key_dir
