"""The weights of the source acoustic models: reading weight files, finding or fetching them, loading an AM.

- `load_weights` reads the legacy Keras-2 h5 of the original V2Sa (`model-attRNN.h5`, a full model or
  weights, matched by layer name, each variable by role and direction) and Keras 3 `.weights.h5` files.
- `find_weights` says which file an AM would load and how it was found (`AMInfo.source`): the original
  V2Sa from --am-weights, $V2S_AM_DIR, weight/, the Keras cache or a download checked by sha256 (`AM_ORIGIN`,
  `AM_SHA256`); the AMs trained here from weight/<name>.weights.h5.
- `load_am` builds the AM (`speech_models.build_am`: (batch, 16000) waveform at 16 kHz -> (batch, 36)
  softmax) and loads its weights.

Import `utils` and call `utils.setup_tensorflow()` before importing this module.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np

import utils
from speech_models import build_am
from utils import V2SError, one_line
from validation import net_name

AM_ORIGIN = (
    "https://github.com/douglas125/SpeechCmdRecognition/raw/1bbac0da4374590eb1517af01b77052be5407722/model-attRNN.h5"
)
AM_SHA256 = "c73134a09bbc72d169a7d8e875297e72142c3d11f2dc0d95570303c67bdca4d0"
AM_FILENAME = "model-attRNN.h5"


def load_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Load weights into `model` from a Keras-2 h5 (full model or weights) or a Keras 3 `.weights.h5`.

    Keras-2 files are matched by layer name, each variable by role and direction, and every
    shape is checked before any weight is set: either all weighted layers load or none does.

    Raises:
        V2SError: one line naming the file and the problem (missing, not HDF5, truncated,
            other layers, wrong shapes).
    """
    path = Path(path)
    if not path.is_file():
        raise V2SError(f"{path}: no such weights file")
    try:
        with h5py.File(path, "r") as fh:
            legacy = "model_weights" in fh or "layer_names" in fh.attrs
            stored = _read_legacy_h5(fh) if legacy else None
    except (OSError, KeyError, ValueError) as err:
        raise V2SError(f"{path}: cannot read as a Keras HDF5 weights file ({one_line(err)})") from None
    if legacy:
        _assign_legacy(model, stored, path)
    elif path.name.endswith(".weights.h5"):
        _load_keras3_weights(model, path)
    else:
        raise V2SError(f"{path}: HDF5 file without Keras weights (no layer_names; not a .weights.h5 file)")


