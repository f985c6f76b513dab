"""The frozen source acoustic models (AMs) that Voice2Series reprograms, in one place.

Every AM takes 1 s of audio, a float32 waveform of 16000 samples at 16 kHz in [-1, 1], shape
(batch, 16000), and returns softmax scores over the 36 speech-command classes `SOURCE_CLASSES`.

- "v2sa": the attention-BiLSTM model of de Andrade et al. (2018), whose pretrained weights
  (`model-attRNN.h5`, MIT licence) are the AM that V2S reprogrammed. 201,247 parameters.
- "v2su": the same model with the original V2S code's "U-Net" convolution block. 206,777 parameters.
  No published weights exist for it: `pretrain_am.py --net v2su` trains them (`weight/v2su.weights.h5`).
- "cnn1d": a raw-waveform 1D-CNN after the 2019 lab report's shrinking-channel network (9 Conv1D of
  kernel 5, channels 256 -> 64, BatchNorm, max-pooling after each down to 2 steps, dropout, two dense
  layers), 36 outputs. 1,464,036 parameters. Trained here by `pretrain_am.py --net cnn1d`.
- "cnn1d_small": the lab report's cheaper shrinking-channel network, channels 64 -> 16, otherwise
  built as "cnn1d". 100,788 parameters. Trained here by `pretrain_am.py --net cnn1d_small`.

`pretrain_am.py --net v2sa_local` trains the V2Sa architecture here (distilled from the original);
it is the offline fallback for `--net 0` (`weight/v2sa_local.weights.h5`).

Import `utils` and call `utils.setup_tensorflow()` before importing this module.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf
from kapre.time_frequency import STFT, ApplyFilterbank, Magnitude

import utils
from settings import HOP, N_FFT, N_FRAMES, N_MELS
from utils import SAMPLE_RATE, WAVE_LEN, V2SError

SOURCE_CLASSES: tuple[str, ...] = (
    "_unknown_",
    "nine",
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "backward",
    "bed",
    "bird",
    "cat",
    "dog",
    "follow",
    "forward",
    "happy",
    "house",
    "learn",
    "marvin",
    "sheila",
    "tree",
    "visual",
    "wow",
)
CORE_WORDS: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

AM_ORIGIN = (
    "https://github.com/douglas125/SpeechCmdRecognition/raw/1bbac0da4374590eb1517af01b77052be5407722/model-attRNN.h5"
)
AM_SHA256 = "c73134a09bbc72d169a7d8e875297e72142c3d11f2dc0d95570303c67bdca4d0"
AM_FILENAME = "model-attRNN.h5"

LOG_OFFSET = 1e-6  # log(mel + 1e-6), as the pretrained weights expect
STD_EPSILON = 1e-6  # added to the variance before the square root in the standardisation

_NET_ALIASES = {
    "0": "v2sa",
    "v2sa": "v2sa",
    "3": "v2su",
    "v2su": "v2su",
    "5": "cnn1d",
    "cnn1d": "cnn1d",
    "6": "cnn1d_small",
    "cnn1d_small": "cnn1d_small",
}
_UNAVAILABLE_NETS = {"1": "VGGish with a dense head", "2": "VGGish AudioSet"}


def resolve_net(net: int | str) -> str:
    """The canonical AM name for a `--net` value: 0/"v2sa", 3/"v2su", 5/"cnn1d", 6/"cnn1d_small"
    (case-insensitive).

    Raises:
        V2SError: for the original's VGGish variants (1, 2) and for any other value.
    """
    key = str(net).strip().lower()
    if key in _NET_ALIASES:
        return _NET_ALIASES[key]
    if key in _UNAVAILABLE_NETS:
        raise V2SError(
            f"--net {net} ({_UNAVAILABLE_NETS[key]}) is not available in this re-implementation; "
            "use 0/v2sa, 3/v2su, 5/cnn1d or 6/cnn1d_small"
        )
    raise V2SError(f"unknown --net {net!r}; valid values: 0 or v2sa, 3 or v2su, 5 or cnn1d, 6 or cnn1d_small")


# ----------------------------------------------------------------------------------------------
# Front end layers


@keras.saving.register_keras_serializable(package="v2s")
class TFMelFilterbank(ApplyFilterbank):
    """kapre's `ApplyFilterbank` with TensorFlow's HTK-style mel matrix instead of librosa's.

    kapre builds its matrix only for type 'mel' (librosa, 0.007 off the matrix the pretrained
    weights were trained with) or 'log'; any other type leaves `filterbank` unset, so this
    subclass sets it to `tf.signal.linear_to_mel_weight_matrix`. Its config holds the TF
    arguments, so deserialisation rebuilds the same matrix.

    Input (batch, frames, 513 FFT bins, 1) magnitudes; output (batch, frames, mel bins, 1).
    """

    def __init__(
        self,
        num_mel_bins=N_MELS,
        num_spectrogram_bins=N_FFT // 2 + 1,
        sample_rate=SAMPLE_RATE,
        lower_edge_hertz=40.0,
        upper_edge_hertz=8000.0,
        **kwargs,
    ):
        mel_kwargs = dict(
            num_mel_bins=num_mel_bins,
            num_spectrogram_bins=num_spectrogram_bins,
            sample_rate=sample_rate,
            lower_edge_hertz=lower_edge_hertz,
            upper_edge_hertz=upper_edge_hertz,
        )
        super().__init__(type="tf_mel", filterbank_kwargs=mel_kwargs, data_format="channels_last", **kwargs)
        self.filterbank = tf.signal.linear_to_mel_weight_matrix(**mel_kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ("type", "filterbank_kwargs", "data_format"):
            config.pop(key)
        config.update(self.filterbank_kwargs)
        return config


@keras.saving.register_keras_serializable(package="v2s")
class LogOffset(keras.layers.Layer):
    """Natural log of (x + offset); any shape."""

    def __init__(self, offset=LOG_OFFSET, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return keras.ops.log(x + self.offset)

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@keras.saving.register_keras_serializable(package="v2s")
class PerExampleStandardize(keras.layers.Layer):
    """(x - mean) / sqrt(var + epsilon), mean and variance over all non-batch axes of each example.

    The epsilon keeps a constant input (e.g. an all-zero waveform) finite, gradients included.
    """

    def __init__(self, epsilon=STD_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        axes = tuple(range(1, len(x.shape)))
        mean = keras.ops.mean(x, axis=axes, keepdims=True)
        var = keras.ops.var(x, axis=axes, keepdims=True)
        return (x - mean) / keras.ops.sqrt(var + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="v2s")
class LastTimeStep(keras.layers.Layer):
    """The last step of a sequence: (batch, time, features) -> (batch, features)."""

    def call(self, x):
        return x[:, -1, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def mel_front_end(waveform):
    """Waveform (batch, 16000 samples) -> standardised log-mel (batch, 125 frames, 80 mel bins, 1).

    The last layer is named `mel_stft`: `model.get_layer("mel_stft").output` is the front end's output.
    """
    x = keras.layers.Reshape((WAVE_LEN, 1), name="waveform_channel")(waveform)
    x = STFT(
        n_fft=N_FFT,
        win_length=N_FFT,
        hop_length=HOP,
        window_name="hann_window",
        pad_end=True,
        input_data_format="channels_last",
        output_data_format="channels_last",
        name="stft",
    )(x)
    x = Magnitude(name="magnitude")(x)
    x = TFMelFilterbank(name="mel_filterbank")(x)
    x = LogOffset(name="log_mel")(x)
    return PerExampleStandardize(name="mel_stft")(x)


# ----------------------------------------------------------------------------------------------
# Model bodies


def _conv_bn(x, filters, conv_name, bn_name):
    """Conv2D(filters, (5, 1), relu, same) over (time, mel) then BatchNormalization."""
    x = keras.layers.Conv2D(filters, (5, 1), activation="relu", padding="same", name=conv_name)(x)
    return keras.layers.BatchNormalization(name=bn_name)(x)


def _v2sa_conv_block(mel):
    """(batch, 125, 80, 1) -> (batch, 125, 80, 1): Conv2D(10)+BN, Conv2D(1)+BN."""
    x = _conv_bn(mel, 10, "conv2d", "batch_normalization")
    return _conv_bn(x, 1, "conv2d_1", "batch_normalization_1")


def _v2su_conv_block(mel):
    """(batch, 125, 80, 1) -> (batch, 125, 80, 1): the original V2S code's "U-Net" block.

    Conv2D(16)+BN (`up`), Conv2D(32)+BN, Conv2D(16)+BN (`down`), concatenate(up, down),
    Conv2D(1)+BN; all kernels (5, 1), relu, same padding.
    """
    up = _conv_bn(mel, 16, "conv2d", "batch_normalization")
    x = _conv_bn(up, 32, "conv2d_mid", "batch_normalization_mid")
    down = _conv_bn(x, 16, "conv2d_down", "batch_normalization_down")
    x = keras.layers.Concatenate(axis=-1, name="concat_up_down")([up, down])
    return _conv_bn(x, 1, "conv2d_1", "batch_normalization_1")


def _attention_head(features):
    """(batch, 125 frames, 80, 1) conv features -> (batch, 36) softmax scores.

    2x BiLSTM(64) over frames; the last step of the second is the query (Dense 128) of a dot
    attention (`attSoftmax`, weights over frames) whose context feeds Dense(64, relu), Dense(32),
    Dense(36, softmax, `output`).
    """
    x = keras.layers.Reshape((N_FRAMES, N_MELS), name="squeeze_last_dim")(features)
    x = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True), name="bidirectional")(x)
    seq = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True), name="bidirectional_1")(x)
    query = keras.layers.Dense(128, name="dense")(LastTimeStep(name="last_step")(seq))
    scores = keras.layers.Dot(axes=[1, 2], name="dot")([query, seq])
    weights = keras.layers.Softmax(name="attSoftmax")(scores)
    context = keras.layers.Dot(axes=[1, 1], name="dot_1")([weights, seq])
    x = keras.layers.Dense(64, activation="relu", name="dense_1")(context)
    x = keras.layers.Dense(32, name="dense_2")(x)
    return keras.layers.Dense(len(SOURCE_CLASSES), activation="softmax", name="output")(x)


_CONV_BLOCKS = {"v2sa": _v2sa_conv_block, "v2su": _v2su_conv_block}


def build_am(name: str) -> keras.Model:
    """A randomly initialised AM: (batch, 16000) float32 waveform at 16 kHz -> (batch, 36) softmax.

    Layer names follow the original Keras-2 model (`conv2d`, `conv2d_1`, `bidirectional`, ...,
    `attSoftmax`, `output`) so its weights load by name; `mel_stft` ends the front end.
    """
    name = resolve_net(name)
    waveform = keras.Input((WAVE_LEN,), dtype="float32", name="input")
    if name in WAVEFORM_NETS:
        return keras.Model(waveform, _cnn1d_body(waveform, *WAVEFORM_NETS[name]), name=name)
    features = _CONV_BLOCKS[name](mel_front_end(waveform))
    return keras.Model(waveform, _attention_head(features), name=name)


def build_body(name: str) -> keras.Model:
    """The AM without its front end: standardised log-mel (batch, 125, 80, 1) -> (batch, 36) softmax.

    Only for the mel models ("v2sa", "v2su"). Its layers have the names of `build_am(name)`'s, so
    weights move between the two with `copy_weights_by_name` (the front end has no weights);
    training on cached features uses it.
    """
    name = resolve_net(name)
    if name in WAVEFORM_NETS:
        raise V2SError(f"{name} has no mel front end: it takes the raw waveform")
    mel = keras.Input((N_FRAMES, N_MELS, 1), dtype="float32", name="mel_input")
    return keras.Model(mel, _attention_head(_CONV_BLOCKS[name](mel)), name=f"{name}_body")


def copy_weights_by_name(source: keras.Model, target: keras.Model, layers=None) -> list[str]:
    """Copy the weights of every weighted layer of `target` (or of `layers`) that `source` has by name.

    Returns the names of the layers copied. Raises V2SError on a shape mismatch.
    """
    have = {layer.name: layer for layer in source.layers if layer.weights}
    copied = []
    for layer in target.layers:
        if not layer.weights or layer.name not in have or (layers is not None and layer.name not in layers):
            continue
        values = have[layer.name].get_weights()
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise V2SError(f"layer {layer.name!r}: shapes differ between {source.name!r} and {target.name!r}")
        layer.set_weights(values)
        copied.append(layer.name)
    return copied


# The raw-waveform networks: channels and pool sizes of their 9 Conv1D(kernel 5) blocks. 16000
# samples / (5*5*5*2^6 = 8000) leave 2 steps x the last channel count (cnn1d 128 features,
# cnn1d_small 32), as in the lab report.
CNN1D_POOLS = (5, 5, 5, 2, 2, 2, 2, 2, 2)
WAVEFORM_NETS = {  # name -> (channels per block, pools per block)
    "cnn1d": ((256, 256, 256, 256, 128, 128, 128, 128, 64), CNN1D_POOLS),
    "cnn1d_small": ((64, 64, 64, 64, 32, 32, 32, 32, 16), CNN1D_POOLS),
}
CNN1D_DROPOUT = 0.25


def _cnn1d_body(waveform, channels_per_block, pools):
    """(batch, 16000) -> (batch, 36): the lab report's shrinking-channel raw-waveform 1D-CNN.

    `waveform_norm` standardises each clip (mean 0, variance 1) so the network, like the mel AMs,
    ignores the input's gain. Then 9 x [Conv1D(c, 5, relu, same) `conv1d_<i>` -> BatchNorm `bn_<i>`
    -> MaxPooling1D `pool_<i>`] (c from `channels_per_block`, pool sizes from `pools`), Flatten
    (2 steps x the last c), Dropout(0.25), Dense(128, relu) `dense_1`, Dropout(0.25), Dense(36,
    softmax) `output`. For Grad-CAM the last convolution is `conv1d_9` (feature maps over time, no
    mel axis).
    """
    x = keras.layers.Reshape((WAVE_LEN, 1), name="waveform_channel")(waveform)
    x = PerExampleStandardize(name="waveform_norm")(x)
    for i, (channels, pool) in enumerate(zip(channels_per_block, pools, strict=True), start=1):
        x = keras.layers.Conv1D(channels, 5, padding="same", activation="relu", name=f"conv1d_{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn_{i}")(x)
        x = keras.layers.MaxPooling1D(pool, name=f"pool_{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(CNN1D_DROPOUT, name="dropout_1")(x)
    x = keras.layers.Dense(128, activation="relu", name="dense_1")(x)
    x = keras.layers.Dropout(CNN1D_DROPOUT, name="dropout_2")(x)
    return keras.layers.Dense(len(SOURCE_CLASSES), activation="softmax", name="output")(x)


# ----------------------------------------------------------------------------------------------
# Weights


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
        raise V2SError(f"{path}: cannot read as a Keras HDF5 weights file ({_one_line(err)})") from None
    if legacy:
        _assign_legacy(model, stored, path)
    elif path.name.endswith(".weights.h5"):
        _load_keras3_weights(model, path)
    else:
        raise V2SError(f"{path}: HDF5 file without Keras weights (no layer_names; not a .weights.h5 file)")


def _one_line(err: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, without Keras's dump of variable values, at most `limit` chars."""
    text = " ".join(str(err).split()).split(" Target variable:")[0] or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        raise V2SError(f"{path}: cannot load into model {model.name!r} ({_one_line(err)})") from None


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
    name = resolve_net(net)
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
        raise V2SError(f"download from {origin} failed: {_one_line(err)}") from err


