"""Grad-CAM of a reprogrammed (or a bare) acoustic model: the paper's Fig. 4 for one series or clip.

Example:
    python cam_v2s.py --weight Coffee_net0_mod1_map18first_seg1_dr4_eps2_seed0 --index 0
    python cam_v2s.py --audio ../shared/speech/gsc/yes/0a7c2a8d_nohash_0.wav      # bare AM, a real clip

One figure, five panels: (a) the target series tiled into the 1 s, 16 kHz window and the
reprogrammed waveform (series + program theta); (b) the AM's attention weights over STFT frames (log
scale); (c) the standardised log-mel spectrogram the AM sees (`mel_stft`); (d), (e) Grad-CAM heatmaps of
`conv2d` and of `--layer` (default `conv2d_1`) over the same time x mel plane, for the predicted target
class (the V2S output, i.e. through the label map) or, with --audio, the AM's top source class.
The last line printed is `figure=<path>`.

The probes it is built on (the AM inside a V2S model, its layers, the reprogrammed waveform) are in
probes.py; the flags that name a saved run and its rebuilding are in runs.py (`add_run_flags`,
`load_run_from_flags`).
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import probes
import reporting
import runs
import utils
import validation
from settings import HOP, N_FFT, N_SOURCE
from utils import SAMPLE_RATE, WAVE_LEN, V2SError

METHOD_NAMES = {"gradcam": "Grad-CAM", "guided": "guided Grad-CAM"}


def frame_times(frames: int) -> np.ndarray:
    """Centre time (s) of each STFT frame: frame k covers samples k*128 .. k*128+1023 (end-padded)."""
    return (np.arange(frames) * HOP + N_FFT / 2) / SAMPLE_RATE


def frame_extent(frames: int, bins: int) -> list[float]:
    """imshow extent placing frame k at its centre time, bins 0..bins on the vertical axis."""
    return [(N_FFT / 2 - HOP / 2) / SAMPLE_RATE, ((frames - 1) * HOP + N_FFT / 2 + HOP / 2) / SAMPLE_RATE, 0, bins]


# ----------------------------------------------------------------------------------------------
# Grad-CAM


@dataclass
class GradCAM:
    """Grad-CAM of one conv layer for a batch.

    heatmap: (n, frames, mel bins) = ReLU(sum_c alpha_c A_c), alpha_c the gradient of the class score
        averaged over the layer's time-frequency plane; non-negative, in the layer's units.
    normalised: heatmap / its per-example maximum (all-zero stays zero), in [0, 1].
    classes: (n,) class whose score was differentiated; scores: (n,) that score (a probability).
    """

    layer: str
    heatmap: np.ndarray
    normalised: np.ndarray
    classes: np.ndarray
    scores: np.ndarray


def grad_cam(
    am,
    waveforms: np.ndarray,
    layer: str = "conv2d_1",
    class_matrix: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    method: str = "gradcam",
) -> GradCAM:
    """Grad-CAM (Selvaraju et al. 2017) of an AM's conv layer, computed with `tf.GradientTape`.

    The class score is `(softmax output @ class_matrix)[class]`: with a V2S label map
    (`ts_model.mapping_matrix(groups)`, (36, K)) it is the target-class probability the V2S model
    outputs; with no matrix, the AM's source-class probability.

    Args:
        waveforms: (n, 16000) samples at 16 kHz, as the AM sees them (reprogrammed if V2S).
        layer: a conv layer after the front end (`conv2d`, `conv2d_1`, ...).
        classes: (n,) classes to explain; default the predicted (argmax) class.
        method: "gradcam": channel weight alpha_c = mean over (frames, bins) of d score / d A_c;
            "guided": the same mean of the gradient gated to positive gradients where A_c > 0 (the
            guided Grad-CAM variant common in Keras snippets). For a one-channel layer such as V2Sa's
            `conv2d_1`, plain Grad-CAM is ReLU(alpha * A): the activation map when alpha > 0, all zero
            otherwise; "guided" keeps alpha >= 0.
    Returns:
        a `GradCAM`; heatmaps have the layer's (frames, mel bins) shape, (125, 80) for V2Sa/V2Su.
    """
    return grad_cams(am, waveforms, [layer], class_matrix, classes, method)[0]


def grad_cams(
    am,
    waveforms: np.ndarray,
    layers: list[str],
    class_matrix: np.ndarray | None = None,
    classes: np.ndarray | None = None,
    method: str = "gradcam",
    extra: list[str] = (),
) -> list:
    """`grad_cam` for several layers from one forward and one backward pass.

    extra: further layer names whose outputs (numpy) are appended to the returned list (e.g. `mel_stft`).
    """
    import tensorflow as tf

    if method not in METHOD_NAMES:
        raise V2SError(f"unknown Grad-CAM method {method!r}: use " + " or ".join(METHOD_NAMES))
    model = probes.probe(am, list(layers) + list(extra))
    for name, output in zip(layers, model.outputs):
        if len(output.shape) != 4:
            raise V2SError(
                f"layer {name!r} outputs shape {tuple(output.shape)}, not (batch, frames, mel bins, "
                "channels): choose one of " + ", ".join(probes.conv_layers(am))
            )
    matrix = tf.constant(
        np.eye(N_SOURCE, dtype=np.float32) if class_matrix is None else np.asarray(class_matrix, np.float32)
    )
    x = tf.convert_to_tensor(np.asarray(waveforms, np.float32))
    with tf.GradientTape() as tape:
        outputs = model(x, training=False)
        activations, probs = outputs[: len(layers)], outputs[-1]
        scores_all = tf.matmul(probs, matrix)
        chosen = (
            tf.argmax(scores_all, axis=1, output_type=tf.int32) if classes is None else tf.constant(classes, tf.int32)
        )
        scores = tf.gather(scores_all, chosen, axis=1, batch_dims=1)
    all_grads = tape.gradient(scores, activations)  # each (n, frames, bins, channels)
    result = []
    for name, acts, grads in zip(layers, activations, all_grads):
        if method == "guided":
            grads = grads * tf.cast(grads > 0, grads.dtype) * tf.cast(acts > 0, grads.dtype)
        alpha = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        heat = tf.nn.relu(tf.reduce_sum(alpha * acts, axis=-1)).numpy()
        peak = heat.reshape(len(heat), -1).max(axis=1)
        normalised = heat / np.where(peak > 0, peak, 1.0)[:, None, None]
        result.append(GradCAM(name, heat, normalised, chosen.numpy(), scores.numpy()))
    return result + [np.asarray(v) for v in outputs[len(layers) :]]


# ----------------------------------------------------------------------------------------------
# The figure


@dataclass
class CamInputs:
    """What one figure shows. Arrays are for a single example."""

    title: str
    series: np.ndarray | None  # (16000,) tiled target series, None for a speech clip
    waveform: np.ndarray  # (16000,) what the AM sees
    mel: np.ndarray  # (frames, mel bins) standardised log-mel
    attention: np.ndarray  # (frames,) attention weights
    cams: list  # [GradCAM] for this example (batch of 1)
    class_text: str
    method: str = "Grad-CAM"


def analyse(
    am, waveform: np.ndarray, layers: list[str], matrix=None, method: str = "gradcam"
) -> tuple[np.ndarray, np.ndarray, list[GradCAM], np.ndarray]:
    """Mel spectrogram (frames, mel bins), attention (frames,), Grad-CAMs and output scores of one waveform (16000,)."""
    x = np.asarray(waveform, np.float32)[None, :]
    *cams, mel, attention, probs = grad_cams(am, x, layers, matrix, method=method, extra=["mel_stft", "attSoftmax"])
    scores = probs[0] if matrix is None else probs[0] @ matrix
    return mel[0, :, :, 0], attention[0], cams, scores


def plot_cam(inputs: CamInputs, path) -> None:
    """Write the five-panel figure (a)-(e) to `path` (PNG, atomically)."""
    plt = reporting.pyplot()
    t = np.arange(WAVE_LEN) / SAMPLE_RATE
    frames, bins = inputs.mel.shape
    extent = frame_extent(frames, bins)
    fig, axes = plt.subplots(5, 1, figsize=(7.5, 11.5))
    ax = axes[0]
    ax.plot(
        t,
        inputs.waveform,
        lw=0.5,
        color="tab:blue",
        label="reprogrammed input (series + program)" if inputs.series is not None else "speech clip",
    )
    if inputs.series is not None:
        ax.plot(t, inputs.series, lw=0.8, color="tab:red", label="target series tiled into the window")
    ax.set(xlim=(0, 1), xlabel="time (s, 16 kHz samples)", ylabel="amplitude", title="(a) input waveform")
    ax.legend(fontsize=7, loc="upper right")
    ax = axes[1]
    ax.semilogy(frame_times(len(inputs.attention)), inputs.attention, color="tab:green")
    ax.set(
        xlim=(0, 1),
        xlabel="time (s, centre of each 64 ms STFT frame, 8 ms hop)",
        ylabel="weight (log)",
        title="(b) attention weights of the AM (attSoftmax)",
    )
    ax.grid(alpha=0.3, which="both")
    ax = axes[2]
    image = ax.imshow(inputs.mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    fig.colorbar(image, ax=ax, pad=0.01, label="std. log-mel")
    ax.set(xlim=(0, 1), xlabel="time (s)", ylabel="mel bin", title="(c) mel spectrogram of the AM's input (mel_stft)")
    for ax, cam, letter in zip(axes[3:], inputs.cams, "de"):
        heat = cam.normalised[0]
        ax.imshow(inputs.mel.T, origin="lower", aspect="auto", extent=extent, cmap="gray")
        image = ax.imshow(
            heat.T,
            origin="lower",
            aspect="auto",
            extent=frame_extent(*heat.shape),
            cmap="jet",
            alpha=0.5,
            vmin=0,
            vmax=1,
        )
        fig.colorbar(image, ax=ax, pad=0.01, label="Grad-CAM (norm.)")
        note = "" if cam.heatmap.max() > 0 else "  [all zero: negative class gradient; try --method guided]"
        ax.set(
            xlim=(0, 1), xlabel="time (s)", ylabel="mel bin", title=f"({letter}) {inputs.method} of {cam.layer}{note}"
        )
    fig.suptitle(inputs.title + "\n" + "\n".join(textwrap.wrap(inputs.class_text, 110)), fontsize=8)
    reporting.save_figure(fig, path, dpi=72)


def cam_layers(layer: str) -> list[str]:
    """Panels (d), (e): `conv2d` and `layer` (`conv2d_1` when `layer` is `conv2d`)."""
    return ["conv2d", "conv2d_1" if layer == "conv2d" else layer]


def run_for_series(args) -> Path:
    model, record, data = runs.load_run_from_flags(args)
    n_test = len(data.y_test)
    if not -n_test <= args.index < n_test:
        raise V2SError(f"--index {args.index} out of range: {data.name} has {n_test} test series (0..{n_test - 1})")
    seg = record["config"]["seg"]
    series = runs.tile_for_run(record, data.x_test[[args.index]])[0]
    waveform = probes.reprogram(model, series[None])[0]
    matrix = runs.class_matrix(record)
    am = probes.find_am(model)
    mel, attention, cams, scores = analyse(am, waveform, cam_layers(args.layer), matrix, args.method)
    predicted, true = int(np.argmax(scores)), int(data.y_test[args.index])
    labels = data.label_values
    class_text = (
        f"test series {args.index % n_test}: true class {true} (label {labels[true]}), predicted {predicted} "
        f"(label {labels[predicted]}, p={scores[predicted]:.3f}); Grad-CAM of the predicted target class "
        f"through the label map (sources {record['label_mapping']['groups_named'][predicted][:4]}...)"
    )
    title = f"{record['run']}  (seg {seg}, AM {record['config']['net']})"
    out = runs.output_path(args.out, args.results_dir, f"{record['run']}_cam.png")
    plot_cam(CamInputs(title, series, waveform, mel, attention, cams, class_text, METHOD_NAMES[args.method]), out)
    print(class_text)
    return out


def run_for_audio(args) -> Path:
    import am_weights
    import speech_data
    import speech_models

    path = Path(args.audio)
    if not path.is_file():
        raise V2SError(f"--audio {path}: no such file")
    clip = speech_data.read_clip(path)
    am, info = am_weights.load_am(args.net if args.net is not None else "0", args.am_weights)
    mel, attention, cams, scores = analyse(am, clip, cam_layers(args.layer), method=args.method)
    top = int(np.argmax(scores))
    word = path.parent.name if path.parent.name in speech_models.SOURCE_CLASSES else "?"
    class_text = (
        f"clip {path.name} (folder word '{word}'): AM predicts '{speech_models.SOURCE_CLASSES[top]}' "
        f"(p={scores[top]:.3f}); Grad-CAM of that source class"
    )
    out = runs.output_path(args.out, args.results_dir, f"{info.name}_{word}_{path.stem}_cam.png")
    plot_cam(
        CamInputs(
            f"bare AM {info.name} on a speech clip",
            None,
            clip,
            mel,
            attention,
            cams,
            class_text,
            METHOD_NAMES[args.method],
        ),
        out,
    )
    print(class_text)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Give either --weight (a saved V2S run) or --audio (a speech clip).",
    )
    runs.add_run_flags(
        parser,
        weight_required=False,
        net_help="with --weight: optional check of the run's AM (0/v2sa, 3/v2su); with --audio: the AM to "
        "explain (default 0, the original V2Sa)",
    )
    parser.add_argument(
        "--layer",
        default="conv2d_1",
        help="conv layer of panel (e); panel (d) is always conv2d (with --layer conv2d, (e) is conv2d_1)",
    )
    parser.add_argument(
        "--method",
        default="gradcam",
        choices=sorted(METHOD_NAMES),
        help="gradcam: Selvaraju et al.'s channel weights (mean gradient); guided: mean of the positive "
        "gradients where the activation is positive (never all zero for one-channel conv2d_1)",
    )
    parser.add_argument("--index", type=int, default=0, help="which TEST series of the dataset to explain (0-based)")
    parser.add_argument(
        "--audio",
        default=None,
        help="a WAV clip (e.g. ../shared/speech/gsc/yes/<clip>.wav): explain the bare AM on it instead",
    )
    parser.add_argument("--am-weights", default=None, help="with --audio: the AM's weights (default as v2s_main.py)")
    parser.add_argument(
        "--out",
        default=None,
        help="figure path (default <results-dir>/<run>_cam.png, or <am>_<word>_<clip>_cam.png for --audio)",
    )
    args = parser.parse_args(argv)
    if (args.weight is None) == (args.audio is None):
        raise V2SError("give exactly one of --weight (a saved V2S run) or --audio (a speech clip)")
    if args.audio and (args.dataset is not None or args.mapping is not None or args.data_dir is not None):
        raise V2SError("--dataset, --mapping and --data-dir describe a V2S run: use them with --weight, not --audio")
    runs.check_run_flags(args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    utils.setup_tensorflow()
    out = run_for_audio(args) if args.audio else run_for_series(args)
    print(f"figure={out}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
