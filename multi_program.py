"""Train many V2S programs at once on one dataset: P independent runs sharing one frozen-AM call per step.

P settings (seeds, dropouts, segment counts, label maps, masks, L2 weights) on the same data are
trained as one (P, 16000) program variable. Each step gathers one mini-batch per program (each with
its own seeded shuffling and tiling), runs the fast AM body (`fast_am.FastBody`) once on the P x B
reprogrammed series (an AM the fast body does not cover, e.g. the raw-waveform cnn1d_small, runs as
the plain Keras model on the P x B waveforms x + theta_p), and minimises the SUM of the P losses.
The programs do not interact: program p's loss depends only on theta_p, so the gradient w.r.t.
theta_p of the sum is that of loss_p, and Adam is element-wise (its moments, bias correction and the
inverse-time learning-rate decay lr/(1+decay*step) are per element, with the same step count as a
single run). So each program trains as its own run would, up to float32 rounding (the fast body's
operation order depends on the batch, e.g. which frames are active in any program's series), with the
per-step overhead shared. The mini-batch order (`default_rng([seed, epoch])`) and the dropout stream
(one generator for the stack) are the stack's own, not those of `training.run`. As in
`fast_am.FastV2S`, STFT(x + theta) = STFT(x) + STFT(theta) with one STFT per program per step.

Per program, as `training.run` does for one: loss = cross-entropy (Keras' sparse categorical
cross-entropy on the many-to-one target probabilities) + l2 * sum(theta**2); dropout on theta while
training only (`monitor_dropout_on` also scores with it, as the original code did); the epoch is chosen on the VALIDATION cross-entropy without the L2 term (the lowest, by
the single run's rule `fitting.is_better`), or the last epoch without validation data.

    results = train_programs(am, (x_fit, y_fit), (x_val, y_val), settings, epochs=100)
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

import fast_am
import fitting
import ts_model
import utils
from settings import DEFAULT_BATCH, DEFAULT_LR, DEFAULT_LR_DECAY, DEFAULT_PRECISION, ProgramSetting
from utils import WAVE_LEN


def as_setting(setting: ProgramSetting | dict) -> ProgramSetting:
    """A `ProgramSetting`, or one from a dict of its field names (`ProgramSetting.from_dict`)."""
    return setting if isinstance(setting, ProgramSetting) else ProgramSetting.from_dict(setting)


def resolve(setting: ProgramSetting | dict, n_classes: int) -> ProgramSetting:
    """The setting with its label map filled in: `groups` None becomes the maximal many-to-one map
    ("first" kind, `ts_model.many_to_one`) of `n_classes` targets."""
    setting = as_setting(setting)
    if setting.groups is not None:
        return setting
    return setting.replace(groups=ts_model.many_to_one(n_classes, None, "first", setting.seed)[1])


class ProgramStack:
    """P programs over one frozen AM: the variable, the per-program losses and one training step.

    Args:
        am: a source AM (weights loaded; it is not modified): V2Sa/V2Su through `fast_am.FastBody`, any
            other (batch, 16000) -> (batch, 36) model as it is.
        n_classes: K target classes (the same for every program).
        settings: one `ProgramSetting` (or dict of its fields) per program, each with its label map
            (`resolve`); `length` is the series length for masks.
    """

    def __init__(
        self,
        am,
        n_classes: int,
        settings: list[ProgramSetting | dict],
        length: int,
        lr: float = DEFAULT_LR,
        lr_decay: float = DEFAULT_LR_DECAY,
        options: dict | None = None,
    ):
        settings = [as_setting(s) for s in settings]
        if any(s.groups is None for s in settings):
            raise ValueError("every program of a stack needs its label map: resolve(setting, n_classes) first")
        if any(len(s.groups) != n_classes for s in settings):
            raise ValueError(f"every program's label map must have {n_classes} target classes")
        self.settings = settings
        self.P = len(settings)
        self.am = am
        self.body = fast_am.FastBody(am, **(options or {})) if fast_am.is_supported(am) else None
        if self.body is None and (options or {}).get("precision", DEFAULT_PRECISION) != DEFAULT_PRECISION:
            raise ValueError(f"precision {options['precision']}: only the fast path (a mel AM) computes it")
        init = [keras.initializers.GlorotUniform(seed=s.seed)((WAVE_LEN, 1)) for s in settings]
        self.theta = tf.Variable(tf.concat([tf.reshape(t, (1, WAVE_LEN)) for t in init], 0), name="programs")
        self.maps = tf.constant(np.stack([ts_model.mapping_matrix(s.groups) for s in settings]))  # (P, 36, K)
        masks = [
            ts_model.program_mask(length, s.seg, s.offset) if s.mask else np.ones(WAVE_LEN, np.float32)
            for s in settings
        ]
        self.masks = tf.constant(np.stack(masks))
        self.rates = tf.constant([float(s.dropout) for s in settings], tf.float32)
        self.l2 = tf.constant([float(s.l2) for s in settings], tf.float32)
        self.rng = tf.random.Generator.from_seed(int(settings[0].seed) * 7919 + self.P)
        # scoring with dropout (the original code's ARTLayer): its own stream, so training never sees it
        self.scoring_rng = tf.random.Generator.from_seed(int(settings[0].seed) * 7919 + self.P + 104729)
        self.optimizer = fitting.make_optimizer(lr, lr_decay)  # as a single run's (training.compile_model)
        self.optimizer.build([self.theta])
        self.train_step = tf.function(self._train_step)
        self.evaluate_batch = tf.function(self._evaluate_batch)
        self.evaluate_batch_dropout = tf.function(self._evaluate_batch_dropout)

    def programs(self, training: bool, rng=None):
        """M * dropout(theta) per program, (P, 16000); dropout (inverted, rate per program) in training, from
        the stack's stream, or when scoring if a generator `rng` is given (the original code's dropout at
        inference)."""
        theta = self.theta
        rng = self.rng if training else rng
        if rng is not None:
            keep = rng.uniform((self.P, WAVE_LEN)) >= self.rates[:, None]
            theta = tf.where(keep, theta / (1.0 - self.rates[:, None]), 0.0)
        return theta * self.masks

    def losses(self, x, y, training: bool, rng=None):
        """x (P, b, 16000) tiled series, y (P, b) labels -> (loss (P,), ce (P,), target probabilities (P, b, K)).

        loss = mean cross-entropy + l2 * sum(theta**2), per program; `rng`: see `programs`."""
        probs = self._source_probs(x, training, rng)
        target = tf.einsum("pbs,psk->pbk", probs, self.maps)
        ce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, target), axis=1)
        return ce + self.l2 * tf.reduce_sum(tf.square(self.theta), axis=1), ce, target

    def _source_probs(self, x, training: bool, rng=None):
        """x (P, b, 16000) tiled series -> the AM's (P, b, 36) softmax on each program's x + theta_p."""
        if self.body is None:
            reprogrammed = tf.reshape(x + self.programs(training, rng)[:, None], (-1, WAVE_LEN))
            return tf.reshape(self.am(reprogrammed, training=False), (self.P, tf.shape(x)[1], -1))
        mel = self.body.reprogrammed_mel(x, self.programs(training, rng))  # (P, b, 125, 80)
        shape = tf.shape(mel)
        probs = self.body.probs_from_mel(tf.reshape(mel, tf.concat([[-1], shape[2:]], 0)), training)
        return tf.reshape(probs, (self.P, shape[1], -1))

    def _gradient(self, x, y, training: bool):
        """`losses` and the gradient of the summed loss w.r.t. the (P, 16000) programs (per program, that of
        its own loss: the programs do not interact)."""
        with tf.GradientTape() as tape:
            loss, ce, target = self.losses(x, y, training)
            total = tf.reduce_sum(loss)
        return loss, ce, target, tape.gradient(total, self.theta)

    def loss_and_gradient(self, x, y, training: bool = True):
        """Per-program losses (P,) and their gradient w.r.t. the programs (P, 16000), without a step: what
        tests/test_fast_path.py and benchmarks/throughput.py compare with the plain Keras model."""
        loss, _, _, gradient = self._gradient(x, y, training)
        return loss, gradient

    def _correct(self, target, y):
        """Correct predictions per program, (P,), of target probabilities (P, b, K) against labels (P, b)."""
        hits = tf.equal(tf.argmax(target, -1, output_type=tf.int32), tf.cast(y, tf.int32))
        return tf.reduce_sum(tf.cast(hits, tf.float32), axis=1)

    def _train_step(self, x, y):
        loss, ce, target, gradient = self._gradient(x, y, True)
        self.optimizer.apply([gradient], [self.theta])
        return loss, ce, self._correct(target, y)

    def _evaluate_batch(self, x, y):
        _, ce, target = self.losses(x, y, False)
        return ce, self._correct(target, y)

    def _evaluate_batch_dropout(self, x, y):
        _, ce, target = self.losses(x, y, False, self.scoring_rng)
        return ce, self._correct(target, y)

    def penalty(self) -> np.ndarray:
        """l2 * sum(theta**2) per program, (P,): what Keras adds to the cross-entropy in `loss`."""
        return (self.l2 * tf.reduce_sum(tf.square(self.theta), axis=1)).numpy()

    def evaluate(
        self, tiled: list[np.ndarray], y: np.ndarray, batch: int = 128, dropout: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean cross-entropy and accuracy per program, each (P,), at the current programs.

        Args:
            tiled: per program, its tiled series (n, 16000) (programs with the same tiling may share one array).
            y: (n,) labels, the same for every program.
            dropout: score as the original code did, with each program's dropout on theta (a new mask per
                batch, from the stack's scoring stream); default none.
        """
        step = self.evaluate_batch_dropout if dropout else self.evaluate_batch
        ce_sum, hits = np.zeros(self.P), np.zeros(self.P)
        for start in range(0, len(y), batch):
            xb = np.stack([t[start : start + batch] for t in tiled])
            yb = np.repeat(np.asarray(y)[None, start : start + batch], self.P, 0)
            ce, correct = step(tf.constant(xb), tf.constant(yb))
            ce_sum += ce.numpy() * yb.shape[1]
            hits += correct.numpy()
        return ce_sum / len(y), hits / len(y)


