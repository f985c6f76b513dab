"""One V2S run: load data, build the reprogrammed model, fit, choose the epoch, report TEST, record.

`run(config)` is what `v2s_main.py` calls and what sweeps call in-process. With `mod="tfa"` it trains
the paper's TFa baseline instead (`ts_model.build_tfa`: no program, the AM fine-tuned with a dense
head) with the same optimiser, split, epoch selection and record. The epoch is chosen on the
validation split carved from TRAIN; TEST is scored after every epoch into the history (`test_loss`,
`test_ce`, `test_accuracy`, read by nothing that chooses) and the reported TEST metrics are those of
the chosen epoch. `select_on_test=True` restores the original code's optimistic choice (the epoch with
the best test accuracy) and says so in the record.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

import am_weights
import fast_am
import fitting
import probes
import reporting
import runs
import ts_dataloader
import ts_model
import utils
import validation
from settings import (
    DEFAULT_BATCH,
    DEFAULT_DR,
    DEFAULT_LR,
    DEFAULT_LR_DECAY,
    DEFAULT_PRECISION,
    N_SOURCE,
    ProgramSetting,
    dropout_rate,
)

_PROGRAM = ProgramSetting()  # the program fields' defaults
EVAL_BATCH = 256  # series per batch when scoring (validation during fit, and the final scores)


@dataclass
class V2SConfig:
    """Everything that decides a V2S run. Field names follow the CLI flags."""

    dataset: str = "0"
    mapping: int | None = None  # source labels per target label; None: floor(36 / K), the paper's maximum
    eps: int = 100
    mod: str = "1"
    net: str = "0"
    dr: float = DEFAULT_DR  # program dropout in tenths (the CLI's unit): the rate is `dropout`
    seg: int = _PROGRAM.seg
    offset: int = _PROGRAM.offset  # zero samples before the first copy (settings.DEFAULT_OFFSET)
    per: int = 0
    data_dir: str | None = None
    seed: int = _PROGRAM.seed
    batch_size: int = DEFAULT_BATCH
    lr: float = DEFAULT_LR
    lr_decay: float = DEFAULT_LR_DECAY  # lr_t = lr / (1 + lr_decay * step), the original Adam `decay`
    l2: float = _PROGRAM.l2
    val_split: float = 0.2
    fold: int | None = None  # with folds >= 2: validate on this fold of a stratified k-fold split instead
    folds: int = 0
    mask: bool = _PROGRAM.mask
    map_type: str = "first"
    am_weights: str | None = None
    results_dir: str = str(runs.RESULTS_DIR)
    weight_dir: str = str(runs.WEIGHT_DIR)
    run_name: str | None = None
    select_on_test: bool = False
    swd: bool = False  # record the sliced Wasserstein distance source/target logits each epoch (SWDCallback)
    fast: bool = True  # train through fast_am.accelerate_v2s (same maths; docs/performance.md); False: plain Keras
    precision: str = DEFAULT_PRECISION  # the fast path's large products: "fp32" or "bf16" (settings.PRECISIONS)
    deterministic: bool = False
    verbose: int = 2
    plot: bool = True
    save_weights: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise V2SError (one line naming the flag, the value and the allowed range) for a setting out of
        range (`validation.run_settings`, the checks of `v2s_main.py`'s flags) or one TFa cannot use (`check_tfa`)."""
        validation.run_settings(self)  # with the TFa checks (`check_tfa`)

    @property
    def dropout(self) -> float:
        """The dropout rate on theta (`dr` is in tenths)."""
        return dropout_rate(self.dr)

    def program_setting(self, groups: list[list[int]] | None) -> ProgramSetting:
        """This run's program: seed, dropout rate, segments, offset, the label map `groups`, mask, l2."""
        return ProgramSetting(
            seed=self.seed,
            dropout=self.dropout,
            seg=self.seg,
            offset=self.offset,
            groups=groups,
            mask=self.mask,
            l2=self.l2,
        )

    @property
    def tfa(self) -> bool:
        """True for the paper's TFa baseline (`--mod tfa`): no program, the AM fine-tuned with a dense head."""
        return str(self.mod) == "tfa"

    def check_tfa(self) -> None:
        """Raise V2SError (one line) if a flag that needs a program is set with `--mod tfa`.

        `--seg` other than 1, `--mask` and `--swd` are refused; `--dr`, `--l2`, `--mapping` and
        `--map-type` have nothing to act on and are ignored.
        """
        validation.tfa_settings(self)


