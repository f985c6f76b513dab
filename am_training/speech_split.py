"""The real speech of an acoustic model's training run, split by speaker.

Clips are (path, label, speaker) tuples: label a class index of `speech_models.SOURCE_CLASSES`, speaker
a name read from the file name (`speaker_of`). Speech-Commands-layout folders hold out the speakers of
their official TEST clips (`split_corpus_dirs`), FSDD the speakers asked for (`fsdd_items`); every clip
of a held-out speaker is evaluation only, and `load_speech` refuses a speaker on both sides. `is_none`
tells a command-line value that leaves a source out. See docs/acoustic_models.md.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import speech_data
import speech_models
from utils import V2SError

FSDD_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def is_none(value) -> bool:
    """True for a command-line value that leaves a source out: None, '' or 'none'."""
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
                if (
                    "PICO-tinyML-benchmark" in row.get("source_repo", "")
                    and len(parts) >= 2
                    and parts[0] == corpus_dir.name
                ):
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
    split = SpeechSplit()
    for corpus_dir in corpus_dirs:
        corpus_dir = Path(corpus_dir)
        clips, _ = speech_data.scan_folder(corpus_dir)
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
        split.notes.append(
            f"{corpus_dir}: {len(items)} clips, {len({i[-1] for i in items})} speakers; {how}; "
            f"train {len(train)} clips / {len({i[-1] for i in train})} speakers"
        )
    return split


def fsdd_items(fsdd_dir, holdout: set[str]) -> tuple[list, list]:
    """FSDD clips as (path, word label, speaker): (train, held-out speakers)."""
    items = []
    for path in sorted(Path(fsdd_dir).glob("*.wav")):
        match = re.fullmatch(r"(\d)_([A-Za-z]+)_\d+\.wav", path.name)
        if match:
            label = speech_models.SOURCE_CLASSES.index(FSDD_WORDS[int(match.group(1))])
            items.append((str(path), label, match.group(2)))
    if not items:
        raise V2SError(f"--fsdd-dir {fsdd_dir}: no <digit>_<speaker>_<n>.wav files")
    return speaker_disjoint_split(items, holdout)


@dataclass
class SpeechData:
    """The real speech of a training run: the Speech-Commands split and FSDD, with disjoint speakers."""

    split: SpeechSplit
    fsdd_train: list
    fsdd_heldout: list
    fsdd_holdout: set  # the FSDD speakers asked to be held out


def load_speech(corpus_dirs, fsdd_dir, fsdd_holdout: set[str], seed: int) -> SpeechData:
    """Split the Speech-Commands folders and FSDD by speaker; V2SError if a speaker is on both sides.

    `fsdd_dir` may be 'none'. Prints the split notes and the speaker counts.
    """
    split = split_corpus_dirs(corpus_dirs, seed) if corpus_dirs else SpeechSplit()
    for note in split.notes:
        print(note, flush=True)
    fsdd_train, fsdd_heldout = fsdd_items(fsdd_dir, fsdd_holdout) if not is_none(fsdd_dir) else ([], [])
    train_speakers = {i[-1] for i in split.train} | {i[-1] for i in fsdd_train}
    eval_speakers = {i[-1] for i in split.unseen} | {i[-1] for i in fsdd_heldout}
    overlap = train_speakers & eval_speakers
    if overlap:
        raise V2SError(f"speaker split is not disjoint: {sorted(overlap)[:5]}")
    print(
        f"speakers: {len(train_speakers)} real training speakers, {len(eval_speakers)} held out, none shared",
        flush=True,
    )
    return SpeechData(split, fsdd_train, fsdd_heldout, set(fsdd_holdout))
