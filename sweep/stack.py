"""Training the runs of one stack: V2S programs of one dataset, AM and seed together
(`multi_program.train_programs`), TFa runs one at a time (`training.run`), each into its run record under
`<out>/runs/`, with the Table-3 SWD; a crash becomes an error record. TensorFlow is imported by the
functions that train, not by importing this module."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import probes
import runs
import utils
from settings import N_SOURCE
from sweep.plan import TFA_OPTIMISERS, RunSpec
from utils import V2SError


def config_for(spec: RunSpec, out: str):
    """The `training.V2SConfig` of a run: the paper's random many-to-one map, records under `<out>/runs`."""
    import training

    optimiser = {}
    if spec.mod == "tfa":
        lr, lr_decay, _ = TFA_OPTIMISERS[spec.optimiser]
        optimiser = {"lr": lr, "lr_decay": lr_decay}
    return training.V2SConfig(
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        eps=spec.eps,
        net=spec.net,
        mod=spec.mod,
        dr=spec.dr,
        seg=spec.seg,
        seed=spec.seed,
        map_type="random",
        **optimiser,
        results_dir=str(Path(out) / "runs"),
        weight_dir=str(Path(out) / "weights"),
        run_name=spec.name,
        plot=False,
        verbose=0,
        save_weights=spec.mod == "tfa",
        fold=spec.fold,
        folds=spec.folds,
        precision=spec.precision,
    )


def record_failure(spec: RunSpec, out: str, err: Exception, seconds: float) -> dict:
    """Record a crashed run as `<run>.error.json`; the summary line for the sweep."""
    message = f"{type(err).__name__}: {err}"
    utils.atomic_write_json(
        Path(out) / "runs" / f"{spec.name}.error.json", {"run": spec.name, "spec": asdict(spec), "error": message}
    )
    return {"run": spec.name, "ok": False, "error": message.splitlines()[0], "seconds": seconds}


def run_one(spec: RunSpec, out: str) -> dict:
    """Train one TFa run through `training.run` (V2S runs go through `run_stack`); on failure write
    `<run>.error.json`. Returns a short summary."""
    started = time.time()
    try:
        import training

        record = training.run(config_for(spec, out))
        return {
            "run": spec.name,
            "ok": True,
            "test_accuracy": record["metrics"]["test"]["accuracy"],
            "seconds": time.time() - started,
        }
    except Exception as err:  # recorded, and the sweep goes on
        return record_failure(spec, out, err, time.time() - started)


_AM_CACHE: dict = {}


def _source_am(net: str):
    """The frozen source AM of `net`, loaded once per process."""
    if net not in _AM_CACHE:
        import am_weights

        am, info = am_weights.load_am(net)
        am.trainable = False
        _AM_CACHE[net] = (am, info)
    return _AM_CACHE[net]


def run_stack(specs: list[RunSpec], out: str, on_epoch=None) -> list[dict]:
    """Train V2S runs of one group together (`multi_program.train_programs`) and write one record per run.

    Each record is the one `training.run` writes (config, dataset, label map, AM, history, epoch
    choice, metrics, wall time), with `trained_with` naming the stack; the stack's wall time is
    shared equally among its runs. Also records the sliced Wasserstein distance between the AM's
    logits on source speech and on the reprogrammed TRAIN series at the chosen program (`swd`, for
    Table 3). A crash marks every run of the stack as failed.

    Dropout masks are drawn from one stream per stack, so a run's numbers depend on the stack it was
    trained in: the same plan and `--programs` give the same stacks and the same numbers.

    `on_epoch(epochs_done)`, if given, is called after every epoch of the stack (progress only; TFa runs,
    trained one by one, do not call it).
    """
    if specs[0].mod == "tfa":
        return [run_one(spec, out) for spec in specs]
    started = time.time()
    try:
        records = _train_stack(specs, out, started, on_epoch)
    except Exception as err:  # recorded, and the sweep goes on
        seconds = (time.time() - started) / len(specs)
        return [record_failure(spec, out, err, seconds) for spec in specs]
    return [
        {
            "run": r["run"],
            "ok": True,
            "test_accuracy": r["metrics"]["test"]["accuracy"],
            "seconds": r["wall_time_s"]["total"],
        }
        for r in records
    ]