def run(config: V2SConfig, am=None, am_info=None) -> dict:
    """Train and evaluate one V2S model; write its record, curves and weights.

    Args:
        am: an already built source AM (tests pass a small one); default: `am_weights.load_am`.
    Returns:
        the run record (`runs.RunRecord`, also written to `<results_dir>/<run>.json`) and `results`, its path.
    """
    config.validate()  # again: the fields may have changed since construction
    validation.run_outputs(config)  # output folders created and probed before any data is read or model trained
    started = time.time()
    utils.setup_tensorflow(seed=config.seed, deterministic=config.deterministic)

    data = ts_dataloader.load_dataset(config.dataset, config.data_dir)
    mapping, groups = (None, None) if config.tfa else _label_map(config, data.n_classes)
    program = config.program_setting(groups)
    x_train_all = ts_model.tile_segments(data.x_train, program.seg, program.offset)
    x_test = ts_model.tile_segments(data.x_test, program.seg, program.offset)
    x_fit, y_fit, x_val, y_val = ts_dataloader.validation_split(
        x_train_all, data.y_train, config.val_split, config.seed, config.fold, config.folds
    )
    mask = ts_model.MaskSpec(data.length, program.seg, program.offset) if program.mask else None

    if am is None:
        am, am_info = am_weights.load_am(config.net, config.am_weights)
    model = _build_model(config, am, data.n_classes, program, mask)
    compile_model(model, config.lr, config.lr_decay)

    run_name = config.run_name or runs.single_run_name(config, data.name, mapping)
    results_dir, weight_dir = Path(config.results_dir), Path(config.weight_dir)
    _print_header(config, data, run_name, len(y_fit), len(y_val), mapping, am_info)

    has_val = len(y_val) > 0
    selector = EpochSelector("test_accuracy" if config.select_on_test else "val_ce" if has_val else None)
    # TEST scored after every epoch into the history (test_ce, test_accuracy), for reporting the optimistic
    # protocols only: nothing reads it to choose unless --select-on-test. Before the selector, which may read it.
    callbacks = [TestMonitor(batches(x_test, data.y_test, EVAL_BATCH)), selector]
    if config.per:
        callbacks.append(PeriodicSaver(config.per, weight_dir / "beta", run_name))
    swd_callback = SWDCallback.from_speech(am, x_fit, seed=config.seed) if config.swd else None
    if swd_callback:
        callbacks.append(swd_callback)
    fit_started = time.time()
    with utils.frozen_heap():  # the models and graphs built so far are not rescanned by every collection
        history = model.fit(
            batches(x_fit, y_fit, config.batch_size, shuffle_seed=config.seed),
            epochs=config.eps,
            validation_data=batches(x_val, y_val, EVAL_BATCH) if has_val else None,
            callbacks=callbacks,
            verbose=config.verbose,
        )
    fit_seconds = time.time() - fit_started
    selector.restore(model)

    metrics = {"train": _evaluate(model, batches(x_fit, y_fit, EVAL_BATCH))}
    if has_val:
        metrics["validation"] = _evaluate(model, batches(x_val, y_val, EVAL_BATCH))
    chosen = len(history.epoch) - 1 if selector.best_epoch is None else selector.best_epoch
    metrics["test"] = {key: float(history.history[f"test_{key}"][chosen]) for key in ("loss", "accuracy", "ce")}
    metrics["test_majority_baseline"] = majority_baseline(data.y_train, data.y_test)

    weights_path = weight_dir / f"{run_name}{'.keras' if config.tfa else '.weights.h5'}"
    if config.save_weights:  # TFa: the whole model, for tsne_v2s.py --tfa-weight
        utils.atomic_save(weights_path, model.save if config.tfa else model.save_weights)
    record = runs.run_record(
        config,
        data,
        run_name=run_name,
        mapping=mapping,
        groups=groups,
        n_fit=len(y_fit),
        n_validation=len(y_val),
        am_info=dataclasses.asdict(am_info) if dataclasses.is_dataclass(am_info) else am_info,
        trainable_params=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        history={k: [float(v) for v in vals] for k, vals in history.history.items()},
        selection=selector.describe(config.eps),
        metrics=metrics,
        weights=str(weights_path) if config.save_weights else None,
        wall_time_s={"fit": round(fit_seconds, 2), "total": round(time.time() - started, 2)},
        samples_per_s=round(len(y_fit) * len(history.epoch) / max(fit_seconds, 1e-9), 1),
        **({"swd": swd_callback.describe()} if swd_callback else {}),
    )
    if config.plot:
        record["plot"] = str(results_dir / f"{run_name}.png")
        reporting.plot_history(record, record["plot"])
    utils.atomic_write_json(results_dir / f"{run_name}.json", record)
    record["results"] = str(results_dir / f"{run_name}.json")
    return record


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """TEST accuracy of always predicting TRAIN's most frequent class (the record's `test_majority_baseline`)."""
    return float(np.mean(y_test == np.bincount(y_train).argmax()))


