"""A faster, mathematically identical forward/backward pass of the frozen mel AMs (V2Sa, V2Su) for training.

V2S trains only the program theta; the AM is frozen. Keras 3 on CPU has no fused LSTM kernel: each
`Bidirectional(LSTM(64))` runs two generic while-loops of 125 LSTMCell steps, and autodiff builds a
backward loop that also computes gradients nobody needs. `accelerate(am)` returns a model with the
same input (batch, 16000) and output (batch, 36) that computes the same function with

- the input projections x·W of all 125 steps and both directions in one large matmul per layer (only
  h·U + b stays in the recurrence);
- each direction's recurrence its own XLA loop (the backward one runs from the last step back, so no
  sequence is reversed) so that TensorFlow's two inter-op threads run both at once;
- a hand-written backward pass (`tf.custom_gradient`) that computes only what theta's gradient needs:
  the gradient w.r.t. the LSTM inputs (the weights are frozen: no dW, dU, db), with x-gradients of all
  steps again in one large matmul;
- the recurrences compiled with XLA (`jit_compile`), which fuses each step's element-wise gate maths;
- the AM's own conv block (BatchNorm in inference mode), mel matrix and attention head on its variables.

`FastV2S` / `accelerate_v2s(v2s)` (the default training path of `v2s_main.py`) also uses that the STFT
is linear: STFT(x + theta) = STFT(x) + STFT(theta), so theta's STFT and the STFT's backward pass run
once per step, not once per series, and the series' STFT (no gradient) only on their non-zero frames;
on the other frames every series has theta's spectrum, so its magnitude, mel matrix and log run once
per program (`FastBody.reprogrammed_mel`).

The maths is unchanged (float32 throughout); see `tests/test_fast_path.py` for the tolerances checked
(probabilities within 1e-5, theta-gradients within 1e-4 relative, on the original weights). The opt-in
`precision="bf16"` (`settings.PRECISIONS`) computes the large products in bfloat16 instead: not the same function
to float32 rounding, so it is judged on accuracy (docs/performance.md).

The returned model *reads the AM's variables* (no copy): its `weights`, `get_weights()` order and the
layout `save_weights` writes are the AM's own, so a V2S model built on the accelerated AM saves and
loads exactly like one built on the original. Layer look-ups (`get_layer`, `layers`) return the AM's
layers, but those layers are not on the accelerated model's computation path: Grad-CAM, t-SNE, logit
and SWD tools must use the ORIGINAL AM (accelerate only inside training). The AM must be frozen
(V2S `--mod 0/1`); fine-tuning it (`--mod 2`) needs the original model.

Other AMs (cnn1d, anything without the mel/BiLSTM/attention layers) are returned unchanged.
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from settings import DEFAULT_PRECISION, HOP, N_FRAMES, PRECISIONS
from utils import WAVE_LEN

# Layers the accelerated body reads by name (those of speech_models.build_am("v2sa"/"v2su")).
_REQUIRED = (
    "stft",
    "mel_filterbank",
    "log_mel",
    "mel_stft",
    "conv2d",
    "batch_normalization_1",
    "bidirectional",
    "bidirectional_1",
    "dense",
    "dense_1",
    "dense_2",
    "output",
)

# How the two BiLSTMs run: "fused" (the XLA recurrences below) or "keras" (the AM's own Bidirectional
# layers). Measured in benchmarks/throughput.py (docs/performance.md); multi_program picks per stack size.
LSTM_MODES = ("fused", "keras")


def is_supported(am) -> bool:
    """True for the mel-spectrogram + BiLSTM-attention AMs (V2Sa, V2Su) that `accelerate` speeds up."""
    names = {layer.name for layer in getattr(am, "layers", [])}
    if not set(_REQUIRED) <= names:
        return False
    for name in ("bidirectional", "bidirectional_1"):
        layer = am.get_layer(name)
        for cell in (layer.forward_layer.cell, layer.backward_layer.cell):
            if (
                keras.activations.serialize(cell.activation) != "tanh"
                or keras.activations.serialize(cell.recurrent_activation) != "sigmoid"
                or not cell.use_bias
            ):
                return False
        if layer.merge_mode != "concat" or not layer.forward_layer.return_sequences:
            return False
    return True


def accelerate(am, **options):
    """The fast training path of a frozen mel AM: same input (batch, 16000) and output (batch, 36).

    Args:
        am: a V2Sa/V2Su model from `speech_models.build_am`/`am_weights.load_am` (weights loaded). Other models
            are returned unchanged.
        options: `lstm` ("fused", the default, or "keras": the AM's own Bidirectional layers), see
            `FastBody`.
    Returns:
        an `AcceleratedAM` (a `keras.Model`) sharing the AM's variables, or `am` itself if unsupported.
        It is non-trainable; BatchNorm runs in inference mode whatever `training` says.
    """
    if isinstance(am, AcceleratedAM) or not is_supported(am):
        return am
    return AcceleratedAM(am, **options)


# ----------------------------------------------------------------------------------------------
# Building blocks (pure TensorFlow, float32)


def _low(x, precision):
    """An operand of a large product in the compute precision (`PRECISIONS`)."""
    return tf.cast(x, tf.bfloat16) if precision == "bf16" else x


def _matmul(a, b, precision, **kwargs):
    """tf.matmul in the compute precision (in bf16 the product is bfloat16 too), cast to float32."""
    return tf.cast(tf.matmul(_low(a, precision), _low(b, precision), **kwargs), tf.float32)


def _conv2d(x, kernel, precision):
    """tf.nn.conv2d (stride 1, `same`) in the compute precision, the result cast to float32."""
    return tf.cast(tf.nn.conv2d(_low(x, precision), _low(kernel, precision), 1, "SAME"), tf.float32)


def log_mel(magnitude, mel_matrix, log_offset, precision=DEFAULT_PRECISION):
    """|STFT| (..., 513) -> log(|STFT| . mel_matrix + offset) (..., 80), kapre's log-mel."""
    return tf.math.log(_matmul(magnitude, mel_matrix, precision) + log_offset)


def standardise(logmel, std_eps):
    """(log-mel - mean) / sqrt(var + eps) over each example's (frames, mel), as the AM's `mel_stft` layer."""
    mean, var = tf.nn.moments(logmel, axes=[-2, -1], keepdims=True)
    return (logmel - mean) * tf.math.rsqrt(var + std_eps)


def _t(variable):
    """A Keras variable's current value as a tf.Tensor."""
    return tf.convert_to_tensor(variable)


def lstm_weights(bidirectional):
    """A Bidirectional LSTM layer's frozen weights in the fused layout, gates reordered (i, f, o, g):

    w (D, 8H): both directions' input kernels side by side (forward first), so x.W of every step and
    both directions is one matmul; u (2, H, 4H) and its transpose u_t (2, 4H, H) for the backward pass;
    b (2, 4H). Keras orders the gates (i, f, c, o); with (i, f, o, g) the three sigmoids are one slice.
    """
    cells = (bidirectional.forward_layer.cell, bidirectional.backward_layer.cell)
    units = cells[0].units
    order = tf.concat([tf.range(2 * units), tf.range(3 * units, 4 * units), tf.range(2 * units, 3 * units)], 0)
    w = tf.concat([tf.gather(_t(c.kernel), order, axis=1) for c in cells], axis=1)
    u = tf.stack([tf.gather(_t(c.recurrent_kernel), order, axis=1) for c in cells])
    b = tf.stack([tf.gather(_t(c.bias), order) for c in cells])
    return w, u, tf.transpose(u, (0, 2, 1)), b


def _time(s, steps, direction):
    """The time index of a direction's s-th recurrence step (direction 1 runs from the last frame back)."""
    return s if direction == 0 else steps - 1 - s


def _lstm_cell(z, c, units):
    """One LSTM step from its pre-activations z (B, 4H), gates ordered (i, f, o, g), and the cell state
    c (B, H): returns sigmoid(i, f, o) (B, 3H), g (B, H), the new c and h (B, H)."""
    ifo = 0.5 + 0.5 * tf.tanh(0.5 * z[:, : 3 * units])  # sigmoid, as XLA computes it fastest on CPU
    g = tf.tanh(z[:, 3 * units :])
    c = ifo[:, units : 2 * units] * c + ifo[:, :units] * g
    return ifo, g, c, ifo[:, 2 * units :] * tf.tanh(c)


def _recurrence_forward(zx, u, b, direction, keep_states=True):
    """One direction of a fused LSTM layer, all steps: zx (T, B, 8H) both directions' x.W (`lstm_weights`
    layout), u (H, 4H), b (4H,) of `direction` (0: forward, 1: from the last step back).

    Returns h (T, B, H) and, with `keep_states`, the states the backward pass needs, (T, B, 5H):
    sigmoid(i, f, o), g and c, each indexed by time (not by step), so no sequence is ever reversed."""
    steps, units = zx.shape[0], u.shape[0]
    columns = slice(direction * 4 * units, (direction + 1) * 4 * units)
    h = tf.zeros_like(zx[0, :, :units])

    def body(s, h, c, hs, *states):
        t = _time(s, steps, direction)
        z = tf.gather(zx, t)[:, columns] + b + tf.matmul(h, u)  # (zx[t, :, columns] gives wrong values under XLA)
        ifo, g, c, h = _lstm_cell(z, c, units)
        kept = (states[0].write(t, tf.concat([ifo, g, c], axis=-1)),) if keep_states else ()
        return (s + 1, h, c, hs.write(t, h), *kept)

    arrays = [tf.TensorArray(zx.dtype, size=steps) for _ in range(1 + keep_states)]
    _, _, _, *arrays = tf.while_loop(lambda s, *_: s < steps, body, (0, h, h, *arrays))
    return tuple(a.stack() for a in arrays)


def _recurrence_backward(dh_out, states, u_t, direction):
    """Backpropagation through time of one direction, for its input projections only.

    dh_out (T, B, 2H): dL/d(layer output), both directions side by side; states as `_recurrence_forward`
    returned them; u_t (4H, H). Returns dL/dz (T, B, 4H), indexed by time."""
    steps, units = states.shape[0], u_t.shape[1]
    dh_own = dh_out[..., direction * units : (direction + 1) * units]
    c = states[..., 4 * units :]
    zeros = tf.zeros_like(c[0])
    # c of the step before, in the direction's own order (zeros before its first step)
    c_prev = tf.concat([zeros[None], c[:-1]], 0) if direction == 0 else tf.concat([c[1:], zeros[None]], 0)

    def body(s, dh, dc, dzs):
        t = _time(s, steps, direction)
        state = states[t]
        i, f, o = state[:, :units], state[:, units : 2 * units], state[:, 2 * units : 3 * units]
        g, tc = state[:, 3 * units : 4 * units], tf.tanh(state[:, 4 * units :])
        dh = dh_own[t] + dh
        dc = dc + dh * o * (1.0 - tc * tc)
        dz = tf.concat(
            [dc * g * i * (1.0 - i), dc * c_prev[t] * f * (1.0 - f), dh * tc * o * (1.0 - o), dc * i * (1.0 - g * g)],
            axis=-1,
        )
        return s - 1, tf.matmul(dz, u_t), dc * f, dzs.write(t, dz)

    array = tf.TensorArray(states.dtype, size=steps)
    _, _, _, dzs = tf.while_loop(lambda s, *_: s >= 0, body, (steps - 1, zeros, zeros, array))
    return dzs.stack()


def make_bilstm(precision=DEFAULT_PRECISION):
    """A frozen-weights Bidirectional(LSTM, return_sequences, concat) op:
    (x (B,T,D), w, u, u_t, b, keep_states) -> (B,T,2H).

    w, u, u_t, b as `lstm_weights` returns them. The gradient is taken w.r.t. x only (the weights are
    frozen constants of the AM). x.W + b of every step and both directions is one (T*B, D) x (D, 8H)
    matmul, and the input gradient one (T*B, 8H) x (8H, D) matmul; each direction's recurrence is its own
    XLA-compiled while-loop, so TensorFlow's inter-op threads run the two at once; the backward direction
    runs its loop from the last step back instead of reversing sequences. The batch is padded to a
    multiple of 32 so that XLA compiles once per shape. `precision` is that of the two matmuls.
    With `keep_states` (training) the forward loops keep the states the backward pass reads; without
    (evaluation: usually no gradient) they keep only h, and a gradient, if one is asked for, runs the
    forward loops again first.
    """
    fwd = tf.function(_recurrence_forward, jit_compile=True, autograph=False)
    fwd_h = tf.function(functools.partial(_recurrence_forward, keep_states=False), jit_compile=True, autograph=False)
    bwd = tf.function(_recurrence_backward, jit_compile=True, autograph=False)

    def bilstm(x, w, u, u_t, b, keep_states=True):
        w, u, u_t, b = (tf.stop_gradient(v) for v in (w, u, u_t, b))
        steps, depth = x.shape[1], x.shape[2]

        @tf.custom_gradient
        def op(x):
            batch = tf.shape(x)[0]
            # time-major (T, B', D), B' = B padded to a multiple of 32 (pad the narrow input, not the projections)
            x_tm = tf.transpose(tf.pad(x, [[0, (-batch) % 32], [0, 0], [0, 0]]), (1, 0, 2))
            padded = tf.shape(x_tm)[1]
            zx = tf.stop_gradient(tf.reshape(_matmul(tf.reshape(x_tm, (-1, depth)), w, precision), (steps, padded, -1)))
            loop = fwd if keep_states else fwd_h
            parts = [loop(zx, u[n], b[n], n) for n in (0, 1)]  # one XLA loop per direction
            out = tf.transpose(tf.concat([parts[0][0], parts[1][0]], -1), (1, 0, 2))[:batch]  # (B, T, 2H)

            def grad(dout):
                states = [p[1] for p in parts] if keep_states else [fwd(zx, u[n], b[n], n)[1] for n in (0, 1)]
                dh = tf.transpose(tf.pad(dout, [[0, (-batch) % 32], [0, 0], [0, 0]]), (1, 0, 2))  # (T, B', 2H)
                dz = tf.concat([bwd(dh, states[n], u_t[n], n) for n in (0, 1)], -1)  # (T, B', 8H)
                dx = tf.reshape(
                    _matmul(tf.reshape(dz, (-1, dz.shape[-1])), w, precision, transpose_b=True), (steps, padded, depth)
                )
                return tf.transpose(dx, (1, 0, 2))[:batch]

            return out, grad

        return op(x)

    return bilstm


def batchnorm_affine(bn):
    """An inference-mode BatchNormalization as (scale, shift): y = x * scale + shift, per channel."""
    scale = _t(bn.gamma) * tf.math.rsqrt(_t(bn.moving_variance) + bn.epsilon)
    return scale, _t(bn.beta) - _t(bn.moving_mean) * scale


def folded_conv_block(mel, conv, bn, conv_1, bn_1, precision=DEFAULT_PRECISION):
    """V2Sa's conv block with the first BatchNorm folded into the second convolution: (B, 125, 80) -> same.

    The block is BN_1(relu(conv_1(BN(relu(conv(x)))))), kernels (5, 1) over frames, `same` zero padding.
    BN is per channel affine (a frozen AM: inference mode), so conv_1(BN(h)) = conv_1'(h) + bias[t] with
    conv_1' = conv_1's kernel times BN's scale, and bias[t] = conv_1's bias + the sum of conv_1's taps
    times BN's shift over the taps that fall inside the frames (the zero padding is BN's output, not its
    input: at the first and last two frames fewer taps count). One pass over the (B, 125, 80, 10)
    activations fewer, forward and backward. `precision` is that of the two convolutions.
    """
    scale, shift = batchnorm_affine(bn)
    scale_1, shift_1 = batchnorm_affine(bn_1)
    kernel_1 = _t(conv_1.kernel)  # (5, 1, 10, 1)
    h = tf.nn.relu(_conv2d(mel[..., None], _t(conv.kernel), precision) + _t(conv.bias))
    taps = tf.tensordot(kernel_1[:, 0, :, 0], shift, 1)  # (5,): each tap's response to BN's shift
    frames = tf.ones((1, mel.shape[1], 1))
    bias = tf.nn.conv1d(frames, taps[:, None, None], 1, "SAME")[0, :, 0] + _t(conv_1.bias)  # (125,)
    z = _conv2d(h, kernel_1 * scale[None, None, :, None], precision)[..., 0] + bias[:, None]
    return tf.nn.relu(z) * scale_1 + shift_1


def _v2sa_conv_layers(am):
    """V2Sa's conv block layers (Conv2D(10, (5, 1), relu) -> BN -> Conv2D(1, (5, 1), relu) -> BN), or None if
    the AM's block is another (V2Su's)."""
    by_name = {layer.name: layer for layer in am.layers}
    layers = [by_name.get(n) for n in ("conv2d", "batch_normalization", "conv2d_1", "batch_normalization_1")]
    if any(layer is None for layer in layers):
        return None
    conv, bn, conv_1, bn_1 = layers
    convs_ok = all(
        isinstance(c, keras.layers.Conv2D)
        and c.kernel_size == (5, 1)
        and c.padding == "same"
        and c.use_bias
        and keras.activations.serialize(c.activation) == "relu"
        for c in (conv, conv_1)
    )
    bns_ok = all(isinstance(b, keras.layers.BatchNormalization) and b.center and b.scale for b in (bn, bn_1))
    return layers if convs_ok and bns_ok and conv.filters == 10 and conv_1.filters == 1 else None


def attention_head(seq, dense, dense_1, dense_2, output):
    """(B, 125, 128) BiLSTM states -> (B, 36) softmax: last-step query, dot attention, 3 dense layers."""
    query = tf.matmul(seq[:, -1, :], _t(dense.kernel)) + _t(dense.bias)
    weights = tf.nn.softmax(tf.einsum("bd,btd->bt", query, seq), axis=-1)
    context = tf.einsum("bt,btd->bd", weights, seq)
    x = tf.nn.relu(tf.matmul(context, _t(dense_1.kernel)) + _t(dense_1.bias))
    x = tf.matmul(x, _t(dense_2.kernel)) + _t(dense_2.bias)
    return tf.nn.softmax(tf.matmul(x, _t(output.kernel)) + _t(output.bias), axis=-1)


# ----------------------------------------------------------------------------------------------
# The fast body of a frozen mel AM


class FastBody:
    """The frozen AM's computation from the complex STFT on, reading the AM's variables at call time.

    Args:
        am: a V2Sa/V2Su model (`is_supported`).
        lstm: "fused" (`make_bilstm`, the default) or "keras" (the AM's own Bidirectional layers).
        precision: "fp32" (the default) or "bf16" (`settings.PRECISIONS`): the mel matrix, V2Sa's folded
            conv block and the fused LSTMs' projections in bfloat16.
    """

    def __init__(self, am, lstm: str = "fused", precision: str = DEFAULT_PRECISION):
        if lstm not in LSTM_MODES:
            raise ValueError(f"lstm must be one of {LSTM_MODES}, not {lstm!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        self.am = am
        self.options = {"lstm": lstm, "precision": precision}
        self.precision = precision
        self.bilstm = make_bilstm(precision)
        self.conv_block = keras.Model(
            am.get_layer("conv2d").input, am.get_layer("batch_normalization_1").output, name=f"{am.name}_conv_block"
        )
        self.folded_layers = _v2sa_conv_layers(am)  # None: the AM's own conv layers
        self.fold_conv = self.folded_layers is not None
        stft = am.get_layer("stft")
        if stft.n_fft != stft.win_length or stft.hop_length != HOP or not stft.pad_end or stft.pad_begin:
            raise ValueError("accelerate: unexpected STFT settings")
        self.window = stft.window_fn(stft.win_length, dtype=tf.float32)

    def spectrum(self, wave):
        """(..., 16000) -> complex STFT (..., 125, 513), as kapre's STFT layer (hann, hop 128, pad_end)."""
        n = self.window.shape[0]
        return tf.signal.stft(
            wave,
            frame_length=n,
            frame_step=HOP,
            fft_length=n,
            window_fn=lambda length, dtype=tf.float32: self.window,
            pad_end=True,
        )

    def _mel_constants(self):
        am = self.am
        return (
            tf.convert_to_tensor(am.get_layer("mel_filterbank").filterbank),
            am.get_layer("log_mel").offset,
            am.get_layer("mel_stft").epsilon,
        )

    def mel(self, magnitude):
        """|STFT| (..., 125, 513) -> standardised log-mel (..., 125, 80) (the AM's `mel_stft`, no channel axis)."""
        mel_matrix, offset, eps = self._mel_constants()
        return standardise(log_mel(magnitude, mel_matrix, offset, self.precision), eps)

    def reprogrammed_mel(self, series, programs):
        """Standardised log-mel of every series plus its program: (P, b, 16000), (P, 16000) -> (P, b, 125, 80).

        STFT(x + theta) = STFT(x) + STFT(theta). On a frame where no series of the batch has a non-zero
        sample (most frames of a short series: for L = 500, m = 1, 121 of 125), every row of program p has
        the spectrum of theta_p alone, so |.|, the mel matrix and the log run there once per program, not
        once per series; only the frames from the first to the last active one run per series (the
        series' STFT on those frames only, no gradient). The standardisation (per example, over all
        frames) then runs per series, on the (P, b, 125, 80) log-mel. The gradient reaches the programs
        through both parts.
        """
        n = self.window.shape[0]
        frames = N_FRAMES
        padded = tf.pad(series, [[0, 0], [0, 0], [0, (frames - 1) * HOP + n - WAVE_LEN]])
        nonzero = tf.cast(tf.reduce_any(tf.not_equal(padded, 0.0), axis=[0, 1]), tf.float32)  # (samples,)
        active = tf.reduce_max(tf.signal.frame(nonzero, n, HOP), axis=-1) > 0  # (frames,)
        # the span from the first to the last active frame (silent frames inside it are exact too: |0 + T|)
        first = tf.argmax(tf.cast(active, tf.int32), output_type=tf.int32)
        last = frames - 1 - tf.argmax(tf.cast(active[::-1], tf.int32), output_type=tf.int32)
        count = tf.where(tf.reduce_any(active), last - first + 1, 0)
        segment = padded[:, :, first * HOP : first * HOP + (count - 1) * HOP + n]
        data = tf.signal.rfft(tf.signal.frame(segment, n, HOP) * self.window, [n])  # (P, b, count, 513)
        program_spectrum = self.spectrum(programs)  # (P, 125, 513)
        mel_matrix, offset, eps = self._mel_constants()
        shared = log_mel(tf.abs(program_spectrum), mel_matrix, offset, self.precision)  # (P, 125, 80)
        on_span = tf.stop_gradient(data) + program_spectrum[:, None, first : first + count]
        per_series = log_mel(tf.abs(on_span), mel_matrix, offset, self.precision)  # (P, b, count, 80)
        per_series = tf.pad(per_series, [[0, 0], [0, 0], [0, 1], [0, 0]])  # slot `count`: zeros, never chosen
        frame = tf.range(frames)
        in_span = (frame >= first) & (frame < first + count)
        slot = tf.where(in_span, frame - first, count)  # (frames,)
        logmel = tf.where(in_span[:, None], tf.gather(per_series, slot, axis=2), shared[:, None])
        return standardise(logmel, eps)

    def conv(self, mel):
        """Standardised log-mel (B, 125, 80) -> the conv block's output (B, 125, 80), BatchNorm in inference:
        V2Sa's block with its first BatchNorm folded (`folded_conv_block`), others as the AM's layers."""
        if self.fold_conv:
            return folded_conv_block(mel, *self.folded_layers, self.precision)
        return self.conv_block(mel[..., None], training=False)[..., 0]

    def probs_from_mel(self, mel, training=True):
        """Standardised log-mel (B, 125, 80) -> (B, 36) softmax. `training` False: the fused LSTMs keep no
        states for a backward pass (`make_bilstm`; evaluation passes)."""
        am = self.am
        x = self.conv(mel)
        for name in ("bidirectional", "bidirectional_1"):
            if self.options["lstm"] == "keras":  # the AM's own layers (Keras' generic while-loop)
                x = am.get_layer(name)(x, training=False)
            else:
                x = self.bilstm(x, *lstm_weights(am.get_layer(name)), keep_states=training)
        return attention_head(x, *(am.get_layer(n) for n in ("dense", "dense_1", "dense_2", "output")))

    def probs(self, spectrum, training=True):
        """Complex STFT (B, 125, 513) -> (B, 36) softmax (`training` as in `probs_from_mel`).

        The magnitude is complex `tf.abs`, as kapre's: computing it from real and imaginary parts was ~1.1x
        faster per step but its theta-gradient was 250x further from a float64 reference (5e-5 vs 2e-7
        relative, measured on the benchmark's batch)."""
        return self.probs_from_mel(self.mel(tf.abs(spectrum)), training)


# ----------------------------------------------------------------------------------------------
# Keras models


class _Ref:
    """Holds an object out of Keras' tracking and saving walk."""

    def __init__(self, obj):
        self.obj = obj


class _View(keras.Model):
    """A model that computes like `source` (faster) and looks like it: same name, `layers`, `get_layer`,
    `weights` in the same order (it tracks `source` as its only sub-layer), same `save_weights` layout."""

    def __init__(self, source, **kwargs):
        super().__init__(name=source.name, **kwargs)
        self._source = source
        self._ref = _Ref(source)

    @property
    def layers(self):
        return self._ref.obj.layers

    def get_layer(self, name=None, index=None):
        return self._ref.obj.get_layer(name, index)

    @property
    def source(self):
        """The original model whose variables this one reads."""
        return self._ref.obj

    def build(self, input_shape=None):
        self.built = True

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} is a training-time view: save the original model")


@keras.saving.register_keras_serializable(package="v2s")
class AcceleratedAM(_View):
    """The fast frozen-AM computation (see the module docstring); use through `accelerate(am)`."""

    def __init__(self, am, **options):
        super().__init__(am)
        self._body = _Ref(FastBody(am, **options))
        self.options = self._body.obj.options
        self.trainable = False
        self.build((None, WAVE_LEN))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 36)

    def call(self, inputs, training=None):
        body = self._body.obj
        return body.probs(body.spectrum(tf.convert_to_tensor(inputs, tf.float32)), bool(training))


