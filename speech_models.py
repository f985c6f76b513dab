"""The architectures of the frozen source acoustic models (AMs) that Voice2Series reprograms.

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

This module builds the models (`build_am`, `build_body`) with random weights and names the classes;
`validation.net_name` reads a `--net` value. `am_weights` finds and loads their weights; `speech_data`
reads and scores Speech-Commands folders.

Import `utils` and call `utils.setup_tensorflow()` before importing this module.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from kapre.time_frequency import STFT, ApplyFilterbank, Magnitude

from settings import HOP, N_FFT, N_FRAMES, N_MELS
from utils import SAMPLE_RATE, WAVE_LEN, V2SError
from validation import net_name

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

LOG_OFFSET = 1e-6  # log(mel + 1e-6), as the pretrained weights expect
STD_EPSILON = 1e-6  # added to the variance before the square root in the standardisation

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
    name = net_name(name)
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
    name = net_name(name)
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
