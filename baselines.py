"""Non-V2S baselines for the reproduction table: MiniRocket (Dempster, Schmidt & Webb, KDD 2021) and
MultiRocket (Tan, Dempster, Bergmeir & Webb, DMKD 2022).

Each baseline fits on a dataset's TRAIN split only and scores TEST once, as V2S does.

    python baselines.py --dataset ECG200 --data-dir ../shared/ucr --seed 0 --method multirocket

prints a header line and, as its last line, `test_accuracy=<fraction>`. Bad input gives one
`error: ...` line and exit status 2. Both come from `aeon` (requirements-extras.txt; no PyTorch).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import validation
from utils import V2SError, run_cli

MINIROCKET_MIN_LENGTH = 9  # the Rocket family's kernels have 9 taps
METHODS = {"minirocket": "MiniRocketClassifier", "multirocket": "MultiRocketClassifier"}  # aeon's class names


def minirocket(data, seed: int = 0) -> dict:
    """MiniRocket on TRAIN, TEST once: `rocket(data, seed, "minirocket")`."""
    return rocket(data, seed, "minirocket")


def rocket(data, seed: int = 0, method: str = "minirocket") -> dict:
    """Fit aeon's `MiniRocketClassifier` or `MultiRocketClassifier` on TRAIN, predict TEST once.

    Both are aeon's standard pipelines with their default sizes: the transform (MiniRocket: 10 000 kernels,
    up to 32 dilations; MultiRocket: 6 250 kernels on the series and on its first difference, four pooling
    operators each, ~50 000 features), a `StandardScaler(with_mean=False)` and
    `RidgeClassifierCV(alphas=logspace(-3, 3, 10))`. They run single-threaded (`n_jobs=1`).

    Args:
        data: a loaded dataset (`ts_dataloader.UCRDataset` or anything with its attributes):
            x_train (n_train, L) and x_test (n_test, L) float arrays, y_train (n_train,) and
            y_test (n_test,) class ids.
        seed: `random_state` of the MiniRocket transform (its kernel biases' random quantiles).

        method: "minirocket" or "multirocket".

    Returns:
        {"accuracy": fraction of TEST classified correctly, "fit_seconds": wall time of the fit,
         "method": "aeon <version> <class name>", "seed": seed}.

    Raises:
        V2SError: aeon is not installed, an unknown method, or series shorter than 9 samples.
    """
    if method not in METHODS:
        raise V2SError(f"--method {method}: choose {' or '.join(METHODS)}")
    try:
        import aeon
        from aeon.classification import convolution_based
    except ImportError:
        raise V2SError(f"{method} needs aeon: pip install -r requirements-extras.txt") from None
    if seed < 0:
        raise V2SError(f"--seed must be 0 or more, got {seed}")
    x_train, x_test = _as_collection(data.x_train), _as_collection(data.x_test)
    if x_train.shape[2] < MINIROCKET_MIN_LENGTH:
        raise V2SError(
            f"{data.name}: {method} needs series of at least {MINIROCKET_MIN_LENGTH} samples, got {x_train.shape[2]}"
        )
    classifier = getattr(convolution_based, METHODS[method])(n_jobs=1, random_state=seed)
    start = time.perf_counter()
    classifier.fit(x_train, np.asarray(data.y_train))
    fit_seconds = time.perf_counter() - start
    predicted = classifier.predict(x_test)
    return {
        "accuracy": float(np.mean(predicted == np.asarray(data.y_test))),
        "fit_seconds": fit_seconds,
        "method": f"aeon {aeon.__version__} {METHODS[method]}",
        "seed": seed,
    }


def _as_collection(x) -> np.ndarray:
    """(n, L) univariate series -> aeon's (n, 1, L) float32 collection."""
    return np.asarray(x, dtype=np.float32)[:, None, :]


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description="Score a Rocket-family baseline on one UCR dataset (fit on TRAIN, test once on TEST)."
    )
    parser.add_argument("--dataset", required=True, help="original index (see task_list.txt) or a UCR name")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder of <Name>/<Name>_TRAIN.tsv and _TEST.tsv (default: $V2S_DATA_DIR or Datasets/)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the transform's random_state")
    parser.add_argument("--method", default="minirocket", choices=sorted(METHODS), help="which baseline")
    args = parser.parse_args(argv)
    validation.seed("--seed", args.seed)
    validation.data_dir("--data-dir", args.data_dir)
    return args


def main(argv=None) -> int:
    import ts_dataloader

    args = parse_args(argv)
    data = ts_dataloader.load_dataset(args.dataset, args.data_dir, download=False)
    print(
        f"{METHODS[args.method].removesuffix('Classifier')} on {data.name}: {len(data.y_train)} train, {len(data.y_test)} test, "
        f"length {data.length}, {data.n_classes} classes, seed {args.seed}"
    )
    result = rocket(data, seed=args.seed, method=args.method)
    print(f"method={result['method']} fit_seconds={result['fit_seconds']:.2f}")
    print(f"test_accuracy={result['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
