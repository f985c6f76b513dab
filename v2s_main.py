"""Voice2Series: reprogram a frozen speech-command acoustic model to classify a UCR time series.

Example:
    python v2s_main.py --dataset 2 --eps 100          # ECG200 with the paper's V2S settings
    python v2s_main.py --dataset Coffee --eps 2 --seg 3
    python v2s_main.py --dataset Coffee --eps 30 --mod tfa   # the paper's TFa baseline (no program)

The last line printed is `test_accuracy=<fraction>`: the TEST accuracy of the weights chosen on the
validation split (lowest validation loss), evaluated once.
"""

from __future__ import annotations

import argparse

import utils
import validation
from settings import (
    DEFAULT_BATCH,
    DEFAULT_DR,
    DEFAULT_L2,
    DEFAULT_LR,
    DEFAULT_LR_DECAY,
    DEFAULT_OFFSET,
    DEFAULT_PRECISION,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Flags --dataset --mapping --eps --mod --net --dr --seg --per keep the original code's "
        "meaning; --mod defaults to 1 (the paper's V2S) and --mapping to the paper's maximum.",
    )
    parser.add_argument(
        "--dataset", default="0", help="original index (0 FordA, 1 Beef, 2 ECG200, ...; see task_list.txt) or UCR name"
    )
    parser.add_argument(
        "--mapping",
        type=int,
        default=None,
        help="source labels per target label (many-to-one); default floor(36/K), the paper's maximum",
    )
    parser.add_argument("--eps", type=int, default=100, help="training epochs")
    parser.add_argument(
        "--mod",
        default="1",
        choices=["0", "1", "2", "tfa"],
        help="0 one-to-one (36-way output, AM frozen); 1 V2S: many-to-one, AM frozen (paper); "
        "2 many-to-one with the AM fine-tuned (original code's default); tfa the paper's TFa "
        "baseline: no program, the series zero-padded at --offset, the whole AM fine-tuned with "
        "an added Dense(K, softmax) on its 36 outputs; --seg other than 1, --mask and --swd are "
        "errors, --dr --l2 --mapping --map-type are ignored; saves the whole model as "
        "<weight-dir>/<run>.keras (for tsne_v2s.py --tfa-weight)",
    )
    parser.add_argument(
        "--net",
        default="0",
        help="source AM: 0/v2sa attention-BiLSTM (original weights), 3/v2su U-Net variant, 5/cnn1d raw-waveform CNN, 6/cnn1d_small (its 64->16 channel version)",
    )
    parser.add_argument(
        "--dr", type=float, default=DEFAULT_DR, help="dropout on the program theta = dr x 0.1 (training only)"
    )
    parser.add_argument(
        "--seg",
        type=int,
        default=1,
        help="copies of the series tiled into the 16000-sample window, from the start at equal intervals",
    )
    parser.add_argument(
        "--offset",
        type=int,
        default=DEFAULT_OFFSET,
        help="zero samples before the first copy. 448 puts the series where the original's AM saw it: "
        "its kapre-0.1 STFT padded 448 samples on the left ('same'), today's weights expect none, "
        "so at 0 the series falls on the edge of the first Hann window and is nearly invisible",
    )
    parser.add_argument(
        "--per",
        type=int,
        default=0,
        help="if > 0, also save weights every N epochs to weight/beta/<run>-<epoch>-<val_acc>.weights.h5",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with <Name>/<Name>_TRAIN.tsv files (default $V2S_DATA_DIR or Datasets/)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds data split, program init, dropout, shuffling, random map"
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="mini-batch size")
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Adam's initial learning rate")
    parser.add_argument(
        "--lr-decay",
        type=float,
        default=DEFAULT_LR_DECAY,
        help="inverse-time decay per step, lr/(1+decay*step), as the original Adam `decay`; 0 = constant",
    )
    parser.add_argument(
        "--l2", type=float, default=DEFAULT_L2, help="L2 penalty on theta (paper 0.04; the original code used 0.05)"
    )
    parser.add_argument(
        "--val-split",
        type=float,
        default=0.2,
        help="fraction of TRAIN held out (stratified, seeded) to choose the epoch; 0 = keep the last epoch",
    )
    parser.add_argument(
        "--mask",
        action="store_true",
        help="apply the paper's mask M: theta is zero where the series sits (the original did not)",
    )
    parser.add_argument(
        "--map-type",
        default="first",
        choices=["first", "random"],
        help="first: target t <- sources t*m..t*m+m-1 (original code); random: seeded random, non-overlapping (paper)",
    )
    parser.add_argument(
        "--am-weights",
        default=None,
        help="path of the source AM's weights (default: $V2S_AM_DIR, weight/, Keras cache, download)",
    )
    parser.add_argument(
        "--results-dir", default=str(utils.PROJECT_DIR / "results"), help="where the run's JSON and PNG go"
    )
    parser.add_argument("--weight-dir", default=str(utils.PROJECT_DIR / "weight"), help="where the trained weights go")
    parser.add_argument(
        "--run-name", default=None, help="file name stem of the outputs (default: built from the settings)"
    )
    parser.add_argument(
        "--select-on-test",
        action="store_true",
        help="ORIGINAL, OPTIMISTIC protocol: choose the epoch by TEST accuracy, as the original's "
        "'Best Val. Acc'. Never use it for honest numbers",
    )
    parser.add_argument(
        "--swd",
        action="store_true",
        help="record each epoch the sliced Wasserstein distance between the AM's logits on source speech "
        "($V2S_SPEECH_DIR or ../shared/speech/gsc, 400 seeded clips) and on the reprogrammed fit series "
        "(1,000 projections); plotted beside accuracy and loss (the paper's Fig. 3)",
    )
    parser.add_argument(
        "--no-fast",
        dest="fast",
        action="store_false",
        help="train through the plain Keras model instead of the fast path (fast_am; same maths, see docs/performance.md)",
    )
    parser.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        help="the fast path's large products (mel matrix, convolutions, LSTM input projections): fp32 (default) "
        "or bf16 (bfloat16 operands and products cast to float32; float32 recurrences and theta; opt-in, docs/performance.md)",
    )
    parser.add_argument(
        "--deterministic", action="store_true", help="ask TensorFlow for deterministic kernels (slower)"
    )
    parser.add_argument(
        "--verbose",
        type=int,
        default=2,
        choices=[0, 1, 2],
        help="Keras progress: 0 silent, 1 progress bar, 2 one line per epoch",
    )
    args = parser.parse_args(argv)
    validation.run_settings(args)
    validation.data_dir("--data-dir", args.data_dir)  # the command line's folder; a config's is read as given
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    validation.run_outputs(args)  # a bad output folder fails now, not after training
    utils.setup_tensorflow(seed=args.seed)
    import training

    config = training.V2SConfig(**vars(args))
    record = training.run(config)
    metrics = record["metrics"]
    print(f"selected epoch {record['selection']['epoch']} of {config.eps} ({record['selection']['criterion']})")
    loss_name = "loss" if config.tfa else "loss with L2 on theta"
    for split in ("train", "validation", "test"):
        if split in metrics:
            result = metrics[split]
            print(
                f"{split:<10} accuracy {result['accuracy']:.4f}  cross-entropy {result['ce']:.4f}  "
                f"{loss_name} {result['loss']:.4f}"
            )
    print(f"majority-class test accuracy {metrics['test_majority_baseline']:.4f}")
    print(f"weights={record['weights']}")
    print(f"results={record['results']}")
    print(f"test_accuracy={metrics['test']['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
