"""Distil a student acoustic model from the original V2Sa, the Keras way (cf. keras-io's knowledge_distillation).

    distiller = Distiller(student, teacher.on(kind), kind=kind, temperature=2.0, alpha=0.5, mix_prob=0.3)
    distiller.compile(optimizer=keras.optimizers.Adam(...))
    distiller.fit(ShuffledBatches(x, hard, index, batch_size, seed), epochs=..., callbacks=[...])

`distill` runs it as `pretrain_am.py` does: resumable (`keras.callbacks.BackupAndRestore`), a CSV
history (`keras.callbacks.CSVLogger`), progress lines (`Progress`), the teacher agreement on held-back
corpus clips (`TeacherAgreement`) and a wall-time budget (`TimeLimit`). Students and teachers output
probabilities (softmax), as the AMs do.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import am_weights
import speech_models
import utils
from am_training.speech_split import is_none
from speech_models import N_FRAMES, N_MELS
from utils import WAVE_LEN, V2SError

# ----------------------------------------------------------------------------------------------
# Features and the teacher


def front_end_model() -> keras.Model:
    """The AMs' weightless front end: waveform (batch, 16000) -> standardised log-mel (batch, 125, 80, 1)."""
    wave = keras.Input((WAVE_LEN,), dtype="float32")
    return keras.Model(wave, speech_models.mel_front_end(wave), name="front_end")


def batched(fn, x, batch_size: int, desc: str | None = None) -> np.ndarray:
    """`fn` applied to `x` (an array, possibly memory-mapped) in float32 batches, concatenated."""
    outs = []
    for start in tqdm(
        range(0, len(x), batch_size), desc=desc, file=sys.stderr, mininterval=10, disable=None if desc else True
    ):
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


@dataclass
class Teacher:
    """The original V2Sa, frozen: `model` on waveforms (batch, 16000), `body` (the same weights) on
    standardised log-mel (batch, 125, 80, 1); both give (batch, 36) probabilities."""

    model: keras.Model
    body: keras.Model
    info: am_weights.AMInfo

    def on(self, kind: str) -> keras.Model:
        """The teacher for a student's input kind: "wave" -> `model`, "mel" -> `body`."""
        return self.model if kind == "wave" else self.body


def load_teacher(path: str | None) -> Teacher | None:
    """The V2Sa at `path` (None: am_weights' search for the original), or None for 'none'.

    Raises V2SError if only the locally trained fallback is found: it is no teacher.
    """
    if path is not None and is_none(path):
        return None
    model, info = am_weights.load_am("v2sa", path)
    if info.source == "local_fallback":
        raise V2SError("no original V2Sa found to distil from (only the local fallback): pass --teacher PATH or 'none'")
    body = speech_models.build_body("v2sa")
    speech_models.copy_weights_by_name(model, body)
    model.trainable = False
    body.trainable = False
    return Teacher(model, body, info)


def make_student(arch: str, waves, key_dir: Path) -> tuple[keras.Model, np.ndarray, str]:
    """The model to train, its inputs and their kind: cnn1d/cnn1d_small on waveforms ("wave"); the
    V2Sa/V2Su bodies on the corpus' cached log-mel features ("mel")."""
    if arch in speech_models.WAVEFORM_NETS:
        return speech_models.build_am(arch), waves, "wave"
    return speech_models.build_body(arch), mel_features(waves, key_dir), "mel"


def waveform_model(student: keras.Model, arch: str) -> keras.Model:
    """The full AM (waveform in) holding the trained student's weights."""
    if arch in speech_models.WAVEFORM_NETS:
        return student
    model = speech_models.build_am(arch)
    speech_models.copy_weights_by_name(student, model)
    return model


# ----------------------------------------------------------------------------------------------
# The distiller

_standardise = speech_models.PerExampleStandardize(epsilon=1e-6)