# Training steps per call of Keras' compiled train function: the same steps in the same order (bitwise the
# same weights, checked), but fit's per-step Python work is paid once per call (docs/performance.md).
# Callbacks here are per epoch.
STEPS_PER_EXECUTION = 16


def compile_model(model, lr: float, lr_decay: float, steps_per_execution: int = STEPS_PER_EXECUTION) -> None:
    """Compile a V2S model as every run trains it: `fitting.make_optimizer` (Adam with lr / (1 + lr_decay *
    step)), sparse cross-entropy, accuracy and the cross-entropy alone (`ce`).
    `steps_per_execution=1` is Keras' default (the benchmark's plain reference)."""
    model.compile(
        optimizer=fitting.make_optimizer(lr, lr_decay),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseCategoricalCrossentropy(name="ce")],
        steps_per_execution=steps_per_execution,
    )


def _label_map(config: V2SConfig, n_classes: int) -> tuple[int, list[list[int]]]:
    """(source labels per target, the K groups of source classes) of a V2S run; mod 0: one source each."""
    one_to_one = str(config.mod) == "0"
    mapping, groups = ts_model.many_to_one(
        n_classes, config.mapping or (1 if one_to_one else None), config.map_type, config.seed
    )  # checks --mapping
    return mapping, [[t] for t in range(n_classes)] if one_to_one else groups


def _build_model(config: V2SConfig, am, n_classes: int, program: ProgramSetting, mask):
    """The uncompiled model `run` trains, waveform (n, 16000) -> (n, K) (mod 0: (n, 36)).

    TFa: `ts_model.build_tfa`, the AM trained, no fast path. V2S: `ts_model.build_v2s`, through
    `fast_am.accelerate_v2s` unless `--no-fast` (same maths, variables and saved layout; it returns
    the model unchanged for --mod 2 and non-mel AMs).
    """
    if config.tfa:
        return ts_model.build_tfa(am, n_classes)
    model = ts_model.build_v2s(am, n_classes, program.groups, config.mod, program.dropout, program.l2, mask)
    if not config.fast:
        return model
    fast = fast_am.accelerate_v2s(model, precision=config.precision)
    if fast is model and config.precision != DEFAULT_PRECISION:
        raise utils.V2SError(f"--precision {config.precision}: the fast path does not cover --net {config.net}")
    return fast


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    """(series (n, 16000), labels (n,)) as a `tf.data.Dataset` of batches, built once per run: `fit` and
    `evaluate` then skip building their array adapter's pipeline at every call, and each epoch's iterator is
    a cheap one (docs/performance.md). With `shuffle_seed`, reshuffled every epoch, reproducibly.

    tf.data's autotuning is off: the pipeline has nothing to tune (no parallel map, no prefetch), and
    with it on, deleting an iterator — `fit` does at every epoch, `evaluate` at every call — waits
    for the autotuning thread, idle, for up to ~300 ms."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    data = tf.data.Dataset.from_tensor_slices((x, y)).with_options(options)
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size)


def _evaluate(model, data) -> dict:
    """Loss (cross-entropy + L2 penalty, as Keras reports it), accuracy and cross-entropy alone on the
    batches `data` (`batches`)."""
    loss, accuracy, ce = model.evaluate(data, verbose=0)
    return {"loss": float(loss), "accuracy": float(accuracy), "ce": float(ce)}


def _print_header(config, data, run_name, n_fit, n_val, mapping, am_info) -> None:
    am_text = (
        f"{am_info.name} ({am_info.source}, sha256 {am_info.sha256[:12]}…)"
        if getattr(am_info, "sha256", None)
        else str(am_info)
    )
    print(f"run {run_name}")
    print(
        f"data {data.name} from {data.source}: length {data.length}, {data.n_classes} classes "
        f"(labels {data.label_values}), {n_fit} fit / {n_val} validation / {len(data.y_test)} test series"
    )
    if config.tfa:
        settings = f"offset {config.offset}, no program (--dr, --l2, --mapping unused)"
    else:
        settings = (
            f"mapping {mapping} ({config.map_type}), seg {config.seg}, "
            f"dropout {config.dropout}, l2 {config.l2}, mask {'on' if config.mask else 'off'}"
        )
    print(
        f"model mod {config.mod} ({ts_model.MODS[str(config.mod)]}), AM {am_text}, {settings}, "
        f"lr {config.lr} decay {config.lr_decay}, batch {config.batch_size}"
    )


# ----------------------------------------------------------------------------------------------
# Callbacks


class EpochSelector(keras.callbacks.Callback):
    """Keeps the weights of the best epoch by `monitor`, in direction `mode` ("min"/"max"; default from
    `fitting.MODES`: `val_ce` lowest, `test_accuracy` highest). The rule is `fitting.is_better`, as for a
    program stack.

    The default monitor is `val_ce`, the validation cross-entropy. Keras' `val_loss` adds the L2
    penalty on theta, the same for every series, which shrinks steadily and would pick the last epoch.

    With no monitor (no validation split) the last epoch is kept.
    """

    def __init__(self, monitor: str | None, mode: str | None = None):
        super().__init__()
        self.monitor = monitor
        self.mode = fitting.monitor_mode(monitor, mode)
        self.best_epoch = None
        self.best_value = None
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            return
        value = float(logs[self.monitor])
        if fitting.is_better(value, self.best_value, self.mode):
            self.best_epoch, self.best_value = epoch, value
            self.best_weights = [np.array(w) for w in self.model.get_weights()]

    def restore(self, model) -> None:
        if self.best_weights is not None:
            model.set_weights(self.best_weights)

    def describe(self, epochs: int) -> dict:
        """The record's `selection` (`runs.selection_record`)."""
        return runs.selection_record(
            self.monitor, None if self.monitor is None else self.best_epoch + 1, self.best_value, epochs
        )


