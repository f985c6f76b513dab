"""Non-V2S baselines for the reproduction table: MiniRocket (Dempster, Schmidt & Webb, KDD 2021).

Each baseline fits on a dataset's TRAIN split only and scores TEST once, as V2S does.

    python baselines.py --dataset ECG200 --data-dir ../shared/ucr --seed 0

prints a header line and, as its last line, `test_accuracy=<fraction>`. Bad input gives one
`error: ...` line and exit status 2. MiniRocket comes from `aeon` (requirements-extras.txt).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import validation
from utils import V2SError, run_cli

MINIROCKET_MIN_LENGTH = 9  # MiniRocket's kernels have 9 taps


def minirocket(data, seed: int = 0) -> dict:
    """Fit aeon's `MiniRocketClassifier` on TRAIN, predict TEST once.

    `MiniRocketClassifier` is aeon's standard MiniRocket pipeline: the MiniRocket transform
    (10 000 kernels, up to 32 dilations), a `StandardScaler(with_mean=False)` and
    `RidgeClassifierCV(alphas=logspace(-3, 3, 10))`. It runs single-threaded (`n_jobs=1`).

    Args:
        data: a loaded dataset (`ts_dataloader.UCRDataset` or anything with its attributes):
            x_train (n_train, L) and x_test (n_test, L) float arrays, y_train (n_train,) and
            y_test (n_test,) class ids.
        seed: `random_state` of the MiniRocket transform (its kernel biases' random quantiles).

    Returns:
        {"accuracy": fraction of TEST classified correctly, "fit_seconds": wall time of the fit,
         "method": "aeon <version> MiniRocketClassifier", "seed": seed}.

    Raises:
        V2SError: aeon is not installed, or the series are shorter than 9 samples.
    """
    try:
        import aeon
        from aeon.classification.convolution_based import MiniRocketClassifier
    except ImportError:
        raise V2SError("MiniRocket needs aeon: pip install -r requirements-extras.txt") from None
    if seed < 0:
        raise V2SError(f"--seed must be 0 or more, got {seed}")
    x_train, x_test = _as_collection(data.x_train), _as_collection(data.x_test)
    if x_train.shape[2] < MINIROCKET_MIN_LENGTH:
        raise V2SError(f"{data.name}: MiniRocket needs series of at least {MINIROCKET_MIN_LENGTH} samples,"
                       f" got {x_train.shape[2]}")
    classifier = MiniRocketClassifier(n_jobs=1, random_state=seed)
    start = time.perf_counter()
    classifier.fit(x_train, np.asarray(data.y_train))
    fit_seconds = time.perf_counter() - start
    predicted = classifier.predict(x_test)
    return {
        "accuracy": float(np.mean(predicted == np.asarray(data.y_test))),
        "fit_seconds": fit_seconds,
        "method": f"aeon {aeon.__version__} MiniRocketClassifier",
        "seed": seed,
    }


def _as_collection(x) -> np.ndarray:
    """(n, L) univariate series -> aeon's (n, 1, L) float32 collection."""
    return np.asarray(x, dtype=np.float32)[:, None, :]


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(description="Score the MiniRocket baseline on one UCR dataset "
                                                 "(fit on TRAIN, test once on TEST).")
    parser.add_argument("--dataset", required=True, help="original index (see task_list.txt) or a UCR name")
    parser.add_argument("--data-dir", default=None,
                        help="folder of <Name>/<Name>_TRAIN.tsv and _TEST.tsv (default: $V2S_DATA_DIR or Datasets/)")
    parser.add_argument("--seed", type=int, default=0, help="MiniRocket's random_state")
    args = parser.parse_args(argv)
    validation.seed("--seed", args.seed)
    return args


def main(argv=None) -> int:
    import ts_dataloader

    args = parse_args(argv)
    data = ts_dataloader.load_dataset(args.dataset, args.data_dir, download=False)
    print(f"MiniRocket on {data.name}: {len(data.y_train)} train, {len(data.y_test)} test, "
          f"length {data.length}, {data.n_classes} classes, seed {args.seed}")
    result = minirocket(data, seed=args.seed)
    print(f"method={result['method']} fit_seconds={result['fit_seconds']:.2f}")
    print(f"test_accuracy={result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