def load_am(net, am_weights: str | None = None) -> tuple[keras.Model, AMInfo]:
    """Build an AM and load its weights (found by `find_weights`).

    Returns:
        the model, (batch, 16000) waveform -> (batch, 36) softmax, and where its weights came from.
        Callers that keep it frozen set `model.trainable = False` (BatchNorm then runs in inference mode).
    """
    name = resolve_net(net)
    path, source = find_weights(name, am_weights)
    model = build_am(name)
    load_weights(model, path)
    sha = utils.sha256_of(path)
    return model, AMInfo(name=name, path=str(path), sha256=sha, source=source, original=sha == AM_SHA256)


# ----------------------------------------------------------------------------------------------
# Speech-Commands folders


def read_wav(path: str | os.PathLike) -> np.ndarray:
    """A whole WAV file as float32 samples in [-1, 1] at 16 kHz, (n,).

    Other rates are resampled (`scipy.signal.resample_poly`); several channels are averaged.
    """
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    try:
        rate, data = wavfile.read(path)
    except (OSError, ValueError) as err:
        raise V2SError(f"{path}: not a readable WAV file ({_one_line(err)})") from None
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        samples = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    else:
        samples = data.astype(np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE:
        g = math.gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return samples


def read_clip(path: str | os.PathLike) -> np.ndarray:
    """A WAV clip as `read_wav` reads it, cut or zero-padded at the end to 16000 samples (1 s)."""
    samples = read_wav(path)
    clip = np.zeros(WAVE_LEN, np.float32)
    clip[: min(len(samples), WAVE_LEN)] = samples[:WAVE_LEN]
    return clip


def scan_folder(folder: str | os.PathLike) -> tuple[list[tuple[Path, int]], list[str]]:
    """The clips of a Speech-Commands-layout folder and the entries it skips.

    Reads folder/<word>/*.wav for the 35 words of `SOURCE_CLASSES` and folder/_unknown_/*.wav (class 0).

    Returns:
        [(wav path, class index)] sorted by class then name, and the names of other top-level entries.

    Raises:
        V2SError: the folder does not exist or holds no clip.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise V2SError(f"{folder}: no such directory")
    clips, skipped = [], []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and entry.name in SOURCE_CLASSES:
            label = SOURCE_CLASSES.index(entry.name)
            clips += [(wav, label) for wav in sorted(entry.glob("*.wav"))]
        else:
            skipped.append(entry.name)
    if not clips:
        raise V2SError(f"{folder}: no .wav clips in <word>/ folders named after the 36 source classes")
    clips.sort(key=lambda item: item[1])
    return clips, skipped


def predict_clips(model, paths, batch_size: int = 64) -> np.ndarray:
    """Argmax class of `model` on each WAV clip of `paths` (read with `read_clip`), int (n_clips,)."""
    from tqdm import tqdm

    predicted = np.empty(len(paths), dtype=int)
    with tqdm(total=len(paths), unit="clip", desc="scoring", disable=None, file=sys.stderr) as bar:
        for start in range(0, len(paths), batch_size):
            batch = np.stack([read_clip(path) for path in paths[start : start + batch_size]])
            predicted[start : start + len(batch)] = np.argmax(model.predict_on_batch(batch), axis=1)
            bar.update(len(batch))
    return predicted


def accuracies(labels: np.ndarray, predicted: np.ndarray) -> dict:
    """accuracy_36 (all clips), accuracy_core10 and n_core10 (clips of the 10 `CORE_WORDS`; nan if none)."""
    right = predicted == labels
    core = np.isin(labels, [SOURCE_CLASSES.index(word) for word in CORE_WORDS])
    return {
        "accuracy_36": float(right.mean()),
        "accuracy_core10": float(right[core].mean()) if core.any() else float("nan"),
        "n_core10": int(core.sum()),
    }


def predict_folder(model, folder, batch_size=64) -> dict:
    """Score an AM on a Speech-Commands-layout folder (see `scan_folder`).

    Returns a dict with
        labels, predicted: int arrays (n_clips,), true and argmax class indices;
        per_class: {class name: {"n": clips, "correct": right 36-way}} for classes with clips;
        skipped: top-level entries that are not class folders;
        accuracy_36: fraction right over all clips;
        accuracy_core10, n_core10: the same over clips of the 10 `CORE_WORDS` folders (nan if none).
    """
    clips, skipped = scan_folder(folder)
    labels = np.array([label for _, label in clips])
    predicted = predict_clips(model, [path for path, _ in clips], batch_size)
    right = predicted == labels
    per_class = {
        SOURCE_CLASSES[c]: {"n": int(np.sum(labels == c)), "correct": int(np.sum(right[labels == c]))}
        for c in np.unique(labels)
    }
    return {
        "labels": labels,
        "predicted": predicted,
        "per_class": per_class,
        "skipped": skipped,
        **accuracies(labels, predicted),
    }
