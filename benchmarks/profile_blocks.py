"""Where a training step's time goes: each block of the fast V2Sa path, forward + backward, timed in turn.

For one batch of B series (L = 500, m = 1, synthetic), each block runs as its own `tf.function` on the
inputs the previous block produced, forward and backward w.r.t. its input (the AM is frozen, so only
input-gradients are needed, as in training). Blocks are timed interleaved over several rounds (the
machine is shared) and the median per block is printed in ms with its share of the sum:

  front end       series + program -> standardised log-mel (`FastBody.reprogrammed_mel`: the series' STFT
                  on its non-zero frames only, the program's STFT once per step, |.| -> mel matrix -> log
                  per series on those frames and once per program on the others), backward to the program
  conv block      the AM's Conv2D + BatchNorm, the first BatchNorm folded into the second Conv2D (V2Sa)
  BiLSTM 1, 2     the recurrences, as `fast_am` runs them (`--lstm fused`: XLA, one loop per direction)
                  or as Keras does (`--lstm keras`: the AM's own Bidirectional layers)
  head            attention, dense layers, softmax

    .venv/bin/python benchmarks/profile_blocks.py [--batch 32] [--lstm fused|keras] [--length 500]
                                                  [--forward-only] [--rounds 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import utils  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="series per step (a stack of P programs: P x 32)")
    parser.add_argument("--lstm", choices=("fused", "keras"), default="fused", help="how the recurrences run")
    parser.add_argument("--length", type=int, default=500, help="series length L (m = 1)")
    parser.add_argument(
        "--forward-only", action="store_true", help="time the forward pass only (as evaluation runs), no gradient"
    )
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds (median reported)")
    parser.add_argument("--steps", type=int, default=3, help="calls of each block per round")
    parser.add_argument("--am-weights", default=None, help="default: $V2S_AM_DIR or ../shared/am/model-attRNN.h5")
    args = parser.parse_args(argv)
    tf = utils.setup_tensorflow(seed=0)
    import numpy as np

    import am_weights
    import fast_am

    am, _ = am_weights.load_am("v2sa", args.am_weights)
    am.trainable = False
    body = fast_am.FastBody(am, lstm=args.lstm)
    rng = np.random.default_rng(0)
    wave = np.zeros((args.batch, utils.WAVE_LEN), np.float32)
    wave[:, : args.length] = rng.standard_normal((args.batch, args.length))
    wave = tf.constant(wave)
    theta = tf.Variable(rng.uniform(-0.05, 0.05, utils.WAVE_LEN).astype(np.float32))

    def with_input_gradient(fn):
        """fn(x) -> out; returns a tf.function computing out and d(sum(out * r))/dx for a fixed random r
        (with --forward-only: out alone)."""
        if args.forward_only:
            return tf.function(fn)

        @tf.function
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                out = fn(x)
                loss = tf.reduce_sum(out * tf.random.stateless_uniform(tf.shape(out), (1, 2)))
            return tape.gradient(loss, x)

        return run

    mel = body.reprogrammed_mel(wave[None], theta[None])[0]
    conv = body.conv(mel)
    layers = [am.get_layer(name) for name in ("bidirectional", "bidirectional_1")]

    def bilstm(layer):
        if args.lstm == "keras":
            return lambda x: layer(x, training=False)
        return lambda x: body.bilstm(x, *fast_am.lstm_weights(layer))

    seq1 = bilstm(layers[0])(conv)
    seq2 = bilstm(layers[1])(seq1)

    @tf.function
    def front_end(x):
        if args.forward_only:
            return body.reprogrammed_mel(x[None], theta[None])
        with tf.GradientTape() as tape:
            out = body.reprogrammed_mel(x[None], theta[None])
            loss = tf.reduce_sum(out * tf.random.stateless_uniform(tf.shape(out), (1, 2)))
        return tape.gradient(loss, theta)

    head_layers = [am.get_layer(n) for n in ("dense", "dense_1", "dense_2", "output")]
    blocks = {
        "front end": (front_end, wave),
        "conv block": (with_input_gradient(body.conv), mel),
        "BiLSTM 1": (with_input_gradient(bilstm(layers[0])), conv),
        "BiLSTM 2": (with_input_gradient(bilstm(layers[1])), seq1),
        "head": (with_input_gradient(lambda s: fast_am.attention_head(s, *head_layers)), seq2),
    }
    for fn, x in blocks.values():  # warm-up: traces, XLA compiles
        fn(x)
        fn(x)
    times = {name: [] for name in blocks}
    for _ in range(args.rounds):
        for name, (fn, x) in blocks.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                tf.nest.map_structure(lambda t: t.numpy(), fn(x))
            times[name].append((time.perf_counter() - started) / args.steps * 1000)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    total = sum(medians.values())
    print(
        f"batch {args.batch}, L = {args.length}, m = 1, recurrences: {args.lstm}, "
        f"{'forward only' if args.forward_only else 'forward + backward'}; threads: inter-op "
        f"{tf.config.threading.get_inter_op_parallelism_threads()}, intra-op "
        f"{tf.config.threading.get_intra_op_parallelism_threads()}; median of {args.rounds} rounds"
    )
    for name, ms in medians.items():
        print(f"  {name:<12} {ms:7.1f} ms  {100 * ms / total:4.0f} %")
    print(f"  {'sum':<12} {total:7.1f} ms  (~{1000 * args.batch / total:.0f} samples/s before the optimiser and fit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