def augment_batch(x, kind: str, mix_prob: float, seed):
    """A random circular time shift, SpecAugment-style masks ("mel" only) and mixup of a `mix_prob` share.

    Args:
        x: (B, 125, 80, 1) standardised log-mel ("mel", re-standardised after mixing) or (B, 16000) waveforms.
        seed: (2,) int tensor; the same seed gives the same augmentation (stateless random ops).
    Returns:
        x' (the shape of x) and `mixed` (B,) bool: the examples mixed with another (lambda in [0.4, 0.8]).
    """
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 8))
    n = tf.shape(x)[0]
    length, max_shift = (N_FRAMES, 10) if kind == "mel" else (WAVE_LEN, 1600)
    shift = tf.random.stateless_uniform([n], seeds[0], -max_shift, max_shift + 1, tf.int32)
    x = tf.gather(x, tf.math.floormod(tf.range(length)[None, :] - shift[:, None], length), batch_dims=1)
    if kind == "mel":

        def band(size, width, lo_seed, width_seed):  # (n, size) bool: a random band of 0..width rows
            lo = tf.random.stateless_uniform([n, 1], lo_seed, 0, size, tf.int32)
            w = tf.random.stateless_uniform([n, 1], width_seed, 0, width + 1, tf.int32)
            r = tf.range(size)[None, :]
            return (r >= lo) & (r < lo + w)

        mask = band(N_FRAMES, 15, seeds[1], seeds[2])[:, :, None] | band(N_MELS, 10, seeds[3], seeds[4])[:, None, :]
        x = tf.where(mask[..., None], tf.zeros_like(x), x)
    mixed = tf.random.stateless_uniform([n], seeds[5]) < mix_prob
    lam = tf.where(mixed, tf.random.stateless_uniform([n], seeds[6], 0.4, 0.8), tf.ones([n]))
    lam = tf.reshape(lam, [-1] + [1] * (len(x.shape) - 1))
    partner = tf.argsort(tf.random.stateless_uniform([n], seeds[7]))  # a random permutation
    x = lam * x + (1.0 - lam) * tf.gather(x, partner)
    return (_standardise(x) if kind == "mel" else x), mixed


def hard_label_ce(log_probs, labels, use):
    """Mean -log p(label) over the examples where `use` is 1 (labels < 0 are clipped; mask them out)."""
    picked = tf.gather(log_probs, tf.maximum(labels, 0), batch_dims=1)
    return -tf.reduce_sum(picked * use) / tf.maximum(tf.reduce_sum(use), 1.0)


def kd_loss(teacher_probs, student_log_probs, temperature: float):
    """T² · mean KL(softmax(log p_t / T) || softmax(log p_s / T)), Hinton et al.'s distillation loss."""
    soft_t = tf.nn.softmax(tf.math.log(teacher_probs + 1e-7) / temperature)
    log_soft_s = tf.nn.log_softmax(student_log_probs / temperature)
    kl = tf.reduce_sum(soft_t * (tf.math.log(soft_t + 1e-9) - log_soft_s), axis=1)
    return temperature**2 * tf.reduce_mean(kl)