def train_programs(
    am,
    data_fit,
    data_val,
    settings: list[ProgramSetting | dict],
    epochs: int = 100,
    batch_size: int = DEFAULT_BATCH,
    lr: float = DEFAULT_LR,
    lr_decay: float = DEFAULT_LR_DECAY,
    seed: int = 0,
    eval_batch: int = 128,
    verbose: int = 0,
    options: dict | None = None,
    evaluate_on: dict | None = None,
    monitor_on: dict | None = None,
    monitor_dropout_on: dict | None = None,
    on_epoch=None,
) -> list[dict]:
    """Train P V2S programs on one dataset at once (exactly P independent runs; see the module docstring).

    Args:
        am: the frozen source AM (from `am_weights.load_am`): V2Sa/V2Su on the fast path, others as built.
        data_fit: (series (n, L), labels (n,) ints 0..K-1): the training data, NOT tiled.
        data_val: (series (m, L), labels (m,)) for epoch selection, or None / empty for the last epoch.
        settings: one `ProgramSetting` per program (seed, dropout rate, segments, offset, label map, mask,
            l2; `groups` None: the maximal "first" map), or a dict of its field names (`ProgramSetting.from_dict`).
        epochs, batch_size, lr, lr_decay: as the single path (`training.V2SConfig`): Adam with
            lr / (1 + lr_decay * step), the same for every program.
        seed: seeds the dropout stream of the stack.
        eval_batch: series per program per validation batch.
        options: `fast_am` implementation switches (mel AMs only).
        evaluate_on: {name: (series (n, L), labels (n,))} scored with each program's chosen theta (e.g.
            {"train": ..., "test": ...}): once at the end, or, for a split also in `monitor_on`, taken from
            its history at the chosen epoch (the same numbers, no second pass).
        monitor_on: {name: (series, labels)} scored after EVERY epoch into the history as `<name>_ce` and
            `<name>_accuracy`, never used to choose anything here (for studies of the original's
            optimistic protocol, which chose the epoch on TEST: `fidelity.py`).
        monitor_dropout_on: as `monitor_on`, but scored with each program's dropout on theta, as the
            original code's ARTLayer did at inference too: `<name>_dropout_ce`, `<name>_dropout_accuracy`.
            One mask per `batch_size` series, as the original's validation pass drew them (Keras scored
            `validation_data` at the fit's batch size); the masks come from a stream of their own, so the
            training is the same with or without it.
        on_epoch: called as `on_epoch(epochs_done)` after every epoch (a progress bar's hook). The stack
            draws from its own generators only, so the hook's use of global random state cannot change
            the training; an exception from it ends the training like any other.
    Returns:
        one dict per program: `setting` (its `ProgramSetting.as_dict()`, the label map resolved), `history`
        (per epoch, as Keras names them: loss, accuracy, ce — the training loss with and without the L2
        term and the accuracy, averaged over the epoch's batches as Keras does —, val_loss, val_accuracy,
        val_ce), `best_epoch` (1-based, lowest val_ce; last epoch without validation data), `best_val_ce`, `theta` (the chosen epoch's program, (16000,)),
        `theta_last`, `metrics` ({name: {loss, accuracy, ce}} for "validation" at the chosen epoch and
        every `evaluate_on` split), and `samples_per_s` of the whole stack.
    """
    x_fit, y_fit = np.asarray(data_fit[0], np.float32), np.asarray(data_fit[1]).astype(np.int32)
    has_val = data_val is not None and len(data_val[1]) > 0
    n_classes = int(max(y_fit.max(), np.max(data_val[1]) if has_val else 0)) + 1
    length = x_fit.shape[1]
    full = [resolve(s, n_classes) for s in settings]
    stack = ProgramStack(am, n_classes, full, length, lr, lr_decay, options)
    if seed:
        stack.rng.reset_from_seed(seed)
        stack.scoring_rng.reset_from_seed(seed + 104729)
    keys = sorted({(s.seg, s.offset) for s in full})
    index = [keys.index((s.seg, s.offset)) for s in full]

    def tiled(x):
        """Per program, the series tiled with its (seg, offset): one array per distinct tiling."""
        by_key = {k: ts_model.tile_segments(np.asarray(x, np.float32), *k) for k in keys}
        return [by_key[keys[i]] for i in index]

    tiled_fit = tiled(x_fit)
    if has_val:
        y_val = np.asarray(data_val[1]).astype(np.int32)
        tiled_val = tiled(data_val[0])
    tilings: dict = {}  # a split monitored both plain and with dropout is tiled once

    def tiled_once(x):
        if id(x) not in tilings:
            tilings[id(x)] = tiled(x)
        return tilings[id(x)]

    monitored = {
        (name, False): (tiled_once(x), np.asarray(y).astype(np.int32)) for name, (x, y) in (monitor_on or {}).items()
    }
    monitored |= {
        (f"{name}_dropout", True): (tiled_once(x), np.asarray(y).astype(np.int32))
        for name, (x, y) in (monitor_dropout_on or {}).items()
    }
    P, n = len(full), len(y_fit)
    history = [
        {
            "loss": [],
            "accuracy": [],
            "ce": [],
            "val_loss": [],
            "val_accuracy": [],
            "val_ce": [],
            **{f"{name}_{m}": [] for name, _ in monitored for m in ("ce", "accuracy")},
        }
        for _ in range(P)
    ]
    best = [{"epoch": None, "value": None, "theta": None} for _ in range(P)]
    started, seen = time.time(), 0
    with utils.frozen_heap():  # the stack and its graphs are not rescanned by every collection
        for epoch in range(epochs):
            orders = [np.random.default_rng([s.seed, epoch]).permutation(n) for s in full]
            loss_sum, ce_sum, hits = np.zeros(P), np.zeros(P), np.zeros(P)
            for start in range(0, n, batch_size):
                rows = [order[start : start + batch_size] for order in orders]
                xb = np.stack([tiled_fit[p][rows[p]] for p in range(P)])
                yb = np.stack([y_fit[rows[p]] for p in range(P)])
                loss, ce, correct = stack.train_step(tf.constant(xb), tf.constant(yb))
                loss_sum += loss.numpy() * len(rows[0])
                ce_sum += ce.numpy() * len(rows[0])
                hits += correct.numpy()
                seen += P * len(rows[0])
            theta_now = stack.theta.numpy()
            if has_val:
                ce_val, acc_val = stack.evaluate(tiled_val, y_val, eval_batch)
                loss_val = ce_val + stack.penalty()
            for (name, dropout), (x_tiled, y_mon) in monitored.items():
                # with dropout, at the training batch: the original's validation pass drew a mask per batch of 32
                ce_mon, acc_mon = stack.evaluate(x_tiled, y_mon, batch_size if dropout else eval_batch, dropout)
                for p in range(P):
                    history[p][f"{name}_ce"].append(float(ce_mon[p]))
                    history[p][f"{name}_accuracy"].append(float(acc_mon[p]))
            for p in range(P):
                history[p]["loss"].append(float(loss_sum[p] / n))
                history[p]["accuracy"].append(float(hits[p] / n))
                history[p]["ce"].append(float(ce_sum[p] / n))
                if has_val:
                    history[p]["val_loss"].append(float(loss_val[p]))
                    history[p]["val_accuracy"].append(float(acc_val[p]))
                    history[p]["val_ce"].append(float(ce_val[p]))
                    if fitting.is_better(ce_val[p], best[p]["value"], fitting.MODES["val_ce"]):  # as a single run
                        best[p] = {"epoch": epoch, "value": float(ce_val[p]), "theta": theta_now[p].copy()}
            if verbose:
                losses = " ".join(f"{h['loss'][-1]:.3f}" for h in history)
                vals = " ".join(f"{h['val_ce'][-1]:.3f}" for h in history) if has_val else ""
                print(f"epoch {epoch + 1}/{epochs}: loss {losses}" + (f"  val_ce {vals}" if vals else ""), flush=True)
            if on_epoch is not None:
                on_epoch(epoch + 1)
    rate = seen / max(time.time() - started, 1e-9)
    theta_last = stack.theta.numpy()
    chosen = [
        best[p] if best[p]["epoch"] is not None else {"epoch": epochs - 1, "value": None, "theta": theta_last[p]}
        for p in range(P)
    ]
    stack.theta.assign(np.stack([c["theta"] for c in chosen]))
    metrics = [{} for _ in range(P)]
    if has_val:
        for p, c in enumerate(chosen):
            h, e = history[p], c["epoch"]
            metrics[p]["validation"] = {
                "loss": h["val_loss"][e],
                "accuracy": h["val_accuracy"][e],
                "ce": h["val_ce"][e],
            }
    penalty = stack.penalty()
    for name, (x, y) in (evaluate_on or {}).items():
        if (name, False) in monitored:  # scored after every epoch already: the chosen epoch's numbers
            ce = [history[p][f"{name}_ce"][c["epoch"]] for p, c in enumerate(chosen)]
            accuracy = [history[p][f"{name}_accuracy"][c["epoch"]] for p, c in enumerate(chosen)]
        else:
            x_tiled = tiled_fit if x is data_fit[0] else tiled(x)
            ce, accuracy = stack.evaluate(x_tiled, np.asarray(y).astype(np.int32), eval_batch)
        for p in range(P):
            metrics[p][name] = {"loss": float(ce[p] + penalty[p]), "accuracy": float(accuracy[p]), "ce": float(ce[p])}
    return [
        {
            "setting": s.as_dict(),
            "history": history[p],
            "best_epoch": chosen[p]["epoch"] + 1,
            "best_val_ce": chosen[p]["value"],
            "theta": chosen[p]["theta"],
            "theta_last": theta_last[p].copy(),
            "metrics": metrics[p],
            "samples_per_s": round(rate, 1),
        }
        for p, s in enumerate(full)
    ]
