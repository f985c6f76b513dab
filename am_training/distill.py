"""Distil a student acoustic model from the original V2Sa: the teacher, features, the training loop."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

import speech_models
import utils
from am_training.corpus import is_none
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


@dataclass
class Teacher:
    """The original V2Sa, frozen: `model` on waveforms (batch, 16000), `body` (the same weights) on
    standardised log-mel (batch, 125, 80, 1); both give (batch, 36) probabilities."""

    model: keras.Model
    body: keras.Model
    info: speech_models.AMInfo

    def on(self, kind: str) -> keras.Model:
        """The teacher for a student's input kind: "wave" -> `model`, "mel" -> `body`."""
        return self.model if kind == "wave" else self.body


def load_teacher(path: str | None) -> Teacher | None:
    """The V2Sa at `path` (None: speech_models' search for the original), or None for 'none'.

    Raises V2SError if only the locally trained fallback is found: it is no teacher.
    """
    if path is not None and is_none(path):
        return None
    model, info = speech_models.load_am("v2sa", path)
    if info.source == "local_fallback":
        raise V2SError("no original V2Sa found to distil from (only the local fallback): pass --teacher PATH or 'none'")
    body = speech_models.build_body("v2sa")
    speech_models.copy_weights_by_name(model, body)
    model.trainable = False
    body.trainable = False
    return Teacher(model, body, info)


def make_student(arch: str, waves, key_dir: Path) -> tuple[keras.Model, np.ndarray, str]:
    """The model to train, its inputs and their kind: cnn1d on waveforms ("wave"); the V2Sa/V2Su
    bodies on the corpus' cached log-mel features ("mel")."""
    if arch == "cnn1d":
        return speech_models.build_am("cnn1d"), waves, "wave"
    return speech_models.build_body(arch), mel_features(waves, key_dir), "mel"


def waveform_model(student: keras.Model, arch: str) -> keras.Model:
    """The full AM (waveform in) holding the trained student's weights."""
    if arch == "cnn1d":
        return student
    model = speech_models.build_am(arch)
    speech_models.copy_weights_by_name(student, model)
    return model


# ----------------------------------------------------------------------------------------------
# Distillation


def make_augment(kind: str, mix_prob: float):
    """A tf function (x) -> (x', mixed): time shift, masks (mel), mixup of a `mix_prob` share of the batch."""
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
            ckpt_dir: Path, max_minutes: float, seed: int, val_idx=None) -> dict:  # fmt: skip
    """Train `student` on KL(teacher || student) at `temperature` plus `alpha` x cross-entropy on hard labels.

    Inputs are augmented on the fly (`make_augment`) and the teacher labels each augmented batch;
    mixed examples get no hard-label loss. Without a teacher: cross-entropy on hard labels only.
    A checkpoint is written after every epoch to `ckpt_dir` and resumed.

    Returns:
        a history dict: per-epoch loss and teacher agreement on `val_idx`, epochs run, seconds.
    """
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
    shared = {layer.name for layer in student_body.layers if layer.weights
              and not layer.name.startswith(("conv2d", "batch_normalization"))}  # fmt: skip
    copied = speech_models.copy_weights_by_name(teacher_body, student_body, layers=shared)
    print(f"initialised from the teacher: {', '.join(copied)}", flush=True)
    return fit_conv_block(student_body, teacher_body, feats, epochs=1, batch_size=batch_size)