class Distiller(keras.Model):
    """Trains `student` on `kd_loss` (teacher at `temperature`) + `alpha` x `hard_label_ce`.

    Each training batch is augmented (`augment_batch`, seeded by `seed` and the optimizer's step, so a
    resumed `fit` draws what an uninterrupted one would) and labelled by the frozen teacher. Examples
    with no hard label (< 0) or mixed with another get no cross-entropy. Without a teacher: the
    cross-entropy on hard labels only, and no mixup. Metrics: loss, kd, ce (epoch means).
    """

    def __init__(
        self,
        student,
        teacher=None,
        *,
        kind: str,
        temperature: float = 2.0,
        alpha: float = 0.5,
        mix_prob: float = 0.3,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.student = student
        self.teacher = teacher
        self.kind = kind
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.mix_prob = float(mix_prob) if teacher is not None else 0.0
        self.seed = int(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.kd_tracker = keras.metrics.Mean(name="kd")
        self.ce_tracker = keras.metrics.Mean(name="ce")
        self.build(student.input_shape)

    def build(self, input_shape=None):
        self.built = True  # the student and the teacher are built models

    @property
    def metrics(self):
        return [self.loss_tracker, self.kd_tracker, self.ce_tracker]

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, labels = data
        seed = tf.stack([tf.constant(self.seed, tf.int64), tf.cast(self.optimizer.iterations, tf.int64)])
        x, mixed = augment_batch(x, self.kind, self.mix_prob, seed)
        use = tf.cast((labels >= 0) & ~mixed, tf.float32)
        teacher_probs = None if self.teacher is None else self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            log_probs = tf.math.log(self.student(x, training=True) + 1e-7)
            ce = hard_label_ce(log_probs, labels, use)
            kd = tf.constant(0.0) if teacher_probs is None else kd_loss(teacher_probs, log_probs, self.temperature)
            loss = ce if teacher_probs is None else kd + self.alpha * ce
        grads = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        for tracker, value in zip(self.metrics, (loss, kd, ce)):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}


class ShuffledBatches(keras.utils.PyDataset):
    """Batches (x[rows] float32, y[rows] int32) of the rows `index`, the last partial batch dropped.

    The order of epoch e is a permutation seeded by (seed, e), set by `set_epoch(e)` (`EpochOrder`
    calls it), so a resumed fit sees the batches an uninterrupted one would; pass `shuffle=False` to
    `fit` (else Keras also permutes the batches). Each batch's rows are sorted (a memory-mapped x is
    read in order).
    """

    def __init__(self, x, y, index, batch_size: int, seed: int):
        super().__init__()
        self.x, self.y, self.index = x, y, np.asarray(index)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.set_epoch(0)

    def __len__(self):
        return max(1, len(self.index) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.order = np.random.default_rng([self.seed, epoch]).permutation(self.index)

    def __getitem__(self, i):
        rows = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
        return np.asarray(self.x[rows], np.float32), np.asarray(self.y[rows]).astype(np.int32)


# ----------------------------------------------------------------------------------------------
# Callbacks


class EpochOrder(keras.callbacks.Callback):
    """Sets the epoch of a `ShuffledBatches` before each epoch's batches are drawn."""

    def __init__(self, batches: ShuffledBatches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class TimeLimit(keras.callbacks.Callback):
    """Stops `fit` after the first epoch that ends more than `minutes` after training began (0: no limit)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.minutes = minutes

    def on_train_begin(self, logs=None):
        self.started = time.time()

    def on_epoch_end(self, epoch, logs=None):
        if self.minutes and time.time() - self.started > 60 * self.minutes and epoch + 1 < self.params["epochs"]:
            print(f"stopping after epoch {epoch + 1}: --max-minutes {self.minutes} reached", flush=True)
            self.model.stop_training = True


class TeacherAgreement(keras.callbacks.Callback):
    """Adds `val_agreement` to each epoch's logs: the share of `x` where the student's argmax equals
    `teacher_labels` (nan without them)."""

    def __init__(self, student, x, teacher_labels):
        super().__init__()
        self.student, self.x, self.teacher_labels = student, x, teacher_labels

    def on_epoch_end(self, epoch, logs=None):
        agreement = float("nan")
        if self.teacher_labels is not None:
            pred = np.argmax(batched(lambda b: self.student(b, training=False), self.x, 128), axis=1)
            agreement = float(np.mean(pred == self.teacher_labels))
        logs["val_agreement"] = agreement


class Progress(keras.callbacks.Callback):
    """Prints the running loss ten times an epoch and a line per epoch; adds `epoch_seconds` to the logs."""

    def __init__(self, batch_size: int):
        super().__init__()
        self.batch_size = batch_size

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.t0 = epoch + 1, time.time()

    def on_train_batch_end(self, batch, logs=None):
        steps = self.params["steps"]
        if (batch + 1) % max(1, steps // 10) == 0:
            rate = (batch + 1) * self.batch_size / (time.time() - self.t0)
            print(
                f"  epoch {self.epoch} step {batch + 1}/{steps} loss {float(logs['loss']):.4f} ({rate:.0f} samples/s)",
                flush=True,
            )

    def on_epoch_end(self, epoch, logs=None):
        logs["epoch_seconds"] = seconds = time.time() - self.t0
        print(
            f"epoch {epoch + 1}/{self.params['epochs']} loss {logs['loss']:.4f} kd {logs['kd']:.4f} "
            f"ce {logs['ce']:.4f} teacher_agreement {logs.get('val_agreement', float('nan')):.4f} ({seconds:.0f} s)",
            flush=True,
        )


def completed_epochs(backup_dir: Path) -> int:
    """Epochs a `BackupAndRestore(backup_dir)` has saved (0 if none)."""
    path = Path(backup_dir) / "training_metadata.json"
    return int(json.loads(path.read_text())["epoch"]) if path.is_file() else 0


def read_history(csv_path: Path, epochs: int) -> dict:
    """{metric: [value per epoch]} of the first `epochs` epochs of a `CSVLogger` file (append mode: an
    epoch repeated after an interruption keeps its last row)."""
    rows = {}
    if Path(csv_path).is_file():
        with open(csv_path, newline="") as fh:
            for row in csv.DictReader(fh):
                rows[int(row.pop("epoch"))] = {k: float(v) for k, v in row.items()}
    keys = ("loss", "kd", "ce", "val_agreement", "epoch_seconds")
    return {k: [rows[e][k] for e in range(epochs) if e in rows] for k in keys}


# ----------------------------------------------------------------------------------------------
# Training


def distill(
    student,
    teacher,
    x,
    hard,
    *,
    epochs,
    batch_size,
    lr,
    temperature,
    alpha,
    mix_prob,
    kind,
    ckpt_dir: Path,
    max_minutes: float,
    seed: int,
    val_idx=None,
) -> dict:
    """Train `student` as a `Distiller` for `epochs` (in all, counting a resumed run's), see the module docstring.

    Adam (clipnorm 5) with a cosine decay from `lr` to 0.05 x `lr`. Without a teacher only the
    hard-labelled rows train. `val_idx` rows never train; the teacher agreement is measured on them.
    The state after each epoch is kept in ckpt_dir/backup (resumed from there), the per-epoch
    history in ckpt_dir/history.csv.

    Returns:
        the history: per-epoch loss, kd, ce, val_agreement and epoch_seconds, epochs_run, seconds.
    """
    ckpt_dir = Path(ckpt_dir)
    labelled = np.flatnonzero(hard >= 0) if teacher is None else np.arange(len(x))
    batches = ShuffledBatches(x, hard, np.setdiff1d(labelled, val_idx if val_idx is not None else []), batch_size, seed)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=len(batches) * epochs, alpha=0.05)
    distiller = Distiller(
        student, teacher, kind=kind, temperature=temperature, alpha=alpha, mix_prob=mix_prob, seed=seed
    )
    distiller.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0), jit_compile=False)
    backup = ckpt_dir / "backup"
    if completed_epochs(backup):
        print(f"resumed from {backup} (epoch {completed_epochs(backup)})", flush=True)
    x_val, teacher_labels = None, None
    if val_idx is not None and len(val_idx) and teacher is not None:
        x_val = x[val_idx]
        teacher_labels = np.argmax(batched(lambda b: teacher(b, training=False), x_val, 128), axis=1)
    callbacks = [
        EpochOrder(batches),
        TeacherAgreement(student, x_val, teacher_labels),
        Progress(batch_size),
        TimeLimit(max_minutes),
        keras.callbacks.CSVLogger(str(ckpt_dir / "history.csv"), append=True),
        keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False),
    ]  # saves last: after the CSV row
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    distiller.fit(batches, epochs=epochs, verbose=0, callbacks=callbacks, shuffle=False)  # ShuffledBatches shuffles
    done = completed_epochs(backup)
    history = read_history(ckpt_dir / "history.csv", done)
    history["epochs_run"] = done
    history["seconds"] = float(sum(history["epoch_seconds"]))
    return history


def recalibrate_batchnorm(model, x, n: int, seed: int) -> None:
    """Set every BatchNorm's moving mean/variance to the statistics of `n` clean (unaugmented) examples.

    One forward pass in training mode with momentum 0: each layer then holds exactly the batch
    statistics, so inference on clean inputs normalises as training did. (Statistics tracked on the
    augmented, mixed batches during training fit clean inputs badly: the model card's
    history.batchnorm_recalibration gives the teacher agreement before and after.)
    """
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
    """Share of the rows `idx` of x where the student's argmax equals the teacher's (nan without a teacher)."""
    if teacher is None or idx is None or not len(idx):
        return float("nan")
    xs = x[np.sort(idx)]
    want = np.argmax(batched(lambda b: teacher(b, training=False), xs, 128), axis=1)
    got = np.argmax(batched(lambda b: student(b, training=False), xs, 128), axis=1)
    return float(np.mean(got == want))


def fit_conv_block(student_body, teacher_body, feats, *, epochs: int, batch_size: int) -> list[float]:
    """v2su stage 1: fit the new conv block's output (`batch_normalization_1`) to the teacher's (MSE)."""
    source = keras.Model(student_body.input, student_body.get_layer("batch_normalization_1").output)
    target = keras.Model(teacher_body.input, teacher_body.get_layer("batch_normalization_1").output)
    y = batched(lambda b: target(b, training=False), feats, 128, "teacher conv features")
    source.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    hist = source.fit(feats, y, batch_size=batch_size, epochs=epochs, verbose=2, shuffle=True)
    return [float(v) for v in hist.history["loss"]]


def init_from_teacher(student_body, teacher_body, feats, *, batch_size: int) -> list[float]:
    """v2su: copy the layers shared with V2Sa (BiLSTMs, attention, dense) from the teacher, then fit the
    new conv block to the teacher's (1 epoch). Returns the conv block's MSE per epoch."""
    shared = {
        layer.name
        for layer in student_body.layers
        if layer.weights and not layer.name.startswith(("conv2d", "batch_normalization"))
    }
    copied = speech_models.copy_weights_by_name(teacher_body, student_body, layers=shared)
    print(f"initialised from the teacher: {', '.join(copied)}", flush=True)
    return fit_conv_block(student_body, teacher_body, feats, epochs=1, batch_size=batch_size)