def _train_stack(specs: list[RunSpec], out: str, started: float, on_epoch=None) -> list[dict]:
    import multi_program
    import training
    import ts_dataloader
    import ts_model

    first = specs[0]
    tf = utils.setup_tensorflow(seed=first.seed)
    data = ts_dataloader.load_dataset(first.dataset, first.data_dir, download=False)
    configs = [config_for(spec, out) for spec in specs]
    x_fit, y_fit, x_val, y_val = ts_dataloader.validation_split(
        data.x_train, data.y_train, configs[0].val_split, first.seed, configs[0].fold, configs[0].folds
    )
    am, am_info = _source_am(first.net)
    mapping, groups = ts_model.many_to_one(data.n_classes, None, "random", first.seed)  # the paper's maximal map
    settings = [c.program_setting(groups) for c in configs]
    fit_started = time.time()
    results = multi_program.train_programs(
        am,
        (x_fit, y_fit),
        (x_val, y_val),
        settings,
        epochs=first.eps,
        batch_size=configs[0].batch_size,
        lr=configs[0].lr,
        lr_decay=configs[0].lr_decay,
        seed=first.seed,
        options={"precision": first.precision},
        evaluate_on={"train": (x_fit, y_fit), "test": (data.x_test, data.y_test)},  # the reported TEST score
        monitor_on={"test": (data.x_test, data.y_test)},  # per-epoch TEST, for the optimistic protocols only
        on_epoch=on_epoch,
    )
    fit_seconds = time.time() - fit_started
    try:
        swd = stack_swd(am, first.net, data.x_train, [r["theta"] for r in results], settings, first.seed)
    except (V2SError, OSError, ValueError) as err:  # optional: the trained runs are kept without it
        print(f"{first.dataset}: SWD not recorded ({type(err).__name__}: {err})".splitlines()[0], flush=True)
        swd = [None] * len(results)
    share = (time.time() - started) / len(specs)
    records = []
    for spec, config, result, distance in zip(specs, configs, results, swd):
        metrics = {key: result["metrics"][key] for key in ("train", "validation", "test") if key in result["metrics"]}
        metrics["test_majority_baseline"] = training.majority_baseline(data.y_train, data.y_test)
        if distance is not None:
            metrics["swd"] = distance
        record = runs.run_record(
            config,
            data,
            run_name=spec.name,
            mapping=mapping,
            groups=groups,
            n_fit=len(y_fit),
            n_validation=len(y_val),
            am_info=asdict(am_info),
            trainable_params=utils.WAVE_LEN,
            history=result["history"],
            selection=runs.selection_record(
                "val_ce" if result["best_val_ce"] is not None else None,
                result["best_epoch"],
                result["best_val_ce"],
                spec.eps,
            ),
            metrics=metrics,
            weights=None,
            wall_time_s={
                "fit": round(fit_seconds / len(specs), 2),
                "total": round(share, 2),
                "stack_total": round(share * len(specs), 2),
            },
            samples_per_s=result["samples_per_s"],
            trained_with={
                "path": "multi_program.train_programs",
                "programs_in_stack": len(specs),
                "stack": [s.name for s in specs],
                "tf_version": tf.__version__,
            },
        )
        utils.atomic_write_json(Path(out) / "runs" / f"{spec.name}.json", record)
        records.append(record)
    return records


_SPEECH_CACHE: dict = {}


def stack_swd(am, net: str, x_train, thetas, settings, seed: int) -> list[dict | None]:
    """Per program: the sliced Wasserstein-2 distance (`probes.swd`, 1,000 seeded projections) between the AM's
    logits on a seeded sample of 400 source speech clips and on up to 1,000 TRAIN series tiled as the program's
    `ProgramSetting` + its program; and the AM's cross-entropy on that speech (Table 3's source loss).
    None per program when no speech folder is found (`probes.default_speech_dir`)."""
    import ts_model

    folder = probes.default_speech_dir()
    if folder is None:
        return [None] * len(thetas)
    key = (net, str(folder), seed)
    if key not in _SPEECH_CACHE:  # the frozen AM's logits on the speech sample: once per process
        waves, labels = probes.speech_sample(folder, probes.N_SPEECH, seed)
        _SPEECH_CACHE[key] = (*probes.speech_logits(am, waves, labels), len(labels))
    source, loss, accuracy, n_source = _SPEECH_CACHE[key]
    x = probes.subsample(x_train, probes.N_TARGET_SERIES, seed)
    out = []
    for theta, setting in zip(thetas, settings):
        tiled = ts_model.tile_segments(x, setting.seg, setting.offset)
        out.append(
            {
                "value": probes.swd(am, source, tiled, theta, probes.N_PROJECTIONS, seed),
                "source_loss": loss,
                "source_accuracy": accuracy,
                "n_source": n_source,
                "n_target": len(x),
                "source": str(folder),
                "space": f"AM logits ({N_SOURCE})",
                "p": 2,
                "projections": probes.N_PROJECTIONS,
            }
        )
    return out