@keras.saving.register_keras_serializable(package="v2s")
class FastV2S(_View):
    """The default single-run training path: a V2S model (`ts_model.build_v2s`, AM frozen) computed as

        STFT(x + M*dropout(theta)) = stop_gradient(STFT(x)) + STFT(M*dropout(theta))

    (the STFT is linear; theta is shared by the batch, so its STFT and the STFT's backward pass run once
    per step instead of once per series; the series need no gradient), then |.| -> the fast AM body.
    Shares every variable and layer with the V2S model (`art`'s theta, its L2 penalty and dropout seed),
    so `fit`, `get_weights`, `save_weights` and callbacks behave as on the original model.
    """

    def __init__(self, v2s, **options):
        super().__init__(v2s)
        names = [layer.name for layer in v2s.layers]
        self._art = _Ref(v2s.get_layer("art"))
        am = next(layer for layer in v2s.layers if layer.name not in ("art", "label_map", "waveform"))
        self._label_map = _Ref(v2s.get_layer("label_map") if "label_map" in names else None)
        self._body = _Ref(FastBody(am, **options))
        self.build((None, WAVE_LEN))

    def compute_output_shape(self, input_shape):
        label_map = self._label_map.obj
        return (input_shape[0], 36 if label_map is None else len(label_map.groups))

    def call(self, inputs, training=None):
        body, art, label_map = self._body.obj, self._art.obj, self._label_map.obj
        x = tf.convert_to_tensor(inputs, tf.float32)
        program = tf.convert_to_tensor(art.program(training=bool(training)))
        probs = body.probs_from_mel(body.reprogrammed_mel(x[None], program[None, :])[0], bool(training))
        return probs if label_map is None else label_map(probs)


def accelerate_v2s(v2s, **options):
    """The fast training path of a V2S model whose AM is frozen (`--mod 0/1`): a `FastV2S` sharing its
    variables, or `v2s` itself if its AM is trainable (`--mod 2`) or not a supported mel AM."""
    names = [layer.name for layer in v2s.layers]
    ams = [layer for layer in v2s.layers if layer.name not in ("art", "label_map", "waveform")]
    if "art" not in names or len(ams) != 1 or ams[0].trainable or not is_supported(ams[0]):
        return v2s
    return FastV2S(v2s, **options)
