"""Train a source acoustic model here (v2sa_local, v2su, cnn1d, cnn1d_small), or evaluate one on a folder.

Train (distilled from the original V2Sa when it is available, see docs/acoustic_models.md):
    python pretrain_am.py --net v2sa_local [--corpus-dir DIR ...] [--fsdd-dir DIR] [--noise-dir DIR]
                          [--tts | --no-tts] [--teacher PATH|none] [--epochs N] [--out weight/]
    python pretrain_am.py --net v2su    (3)       python pretrain_am.py --net cnn1d    (5)
    python pretrain_am.py --net cnn1d_small (6)

Evaluate:
    python pretrain_am.py --eval-dir DIR --net 0 [--am-weights PATH] [--batch-size 64]

DIR/<word>/*.wav for the 35 words of `speech_models.SOURCE_CLASSES` and DIR/_unknown_/*.wav
(scored as class 0); other entries (e.g. `_background_noise_`) are skipped and counted.
Evaluation prints per-word results, then as its last two lines `accuracy_36=<fraction>` and
`accuracy_core10=<fraction>` (clips of the 10 core-word folders, right when the 36-way argmax is
that word). Training writes <out>/<name>.weights.h5, the model card <out>/<name>.json and
results/am_<name>_confusion.png, and prints the held-out accuracies last.

The work is done by `am_training` (speech_split, corpus, distill, card); this file is the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import utils
import validation
from utils import V2SError

SHARED_DIR = Path(os.environ.get("V2S_SHARED_DIR", utils.PROJECT_DIR.parent / "shared"))
TRAINABLE = ("v2sa_local", "v2su", "cnn1d", "cnn1d_small")
DEFAULTS = {  # per model: epochs, learning rate
    "v2sa_local": {"epochs": 8, "lr": 2e-3},
    "v2su": {"epochs": 3, "lr": 5e-4},
    "cnn1d": {"epochs": 4, "lr": 1e-3},
    "cnn1d_small": {"epochs": 20, "lr": 2e-3},
}
VAL_SHARE = 40  # 1/40 of the corpus is held back from training to measure the teacher agreement
BN_EXAMPLES = {"cnn1d": 128}  # clean examples for the BatchNorm recalibration (default 1024)


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Train a model with --net v2sa_local|v2su|cnn1d|cnn1d_small; evaluate with --eval-dir. "
        "Paths under ../shared are the defaults of this workplace; pass 'none' to leave a source out.",
    )
    parser.add_argument(
        "--net",
        default="0",
        help="evaluation: 0/v2sa, 3/v2su, 5/cnn1d, 6/cnn1d_small; training: v2sa_local (V2Sa trained here, "
        "the offline fallback of --net 0), v2su (3), cnn1d (5) or cnn1d_small (6)",
    )
    parser.add_argument("--eval-dir", help="only evaluate: a Speech-Commands-layout folder to score")
    parser.add_argument("--am-weights", help="evaluation: weights file (default: the usual search, see am_weights)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips per batch (evaluation and training)")
    train = parser.add_argument_group("training")
    train.add_argument(
        "--corpus-dir",
        action="append",
        default=None,
        help="Speech-Commands-layout folder(s) of real speech, repeatable (default ../shared/speech/gsc). "
        "Clips in testing_list.txt (or, for ../shared, the v0.02 TEST rows of SOURCES.tsv) are "
        "evaluation only, and so are all clips of their speakers",
    )
    train.add_argument(
        "--fsdd-dir",
        default=str(SHARED_DIR / "speech" / "fsdd"),
        help="Free Spoken Digit Dataset recordings (<digit>_<speaker>_<n>.wav, 8 kHz, resampled); 'none' to skip",
    )
    train.add_argument(
        "--fsdd-holdout", default="nicolas", help="comma-separated FSDD speakers kept out of training and scored"
    )
    train.add_argument(
        "--noise-dir",
        default=str(SHARED_DIR / "noise"),
        help="background-noise WAVs: mixed into speech and cut into class-0 (silence/unknown) clips; 'none' to skip",
    )
    train.add_argument(
        "--ucr-dir",
        default=str(SHARED_DIR / "ucr"),
        help="UCR <Name>/<Name>_TRAIN.tsv files (TEST files are never read): V2S-like inputs, tiled "
        "series + random programs, labelled by the teacher only; 'none' to skip",
    )
    train.add_argument(
        "--tts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="synthesise the 35 words with the installed offline TTS voices (espeak-ng variants, flite)",
    )
    train.add_argument(
        "--espeak-voices",
        type=int,
        default=90,
        help="espeak-ng voice configurations (accent x variant x speed x pitch) drawn at random",
    )
    train.add_argument(
        "--teacher",
        default=None,
        help="weights of the teacher V2Sa (default: am_weights' search for the original "
        "model-attRNN.h5); 'none' trains on hard labels only",
    )
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default per model: v2sa_local 8, v2su 3, cnn1d 4, cnn1d_small 20)",
    )
    train.add_argument(
        "--lr", type=float, default=None, help="Adam's peak learning rate, cosine decay (default per model)"
    )
    train.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    train.add_argument(
        "--alpha", type=float, default=0.5, help="weight of the hard-label cross-entropy beside the distillation loss"
    )
    train.add_argument(
        "--mix-prob",
        type=float,
        default=0.3,
        help="fraction of each batch mixed with another example (teacher labels only)",
    )
    train.add_argument(
        "--copies-gsc", type=int, default=8, help="augmented copies of each real Speech-Commands training clip"
    )
    train.add_argument("--copies-tts", type=int, default=2, help="augmented copies of each TTS clip")
    train.add_argument("--n-noise", type=int, default=1500, help="class-0 clips cut from the noise files")
    train.add_argument("--n-ucr", type=int, default=3000, help="V2S-like inputs from UCR TRAIN series")
    train.add_argument(
        "--max-clips", type=int, default=0, help="cap on the augmented corpus (0 = no cap), e.g. for cnn1d's compute"
    )
    train.add_argument(
        "--max-minutes",
        type=float,
        default=0,
        help="stop training after the epoch that passes this wall time (0 = none)",
    )
    train.add_argument(
        "--init-from-teacher",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="v2su: start the layers shared with V2Sa (BiLSTMs, attention, dense) from the teacher and "
        "fit the new conv block to the teacher's first (default on for v2su, off otherwise)",
    )
    train.add_argument(
        "--out", default=str(utils.PROJECT_DIR / "weight"), help="where <name>.weights.h5 and <name>.json go"
    )
    train.add_argument(
        "--results-dir", default=str(utils.PROJECT_DIR / "results"), help="where the confusion-matrix PNG goes"
    )
    train.add_argument(
        "--cache-dir",
        default=os.environ.get("V2S_CACHE_DIR", str(Path(tempfile.gettempdir()) / "v2s_cache")),
        help="corpus, feature and checkpoint cache (exact: the front end has no weights)",
    )
    train.add_argument(
        "--fresh", action="store_true", help="ignore a checkpoint of an interrupted run (default: resume it)"
    )
    train.add_argument("--seed", type=int, default=0, help="seeds the corpus, augmentation, split and initialisation")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
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
    if args.eval_dir:
        validation.net_name(args.net)  # an AM to score
    else:
        training_name(args.net)  # a model to train
    return args


def training_name(net: str) -> str:
    """The model trained for a `--net` value: v2sa_local (also for 0/v2sa), v2su (3), cnn1d (5),
    cnn1d_small (6)."""
    key = str(net).strip().lower()
    if key in TRAINABLE:
        return key
    name = validation.net_name(key)
    return "v2sa_local" if name == "v2sa" else name


def arch_of(name: str) -> str:
    """The architecture of a trained model: v2sa for v2sa_local, else the name itself."""
    return "v2sa" if name == "v2sa_local" else name


# ----------------------------------------------------------------------------------------------
# Training: speech and corpus, student, distillation, card


def train_model(args) -> dict:
    """Build the corpus, distil/train one model, evaluate on held-out real speakers, write weights + card."""
    started = time.time()
    utils.setup_tensorflow(seed=args.seed)
    import keras

    from am_training import card, corpus, distill, speech_split  # after TensorFlow's environment is set

    name = training_name(args.net)
    arch = arch_of(name)
    epochs = args.epochs or DEFAULTS[name]["epochs"]
    lr = args.lr or DEFAULTS[name]["lr"]
    init_from_teacher = args.init_from_teacher if args.init_from_teacher is not None else name == "v2su"
    print(f"training {name} ({arch} architecture), {epochs} epochs, lr {lr}", flush=True)

    corpus_dirs = args.corpus_dir if args.corpus_dir is not None else [str(SHARED_DIR / "speech" / "gsc")]
    fsdd_holdout = {s.strip() for s in args.fsdd_holdout.split(",") if s.strip()}
    speech = speech_split.load_speech(
        [d for d in corpus_dirs if not speech_split.is_none(d)], args.fsdd_dir, fsdd_holdout, args.seed
    )
    teacher = distill.load_teacher(args.teacher)
    if teacher is not None:
        print(f"teacher: {teacher.info.path} (original={teacher.info.original})", flush=True)
    if init_from_teacher and (teacher is None or arch != "v2su"):
        raise V2SError("--init-from-teacher needs --net v2su and a teacher")
    recipe = corpus.CorpusRecipe.from_args(args)
    data, key_dir = corpus.load_or_build_corpus(
        recipe, speech.split, speech.fsdd_train, np.random.default_rng(args.seed), args.cache_dir
    )
    print(f"corpus composition: {data.composition}", flush=True)

    keras.utils.set_random_seed(args.seed)
    student, x, kind = distill.make_student(arch, data.waves, key_dir)
    teacher_model = teacher.on(kind) if teacher else None
    ckpt_dir = Path(args.cache_dir) / "ckpt" / f"{name}_{key_dir.name}"
    if args.fresh and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    conv_losses = []
    if init_from_teacher:
        conv_fit = ckpt_dir / "conv_fit.json"
        if not distill.completed_epochs(ckpt_dir / "backup"):
            conv_losses = distill.init_from_teacher(student, teacher.body, x, batch_size=args.batch_size)
            utils.atomic_write_json(conv_fit, {"mse": conv_losses})
        elif conv_fit.is_file():
            conv_losses = json.loads(conv_fit.read_text())["mse"]
    val_idx = np.random.default_rng(args.seed + 1).permutation(len(x))[: max(1, len(x) // VAL_SHARE)]
    history = distill.distill(
        student,
        teacher_model,
        x,
        data.hard,
        epochs=epochs,
        batch_size=args.batch_size,
        lr=lr,
        temperature=args.temperature,
        alpha=args.alpha,
        mix_prob=args.mix_prob,
        kind=kind,
        ckpt_dir=ckpt_dir,
        max_minutes=args.max_minutes,
        seed=args.seed,
        val_idx=val_idx,
    )

    n_bn = BN_EXAMPLES.get(arch, 1024)
    before = distill.teacher_agreement(student, teacher_model, x, val_idx)
    distill.recalibrate_batchnorm(student, x, n_bn, args.seed + 2)
    after = distill.teacher_agreement(student, teacher_model, x, val_idx)
    history["batchnorm_recalibration"] = {
        "examples": n_bn,
        "teacher_agreement_before": before,
        "teacher_agreement_after": after,
    }
    print(
        f"BatchNorm statistics recalibrated on clean clips: teacher agreement {before:.4f} -> {after:.4f}", flush=True
    )

    model = distill.waveform_model(student, arch)
    results = card.score_heldout(model, speech)
    teacher_results = (
        {} if teacher is None else {k: card.public(v) for k, v in card.score_heldout(teacher.model, speech).items()}
    )
    out = Path(args.out)
    weights_path = out / f"{name}.weights.h5"
    utils.atomic_save(weights_path, lambda tmp: model.save_weights(tmp))
    how = card.describe_training(
        name,
        teacher,
        init_from_teacher,
        temperature=args.temperature,
        alpha=args.alpha,
        batch_size=args.batch_size,
        lr=lr,
    )
    model_card = card.make_card(
        name=name,
        arch=arch,
        model=model,
        how_trained=how,
        teacher=teacher,
        corpus=data,
        recipe=recipe,
        speech=speech,
        history=history,
        epochs_planned=epochs,
        conv_losses=conv_losses,
        started=started,
        results=results,
        teacher_results=teacher_results,
        confusion_png=card.plot_heldout_confusion(results, name, args.results_dir),
        command="python pretrain_am.py " + " ".join(sys.argv[1:]),
    )
    card.write_card(model_card, out / f"{name}.json", ckpt_dir, started)
    print(f"weights={weights_path}")
    print(f"card={out / f'{name}.json'}")
    for line in card.result_lines(results):
        print(line)
    return model_card


# ----------------------------------------------------------------------------------------------
# Evaluation


def evaluate(args) -> int:
    utils.setup_tensorflow()
    import am_weights
    import speech_data

    net = validation.net_name(args.net)
    speech_data.scan_folder(args.eval_dir)
    model, info = am_weights.load_am(net, args.am_weights)
    print(f"model {info.name}: {info.path} ({info.source}, sha256 {info.sha256[:12]}, original={info.original})")
    result = speech_data.predict_folder(model, args.eval_dir, batch_size=args.batch_size)
    for line in format_per_class(result["per_class"]):
        print(line)
    print(
        f"clips={len(result['labels'])} core10_clips={result['n_core10']} "
        f"skipped={len(result['skipped'])} ({', '.join(result['skipped']) or 'none'})"
    )
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