def _read_legacy_h5(fh: h5py.File) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{layer name: [(variable name, array), ...] in the group's `weight_names` order}, weighted layers only."""
    group = fh["model_weights"] if "model_weights" in fh else fh
    stored = {}
    for layer in _decode(group.attrs["layer_names"]):
        names = _decode(group[layer].attrs["weight_names"])
        if names:
            stored[layer] = [(name, np.asarray(group[layer][name])) for name in names]
    return stored


def _decode(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _role(variable_path: str) -> tuple[str, str]:
    """(direction, role) of a variable: ("backward", "kernel") for 'bidirectional/backward_lstm/.../kernel:0'."""
    parts = variable_path.split(":")[0].split("/")
    direction = next((d for d in ("forward", "backward") if any(p.startswith(d) for p in parts)), "")
    return direction, parts[-1]


def _assign_legacy(model: keras.Model, stored: dict, path: Path) -> None:
    """Check every weighted layer of `model` against `stored` (see `_read_legacy_h5`), then set all."""
    weighted = {layer.name: layer for layer in model.layers if layer.weights}
    missing = sorted(set(weighted) - set(stored))
    extra = sorted(set(stored) - set(weighted))
    if missing or extra:
        raise V2SError(
            f"{path}: layers do not match model {model.name!r} "
            f"(missing in file: {', '.join(missing) or 'none'}; not in model: {', '.join(extra) or 'none'})"
        )
    plan = []
    for name, layer in weighted.items():
        arrays = {_role(var_name): array for var_name, array in stored[name]}
        if len(arrays) != len(stored[name]) or set(arrays) != {_role(v.path) for v in layer.weights}:
            raise V2SError(
                f"{path}: layer {name!r} stores {[n for n, _ in stored[name]]}, "
                f"the model needs {[v.path for v in layer.weights]}"
            )
        for variable in layer.weights:
            array = arrays[_role(variable.path)]
            if tuple(array.shape) != tuple(variable.shape):
                raise V2SError(
                    f"{path}: {variable.path} has shape {tuple(array.shape)} in the file, "
                    f"{tuple(variable.shape)} in the model"
                )
            plan.append((variable, array))
    for variable, array in plan:
        variable.assign(array)


def _load_keras3_weights(model: keras.Model, path: Path) -> None:
    """`model.load_weights(path)`; on failure the weights are restored and a one-line V2SError raised.

    (Keras loads every layer it can before it reports the ones it could not.)
    """
    before = [variable.numpy() for variable in model.weights]
    try:
        model.load_weights(str(path))
    except (OSError, KeyError, ValueError, TypeError) as err:
        for variable, value in zip(model.weights, before):
            variable.assign(value)
        raise V2SError(f"{path}: cannot load into model {model.name!r} ({one_line(err)})") from None


@dataclass
class AMInfo:
    """Where an AM's weights came from.

    source: "argument", "env" ($V2S_AM_DIR), "weight_dir" (weight/), "keras_cache", "download"
    or "local_fallback". original: the weights are the published model-attRNN.h5 (by sha256).
    """

    name: str
    path: str | None
    sha256: str | None
    source: str
    original: bool


def _keras_cache_dir() -> Path:
    """The directory `keras.utils.get_file` caches into: $KERAS_HOME or ~/.keras if writable, else /tmp/.keras."""
    home = Path(os.environ.get("KERAS_HOME") or Path("~/.keras").expanduser())
    return home if os.access(home, os.W_OK) else Path("/tmp/.keras")


def _am_origin() -> str:
    return os.environ.get("V2S_AM_ORIGIN") or AM_ORIGIN


def find_weights(net: int | str, am_weights: str | None = None) -> tuple[Path, str]:
    """The weights file an AM would load and how it was found (see `AMInfo.source`).

    For "v2sa", in order: `am_weights`, $V2S_AM_DIR/model-attRNN.h5, weight/model-attRNN.h5, the
    Keras cache (if its sha256 is right), a download from $V2S_AM_ORIGIN or `AM_ORIGIN` checked
    against `AM_SHA256`, then weight/v2sa_local.weights.h5 (with a note on stderr).
    For the others: `am_weights` or weight/<name>.weights.h5.

    Raises:
        V2SError: nothing found; the message says where to put the file.
    """
    name = net_name(net)
    if am_weights is not None:
        if not Path(am_weights).is_file():
            raise V2SError(f"--am-weights {am_weights}: no such file")
        return Path(am_weights), "argument"
    weight_dir = utils.PROJECT_DIR / "weight"
    if name != "v2sa":
        path = weight_dir / f"{name}.weights.h5"
        if path.is_file():
            return path, "weight_dir"
        raise V2SError(
            f"{name}: no trained weights at {path}; this AM has not been trained/shipped yet: "
            f"make them with `python pretrain_am.py --net {name}` or pass --am-weights PATH"
        )
    env_dir = os.environ.get("V2S_AM_DIR")
    if env_dir and (Path(env_dir) / AM_FILENAME).is_file():
        return Path(env_dir) / AM_FILENAME, "env"
    if (weight_dir / AM_FILENAME).is_file():
        return weight_dir / AM_FILENAME, "weight_dir"
    cached = _keras_cache_dir() / "models" / AM_FILENAME
    if cached.is_file() and utils.sha256_of(cached) == AM_SHA256:
        return cached, "keras_cache"
    origin = _am_origin()
    try:
        return _download(origin), "download"
    except V2SError as err:
        failure = str(err)
    fallback = weight_dir / "v2sa_local.weights.h5"
    if fallback.is_file():
        print(
            f"note: the original V2Sa weights ({AM_FILENAME}) were not found ({failure}); "
            f"using the locally trained fallback {fallback}",
            file=sys.stderr,
        )
        return fallback, "local_fallback"
    raise V2SError(
        f"the original V2Sa weights {AM_FILENAME} were not found ({failure}); put the file in "
        f"$V2S_AM_DIR or {weight_dir}/, or pass --am-weights PATH; origin: {origin} (sha256 {AM_SHA256})"
    )


def _download(origin: str) -> Path:
    """Fetch model-attRNN.h5 into the Keras cache and check its sha256; a bad copy is deleted."""
    cache_dir = _keras_cache_dir()
    try:
        return Path(
            keras.utils.get_file(
                AM_FILENAME, origin, file_hash=AM_SHA256, cache_subdir="models", cache_dir=str(cache_dir)
            )
        )
    except ValueError as err:  # get_file's sha256 mismatch: it leaves the bad file behind
        (cache_dir / "models" / AM_FILENAME).unlink(missing_ok=True)
        raise V2SError(f"download from {origin} refused: sha256 is not {AM_SHA256}") from err
    except Exception as err:  # noqa: BLE001  (get_file re-raises URL errors as bare Exception)
        raise V2SError(f"download from {origin} failed: {one_line(err)}") from err


def load_am(net, am_weights: str | None = None) -> tuple[keras.Model, AMInfo]:
    """Build an AM and load its weights (found by `find_weights`).

    Returns:
        the model, (batch, 16000) waveform -> (batch, 36) softmax, and where its weights came from.
        Callers that keep it frozen set `model.trainable = False` (BatchNorm then runs in inference mode).
    """
    name = net_name(net)
    path, source = find_weights(name, am_weights)
    model = build_am(name)
    load_weights(model, path)
    sha = utils.sha256_of(path)
    return model, AMInfo(name=name, path=str(path), sha256=sha, source=source, original=sha == AM_SHA256)
