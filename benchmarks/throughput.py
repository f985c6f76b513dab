"""Side-by-side training throughput of V2S on this machine: naive Keras vs the fast single run vs P programs.

In ONE process, with the same AM weights (V2Sa), the same data and batch 32, for each shape
(L = 500, m = 1 and L = 2709, m = 1; synthetic series, 2 classes):

  (a) naive   the plain Keras V2S model (kapre front end on the full padded waveform), `model.fit`
  (b) single  the project's default single-run path: `fast_am.accelerate_v2s(model)`, compiled as
              `v2s_main.py` does (`training.compile_model`: 16 steps per call of the train function), `fit`
              on the run's batches built once (`training.batches`, reshuffled every epoch), as `training.run`
  (c) sweep   `multi_program.ProgramStack` training P programs at once (samples of all programs counted)
  (d) cnn1d_small  the plain Keras V2S model over the raw-waveform AM `cnn1d_small` (no fast path
              covers it), `model.fit` as (a): the cost of V2S with that source beside V2Sa's

and the evaluation passes (forward only, no dropout) of (b) and (c): `model.evaluate` at the single
run's validation batch (`training.EVAL_BATCH`) and `ProgramStack.evaluate` at 128 series per program
(the sweep's validation and per-epoch TEST passes), each as series/s and as a multiple of its own
training rate.

First, on one batch, (b) and (c) (per program) must give the same loss and the same gradient w.r.t.
theta as (a) (no dropout): |dloss| <= 1e-5 * loss and ||dgrad|| <= 1e-4 * ||grad||, or the script fails.
Then the variants are timed INTERLEAVED (many short rounds of k steps of each, in turn: the machine
is shared) after warm-up, with the objects built so far kept out of the garbage collector's scans for
every variant (`utils.frozen_heap`, as `training.run` and `multi_program.train_programs` train); samples/s
= all samples / all time (the median round's rates printed too).
Prints per shape samples/s and peak RSS, an estimate of the paper's Table-2 grid wall time at the
measured rates, and as its last line

  speedup_single=<b/a> speedup_sweep=<c/a> naive_samples_per_s=<a> single_samples_per_s=<b> sweep_samples_per_s=<c>

after a line `eval_vs_train_single=<b eval/b> eval_vs_train_sweep=<c eval/c>`,
each ratio taken on the shape where it is smallest (the rates are those of that shape).

    .venv/bin/python benchmarks/throughput.py --quick      # <= 3 min
    .venv/bin/python benchmarks/throughput.py              # several hundred steps per variant and shape
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import utils  # noqa: E402

LOSS_RTOL, GRAD_RTOL = 1e-5, 1e-4  # as tests/test_fast_path.py
# The paper's Table-2 grid: 30 datasets x 5 dropouts x 10 segment counts, 100 epochs (one seed).
GRID_SETTINGS, GRID_EPOCHS, GRID_DATASETS = 5 * 10, 100, 30


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def grid_fit_samples(ucr_dir: Path | None) -> tuple[float, str]:
    """Training samples of one epoch summed over 30 datasets (80 % of TRAIN is fit), and how it was estimated."""
    sizes = []
    if ucr_dir and ucr_dir.is_dir():
        for folder in sorted(ucr_dir.iterdir()):
            train = folder / f"{folder.name}_TRAIN.tsv"
            if train.is_file():
                with open(train) as fh:
                    sizes.append(sum(1 for line in fh if line.strip()))
    if sizes:
        mean = float(np.mean(sizes))
        return 30 * 0.8 * mean, f"mean TRAIN size {mean:.0f} of the {len(sizes)} UCR sets in {ucr_dir}"
    return 30 * 0.8 * 300, "assumed mean TRAIN size 300"


def make_data(length: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length, dtype=np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    x = (np.sin(2 * np.pi * (3 + 2 * y[:, None]) * t[None]) + 0.5 * rng.standard_normal((n, length))).astype(np.float32)
    return x, y


def build_naive(am, groups, dropout, l2):
    """The plain Keras V2S model of a 2-class task (frozen AM, many-to-one map `groups`)."""
    import ts_model

    return ts_model.build_v2s(am, 2, groups, "1", dropout, l2)


def loss_and_grad(model, x, y):
    import keras

    with tf.GradientTape() as tape:
        probs = model(x, training=False)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs)) + tf.add_n(model.losses)
    return float(loss), tape.gradient(loss, model.get_layer("art").theta).numpy().reshape(-1)


def check_equal(name, loss, grad, ref_loss, ref_grad) -> str:
    dl = abs(loss - ref_loss) / abs(ref_loss)
    dg = np.linalg.norm(grad - ref_grad) / np.linalg.norm(ref_grad)
    ok = dl <= LOSS_RTOL and dg <= GRAD_RTOL
    line = f"  check {name}: loss {loss:.6f} vs {ref_loss:.6f} (rel {dl:.1e}), theta-grad rel err {dg:.1e} -> {'ok' if ok else 'FAIL'}"
    if not ok:
        print(line)
        raise SystemExit(f"error: {name} differs from the naive reference beyond the tolerance")
    return line


def bench_shape(am, length, args, waveform_am=None):
    import fast_am
    import multi_program
    import training
    import ts_model
    from settings import DEFAULT_LR, DEFAULT_LR_DECAY, ProgramSetting

    P, B, k = args.programs, 32, args.steps_per_round
    n = B * k  # one fit() epoch = one round of k steps
    x_series, y = make_data(length, n, seed=length)
    x = ts_model.tile_segments(x_series, 1)
    groups = ts_model.label_mapping(2, 18)
    rng = np.random.default_rng(1)

    # --- equality on one batch (no dropout: the same function) -----------------------------------------
    naive = build_naive(am, groups, 0.0, 0.04)
    fast = fast_am.accelerate_v2s(naive)
    settings = [ProgramSetting(seed=p, dropout=0.0, offset=0, groups=groups) for p in range(P)]  # x tiled at 0
    stack = multi_program.ProgramStack(am, 2, settings, length)
    xb, yb = tf.constant(x[:B]), tf.constant(y[:B])
    thetas = rng.uniform(-0.05, 0.05, (P, 16000)).astype(np.float32)
    lines = []
    art = naive.get_layer("art")
    art.theta.assign(thetas[0][:, None])
    ref_loss, ref_grad = loss_and_grad(naive, xb, yb)
    lines.append(check_equal("(b) single", *loss_and_grad(fast, xb, yb), ref_loss, ref_grad))
    stack.theta.assign(thetas)
    losses, grads = stack.loss_and_gradient(tf.stack([xb] * P), tf.stack([yb] * P), training=False)
    worst = (0.0, 0.0)
    for p in range(P):
        art.theta.assign(thetas[p][:, None])
        rl, rg = loss_and_grad(naive, xb, yb)
        dl = abs(float(losses[p]) - rl) / abs(rl)
        dg = np.linalg.norm(grads[p].numpy() - rg) / np.linalg.norm(rg)
        worst = (max(worst[0], dl), max(worst[1], dg))
        if dl > LOSS_RTOL or dg > GRAD_RTOL:
            raise SystemExit(
                f"error: (c) program {p} differs from the naive reference: loss rel {dl:.1e}, grad rel {dg:.1e}"
            )
    lines.append(
        f"  check (c) sweep, {P} programs: worst loss rel err {worst[0]:.1e}, worst theta-grad rel err {worst[1]:.1e} -> ok"
    )
    lines.append(f"  tolerance: loss rel <= {LOSS_RTOL:g}, theta-gradient rel (L2) <= {GRAD_RTOL:g}")

    # --- the three training paths, as used (dropout 0.4, L2 0.04, Adam with inverse-time decay) -------
    model_a = build_naive(am, groups, 0.4, 0.04)
    training.compile_model(model_a, DEFAULT_LR, DEFAULT_LR_DECAY, steps_per_execution=1)  # plain fit: Keras' default
    model_b = fast_am.accelerate_v2s(build_naive(am, groups, 0.4, 0.04))
    training.compile_model(model_b, DEFAULT_LR, DEFAULT_LR_DECAY)  # as v2s_main.py compiles it
    settings = [ProgramSetting(seed=p, dropout=0.4, offset=0, groups=groups) for p in range(P)]
    stack = multi_program.ProgramStack(am, 2, settings, length)
    orders_rng = np.random.default_rng(2)

    def run_a():
        model_a.fit(x, y, batch_size=B, epochs=1, shuffle=True, verbose=0)

    fit_batches_b = training.batches(x, y, B, shuffle_seed=0)  # as training.run: built once per run
    eval_batches_b = training.batches(x, y, training.EVAL_BATCH)

    def run_b():
        model_b.fit(fit_batches_b, epochs=1, verbose=0)

    def run_c():
        orders = [orders_rng.permutation(n) for _ in range(P)]
        for start in range(0, n, B):
            xs = np.stack([x[o[start : start + B]] for o in orders])
            ys = np.stack([y[o[start : start + B]] for o in orders])
            stack.train_step(tf.constant(xs), tf.constant(ys))[0].numpy()

    def eval_b():
        model_b.evaluate(eval_batches_b, verbose=0)

    def eval_c():
        stack.evaluate([x] * P, y, 128)

    variants = {"a": (run_a, n), "b": (run_b, n), "c": (run_c, n * P), "b_eval": (eval_b, n), "c_eval": (eval_c, n * P)}
    if waveform_am is not None:
        model_d = build_naive(waveform_am, groups, 0.4, 0.04)
        training.compile_model(model_d, DEFAULT_LR, DEFAULT_LR_DECAY, steps_per_execution=1)

        def run_d():
            model_d.fit(x, y, batch_size=B, epochs=1, shuffle=True, verbose=0)

        variants["d"] = (run_d, n)
    rss = {}
    for key, (fn, _) in variants.items():  # warm-up: traces, XLA compiles, first epochs
        fn()
        fn()
        rss[key] = peak_rss_gb()
    times = {key: [] for key in variants}
    with utils.frozen_heap():  # for every variant alike, as v2s_main.py and the sweeps train
        for _ in range(args.rounds):  # short rounds, variants in turn: the other jobs' load hits all alike
            for key, (fn, _) in variants.items():
                started = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - started)
    # samples/s = all samples / all time; the median round's rate is printed as a robustness check
    rates = {key: variants[key][1] * args.rounds / sum(times[key]) for key in variants}
    median_rates = {key: variants[key][1] / float(np.median(times[key])) for key in variants}
    lines.append(
        "  median-round rates: "
        + ", ".join(f"({k}) {v:.1f}" for k, v in median_rates.items())
        + "  -> "
        + ", ".join(f"x{median_rates[k] / median_rates['a']:.2f}" for k in median_rates if k in ("b", "c", "d"))
    )
    return rates, rss, lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps (<= 3 min): a smoke run of the numbers")
    parser.add_argument("--programs", type=int, default=4, help="P, programs trained at once by (c)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per shape")
    parser.add_argument("--steps-per-round", type=int, default=None, help="steps of each variant per round")
    parser.add_argument("--lengths", default="500,2709", help="series lengths (m = 1)")
    parser.add_argument("--am-weights", default=None, help="default: $V2S_AM_DIR or ../shared/am/model-attRNN.h5")
    parser.add_argument(
        "--no-cnn1d-small",
        dest="cnn1d_small",
        action="store_false",
        help="leave out (d), V2S over the raw-waveform cnn1d_small (its shipped weights, else random ones)",
    )
    parser.add_argument(
        "--inter-op",
        type=int,
        default=None,
        help="TensorFlow inter-op threads for the whole process (default: $TF_NUM_INTEROP_THREADS "
        "or the project's 2, which is also TF's own default on 2 cores: independent "
        "recurrences — both directions of a BiLSTM — run at once; 1 serialises them)",
    )
    args = parser.parse_args(argv)
    if args.inter_op:
        os.environ["TF_NUM_INTEROP_THREADS"] = str(args.inter_op)
    if args.rounds is None:
        args.rounds = 4 if args.quick else 30
    if args.steps_per_round is None:
        args.steps_per_round = 4 if args.quick else 6
    global tf, np
    tf = utils.setup_tensorflow(seed=0)
    import numpy as np

    import am_weights
    import speech_models

    weights = args.am_weights
    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    if weights is None and not os.environ.get("V2S_AM_DIR") and (shared / "am" / "model-attRNN.h5").is_file():
        weights = str(shared / "am" / "model-attRNN.h5")
    am, info = am_weights.load_am("v2sa", weights)
    am.trainable = False
    waveform_am = None
    if args.cnn1d_small:
        waveform_am = speech_models.build_am("cnn1d_small")
        if (utils.PROJECT_DIR / "weight" / "cnn1d_small.weights.h5").is_file():
            waveform_am, _ = am_weights.load_am("cnn1d_small")
        waveform_am.trainable = False
    print(
        f"AM {info.name} ({info.source}, original weights: {info.original}); TF {tf.__version__}; "
        f"{os.cpu_count()} CPUs; threads: inter-op {os.environ['TF_NUM_INTEROP_THREADS']}, intra-op "
        f"{os.environ['TF_NUM_INTRAOP_THREADS']}; batch 32; P = {args.programs}; {args.rounds} interleaved rounds x "
        f"{args.steps_per_round} steps per variant and shape"
    )
    results = {}
    for length in (int(v) for v in args.lengths.split(",")):
        started = time.time()
        rates, rss, lines = bench_shape(am, length, args, waveform_am)
        results[length] = rates
        print(f"shape L={length}, m=1:")
        for line in lines:
            print(line)
        print(f"  (a) naive  {rates['a']:8.1f} samples/s   peak RSS {rss['a']:.2f} GB")
        print(f"  (b) single {rates['b']:8.1f} samples/s   peak RSS {rss['b']:.2f} GB   x{rates['b'] / rates['a']:.2f}")
        print(
            f"  (c) sweep  {rates['c']:8.1f} samples/s   peak RSS {rss['c']:.2f} GB   x{rates['c'] / rates['a']:.2f}  "
            f"({args.programs} programs, samples of all programs)"
        )
        for key in ("b", "c"):
            print(
                f"  ({key}) evaluation {rates[key + '_eval']:8.1f} samples/s   "
                f"x{rates[key + '_eval'] / rates[key]:.2f} its training rate (forward only)"
            )
        if "d" in rates:
            print(
                f"  (d) cnn1d_small {rates['d']:8.1f} samples/s   peak RSS {rss['d']:.2f} GB   "
                f"x{rates['d'] / rates['a']:.2f}  (V2S over the raw-waveform AM, plain Keras)"
            )
        print(f"  ({time.time() - started:.0f} s; peak RSS is the process' cumulative maximum after each warm-up)")
    samples, how = grid_fit_samples(shared / "ucr")
    total = samples * GRID_EPOCHS * GRID_SETTINGS
    print(
        f"Table-2 grid (30 datasets x 5 dropouts x 10 segment counts x 100 epochs, one seed; {how}): "
        f"{total / 1e6:.1f} M training samples (validation passes not counted)"
    )
    for key, label in (("a", "naive"), ("b", "single"), ("c", "sweep")):
        rate = min(r[key] for r in results.values())
        print(f"  at the {label} rate {rate:.0f} samples/s (slowest shape): {total / rate / 3600:.1f} h")
    eval_single = min(r["b_eval"] / r["b"] for r in results.values())
    eval_sweep = min(r["c_eval"] / r["c"] for r in results.values())
    print(f"eval_vs_train_single={eval_single:.2f} eval_vs_train_sweep={eval_sweep:.2f}")
    single_shape = min(results, key=lambda L: results[L]["b"] / results[L]["a"])
    sweep_shape = min(results, key=lambda L: results[L]["c"] / results[L]["a"])
    rs, rw = results[single_shape], results[sweep_shape]
    print(
        f"speedup_single={rs['b'] / rs['a']:.2f} speedup_sweep={rw['c'] / rw['a']:.2f} "
        f"naive_samples_per_s={rs['a']:.2f} single_samples_per_s={rs['b']:.2f} sweep_samples_per_s={rw['c']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
