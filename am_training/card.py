"""The model card of a trained acoustic model: held-out scores, the confusion plot and the card (JSON).

The card (<out>/<name>.json beside <name>.weights.h5) says what the model is, how it was trained, on
what, and how it scores on speakers it never heard; `tests/test_pretrain.py` checks the shipped ones.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

import speech_data
import speech_models
import utils
from am_training.corpus import Corpus, CorpusRecipe
from am_training.distill import Teacher
from am_training.speech_split import SpeechData

HELDOUT = ("gsc_test_split", "gsc_unseen_speakers", "fsdd_heldout_speakers")  # the card's accuracy keys


def score_items(model, items: list, batch_size: int = 64) -> dict:
    """36-way and core-10 accuracy of a waveform model on (path, label, speaker) clips.

    Returns n, speakers, accuracy_36, n_core10, accuracy_core10 and the int arrays labels and
    predicted (`public` drops those two); for no clips n = 0 and nan accuracies.
    """
    paths = [path for path, _, _ in items]
    return summarise(items, speech_data.predict_clips(model, paths, batch_size) if paths else [])


def summarise(items: list, predicted) -> dict:
    """`score_items`' result from the clips and the model's predicted class per clip (in their order)."""
    if not items:
        return {"n": 0, "accuracy_36": float("nan"), "n_core10": 0, "accuracy_core10": float("nan")}
    labels = np.array([label for _, label, _ in items])
    predicted = np.asarray(predicted)
    scores = speech_data.accuracies(labels, predicted)
    return {
        "n": int(len(items)),
        "speakers": len({i[-1] for i in items}),
        "accuracy_36": scores["accuracy_36"],
        "n_core10": scores["n_core10"],
        "accuracy_core10": scores["accuracy_core10"],
        "labels": labels,
        "predicted": predicted,
    }


def score_heldout(model, speech: SpeechData) -> dict:
    """`score_items` on each held-out set, keyed as `HELDOUT`. The official TEST-split clips of the held-out
    speakers are among the unseen speakers' clips: each clip is predicted once."""
    split = speech.split
    paths = list(dict.fromkeys(path for path, _, _ in split.unseen + split.test_split))
    predicted = dict(zip(paths, speech_data.predict_clips(model, paths, 64))) if paths else {}
    return {
        HELDOUT[0]: summarise(split.test_split, [predicted[path] for path, _, _ in split.test_split]),
        HELDOUT[1]: summarise(split.unseen, [predicted[path] for path, _, _ in split.unseen]),
        HELDOUT[2]: score_items(model, speech.fsdd_heldout),
    }


def public(result: dict) -> dict:
    """A `score_items` result without its per-clip arrays (what the card keeps)."""
    return {k: v for k, v in result.items() if k not in ("labels", "predicted")}


def plot_confusion(labels, predicted, path: Path, title: str) -> None:
    """Row-normalised 36 x 36 confusion matrix (true rows, predicted columns, counts written in) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(speech_models.SOURCE_CLASSES)
    matrix = np.zeros((k, k), int)
    for t, p in zip(labels, predicted):
        matrix[t, p] += 1
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.imshow(matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), speech_models.SOURCE_CLASSES, rotation=90, fontsize=7)
    ax.set_yticks(range(k), speech_models.SOURCE_CLASSES, fontsize=7)
    for t, p in zip(*np.nonzero(matrix)):
        ax.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=5, color="white" if t == p else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    utils.atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def plot_heldout_confusion(results: dict, name: str, results_dir: Path) -> Path | None:
    """The confusion plot on the unseen Speech-Commands speakers (else the FSDD ones) as
    results_dir/am_<name>_confusion.png; None if both are empty."""
    shown = results["gsc_unseen_speakers"] if results["gsc_unseen_speakers"]["n"] else results["fsdd_heldout_speakers"]
    if not shown["n"]:
        return None
    png = Path(results_dir) / f"am_{name}_confusion.png"
    plot_confusion(
        shown["labels"],
        shown["predicted"],
        png,
        f"{name} on held-out real speakers ({shown['n']} clips): 36-way {shown['accuracy_36']:.3f}, "
        f"core10 {shown['accuracy_core10']:.3f}",
    )
    return png


def describe_training(
    name: str,
    teacher: Teacher | None,
    init_from_teacher: bool,
    *,
    temperature: float,
    alpha: float,
    batch_size: int,
    lr: float,
) -> str:
    """The card's `how_trained` sentence."""
    how = (
        (
            f"distilled from the original V2Sa (KL at temperature {temperature:.1f} + {alpha:.2f} x "
            "cross-entropy on known labels), "
        )
        if teacher
        else "trained on hard labels only (no teacher), "
    )
    how += f"Adam peak lr {lr}, cosine decay, batch {batch_size}; on-the-fly time shift, "
    how += (
        "SpecAugment-style masks and mixup of standardised log-mel features"
        if name not in speech_models.WAVEFORM_NETS
        else "mixup of waveforms"
    )
    how += "; the teacher labels every augmented batch" if teacher else ""
    how += "; after training, BatchNorm statistics recomputed on clean (unaugmented) corpus clips"
    if name == "v2sa_local":
        how += "; all weights trained from random initialisation (no weight copied from the original)"
    if init_from_teacher:
        how += (
            "; BiLSTMs, attention query and dense layers initialised from the teacher, the new U-Net conv block "
            "first fitted (1 epoch, MSE) to the teacher's conv-block output, then everything fine-tuned"
        )
    return how