class TestMonitor(keras.callbacks.Callback):
    """Adds TEST loss, cross-entropy and accuracy to each epoch's logs (`test_loss`, `test_ce`,
    `test_accuracy`), so they land in the history: the reported TEST metrics (at the chosen epoch) and
    the optimistic protocols' numbers, read by nothing that chooses (except the selector of
    --select-on-test)."""

    def __init__(self, test_batches):
        super().__init__()
        self.test_batches = test_batches

    def on_epoch_end(self, epoch, logs=None):
        result = _evaluate(self.model, self.test_batches)
        logs["test_loss"], logs["test_ce"], logs["test_accuracy"] = result["loss"], result["ce"], result["accuracy"]


class PeriodicSaver(keras.callbacks.Callback):
    """Saves the weights every `period` epochs as `<dir>/<run>-<epoch>-<val_acc>.weights.h5` (--per)."""

    def __init__(self, period: int, directory: Path, run_name: str):
        super().__init__()
        self.period, self.directory, self.run_name = period, Path(directory), run_name

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.period == 0:
            score = logs.get("val_accuracy", logs.get("accuracy", 0.0))
            path = self.directory / f"{self.run_name}-{epoch + 1:03d}-{score:.4f}.weights.h5"
            utils.atomic_save(path, self.model.save_weights)


class SWDCallback(keras.callbacks.Callback):
    """Records, after each epoch, the sliced Wasserstein distance between the AM's logits on source speech
    and on the reprogrammed training series (the paper's Sec. 4 alignment term; Fig. 3, Table 3).

    Adds `swd` to the epoch's logs, so it lands in `history` and the run record. The distance is
    `probes.swd` (the AM's pre-softmax logits over its 36 classes, 1,000 seeded projections). The source
    logits are computed once, or every epoch if the AM itself is trained (--mod 2).
    """

    def __init__(
        self, am, source_waves, target_tiled, n_projections: int = probes.N_PROJECTIONS, seed: int = 0, source: str = ""
    ):
        """am: the AM inside the V2S model; source_waves: (n, 16000) speech clips; target_tiled: (m, 16000)
        tiled target series (the callback adds the model's current program)."""
        super().__init__()
        self.am, self.source_waves, self.target_tiled = am, source_waves, target_tiled
        self.n_projections, self.seed, self.source = n_projections, seed, source
        self._source_logits = None

    @classmethod
    def from_speech(
        cls,
        am,
        x_fit,
        speech_dir=None,
        n_source: int = probes.N_SPEECH,
        n_target: int = probes.N_TARGET_SERIES,
        seed: int = 0,
    ):
        """Source: a seeded sample of `n_source` clips of a Speech-Commands folder (default
        $V2S_SPEECH_DIR or ../shared/speech/gsc); target: up to `n_target` tiled fit series (n, 16000)."""
        folder = speech_dir or probes.default_speech_dir()
        waves, _ = probes.speech_sample(folder, n_source, seed)
        return cls(am, waves, probes.subsample(x_fit, n_target, seed), seed=seed, source=str(folder))

    def value(self) -> float:
        """SWD between source-speech logits and the logits of the currently reprogrammed target series."""
        if self._source_logits is None or self.am.trainable:
            self._source_logits = probes.am_logits(self.am, self.source_waves)
        return probes.swd(
            self.am,
            self._source_logits,
            self.target_tiled,
            probes.program_of(self.model),
            self.n_projections,
            self.seed,
        )

    def on_epoch_end(self, epoch, logs=None):
        logs["swd"] = self.value()  # Keras' progress line and History pick it up

    def describe(self) -> dict:
        return {
            "source": self.source,
            "n_source": len(self.source_waves),
            "n_target": len(self.target_tiled),
            "n_projections": self.n_projections,
            "seed": self.seed,
            "p": 2,
            "space": f"AM logits ({N_SOURCE})",
        }