def make_card(
    *,
    name: str,
    arch: str,
    model,
    how_trained: str,
    teacher: Teacher | None,
    corpus: Corpus,
    recipe: CorpusRecipe,
    speech: SpeechData,
    history: dict,
    epochs_planned: int,
    conv_losses: list,
    started: float,
    results: dict,
    teacher_results: dict,
    confusion_png: Path | None,
    command: str,
) -> dict:
    """The model card (wall times of earlier runs are added by `write_card`)."""
    fsdd = speech.fsdd_train or speech.fsdd_heldout
    return {
        "name": name,
        "architecture": arch,
        "parameters": int(model.count_params()),
        "input": "float32 waveform (batch, 16000), 16 kHz, 1 s",
        "classes": list(speech_models.SOURCE_CLASSES),
        "how_trained": how_trained,
        "teacher": None
        if teacher is None
        else {"path": teacher.info.path, "sha256": teacher.info.sha256, "original": teacher.info.original},
        "corpus": {
            "composition": corpus.composition,
            "augmented_copies": {"gsc": recipe.copies_gsc, "tts": recipe.copies_tts},
            "split_notes": speech.split.notes,
            **corpus.speakers,
            "fsdd_heldout_speakers": sorted(speech.fsdd_holdout) if fsdd else [],
            "train_eval_speakers_disjoint": True,
        },  # speech_split.load_speech refuses a shared speaker
        "voices": [v["id"] for v in corpus.voices],
        "epochs": history["epochs_run"],
        "epochs_planned": epochs_planned,
        "history": history,
        "conv_block_fit_mse": conv_losses,
        "wall_time_seconds": round(time.time() - started, 1),  # this run (see wall_time_seconds_all_runs)
        "training_seconds": round(history["seconds"], 1),
        "accuracy": {k: public(v) for k, v in results.items()},
        "teacher_accuracy_same_clips": teacher_results,
        "confusion_png": None if confusion_png is None else str(confusion_png),
        "command": command,
        "seed": recipe.seed,
        "versions": utils.versions(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_card(card: dict, path: Path, ckpt_dir: Path, started: float) -> None:
    """Add this run's wall time to those of the earlier (interrupted) runs in ckpt_dir/wall.json, write the card."""
    wall_path = Path(ckpt_dir) / "wall.json"
    earlier = json.loads(wall_path.read_text()) if wall_path.is_file() else []
    runs = earlier + [round(time.time() - started, 1)]
    utils.atomic_write_json(wall_path, runs)
    card["wall_time_seconds_per_run"] = runs  # a resumed run adds one entry
    card["wall_time_seconds_all_runs"] = round(sum(runs), 1)
    utils.atomic_write_json(path, card)


def result_lines(results: dict) -> list[str]:
    """One line per non-empty held-out set: clips, speakers, accuracy_36, core10 clips, accuracy_core10."""
    return [
        f"{key}: clips={r['n']} speakers={r['speakers']} accuracy_36={r['accuracy_36']:.4f} "
        f"core10_clips={r['n_core10']} accuracy_core10={r['accuracy_core10']:.4f}"
        for key, r in results.items()
        if r["n"]
    ]
