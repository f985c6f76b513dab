"""t-SNE of the AM's logits on a dataset's training series: without and with reprogramming (the paper's Fig. 5).

Example:
    python tsne_v2s.py --weight Coffee_net0_mod1_map18first_seg3_dr4_eps20_seed0
    python v2s_main.py --dataset Strawberry --mod tfa --eps 100      # writes weight/Strawberry_net0_modtfa_eps100_seed0.keras
    python tsne_v2s.py --weight Strawberry_... --tfa-weight weight/Strawberry_net0_modtfa_eps100_seed0.keras

Three panels, each a 2-D t-SNE (scikit-learn) of 36-dimensional logits (the AM's pre-softmax source-class
scores) of the TRAIN series, coloured by target class: (1) the AM on the tiled series with a zero program,
(2) the trained V2S model (series + program), (3) a TFa model (the AM fine-tuned on zero-padded series
with a dense head) when --tfa-weight is given; without it, the third panel says "no TFa model given".
Each panel's title gives the silhouette score of the classes in the logit space (higher: better separated).
The last line printed is `figure=<path>`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import probes
import reporting
import runs
import utils
import validation
from settings import DEFAULT_OFFSET
from utils import V2SError


def tsne_2d(features: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """(n, d) features -> (n, 2) t-SNE embedding (PCA init, seeded); perplexity capped at (n - 1) / 3."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    if n < 4:
        raise V2SError(f"t-SNE needs at least 4 series, got {n}")
    perplexity = float(min(perplexity, max(1.0, (n - 1) / 3)))
    with threadpool_limits(1):  # OpenMP threads spin on a shared, busy machine: 1 thread is ~20x faster here
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            np.asarray(features, np.float64)
        )


def separation(features: np.ndarray, labels: np.ndarray) -> float:
    """Silhouette score of `labels` in the feature space (Euclidean); nan for a single class."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2 or len(labels) <= len(np.unique(labels)):
        return float("nan")
    return float(silhouette_score(features, labels))


def tfa_logits(path, waveforms: np.ndarray) -> np.ndarray:
    """Pre-softmax source scores (n, 36) of a TFa model saved as a whole Keras model (`.keras`).

    The TFa model (`v2s_main.py --mod tfa`, `ts_model.build_tfa`) is the AM fine-tuned with an extra
    dense head; its AM is found as a nested model (or its layer `output`), so the logits are those of
    the fine-tuned AM.

    Args:
        waveforms: (n, 16000) series placed in the window as the TFa run placed them (its --offset).
    """
    import keras

    import speech_models  # noqa: F401  (registers the AM's custom layers for deserialisation)
    import ts_model  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise V2SError(f"--tfa-weight {path}: no such file")
    if path.suffix != ".keras":
        raise V2SError(f"--tfa-weight {path}: give a whole model saved with model.save('....keras')")
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as err:  # noqa: BLE001  (Keras raises many kinds for a bad file)
        raise V2SError(
            f"--tfa-weight {path}: cannot load ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        ) from None
    return probes.am_logits(probes.find_am(model), waveforms)


def plot_tsne(
    panels: list[tuple[str, np.ndarray | None, float]], labels: np.ndarray, class_names: list[str], title: str, path
) -> None:
    """One row of panels; each (title, (n, 2) embedding or None for a note, silhouette). Writes a PNG."""
    plt = reporting.pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2))
    colours = plt.get_cmap("tab10")
    for ax, (name, embedding, score) in zip(np.atleast_1d(axes), panels):
        if embedding is None:
            ax.text(
                0.5,
                0.5,
                "no TFa model given\n(--tfa-weight MODEL.keras)",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=10,
                color="grey",
            )
            ax.set(title=name, xticks=[], yticks=[])
            continue
        for k, class_name in enumerate(class_names):
            chosen = labels == k
            ax.scatter(
                embedding[chosen, 0],
                embedding[chosen, 1],
                s=14,
                color=colours(k % 10),
                label=class_name,
                alpha=0.8,
                edgecolors="none",
            )
        ax.set(title=f"{name}\nsilhouette (logits) {score:.2f}", xlabel="t-SNE 1", ylabel="t-SNE 2")
        ax.legend(fontsize=7, title="target class", title_fontsize=7)
    fig.suptitle(title, fontsize=9)
    reporting.save_figure(fig, path, dpi=80)


def parse_args(argv=None) -> argparse.Namespace:
    parser = validation.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    runs.add_run_flags(parser, weight_required=True)
    parser.add_argument(
        "--tfa-weight",
        default=None,
        help="optional TFa model (a whole Keras model, .keras) for panel 3; without it panel 3 "
        "reads 'no TFa model given'",
    )
    parser.add_argument(
        "--tfa-seg",
        type=int,
        default=1,
        help="copies of the series tiled into the window for the TFa input (1: zero-padded, as the paper's TFa)",
    )
    parser.add_argument(
        "--tfa-offset",
        type=int,
        default=DEFAULT_OFFSET,
        help="zero samples before the series in the TFa input: the --offset the TFa run was trained with "
        "(v2s_main.py's default 448)",
    )
    parser.add_argument(
        "--max-series",
        type=int,
        default=probes.N_TARGET_SERIES,
        help="use at most this many TRAIN series (a seeded sample); 0 = all",
    )
    parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (capped at (n-1)/3)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the t-SNE and the series sample")
    parser.add_argument("--out", default=None, help="figure path (default <results-dir>/<run>_tsne.png)")
    args = parser.parse_args(argv)
    validation.at_least("--tfa-seg", args.tfa_seg, 1, whole=True)
    validation.in_range("--tfa-offset", args.tfa_offset, 0, utils.WAVE_LEN, whole=True)
    validation.at_least("--max-series", args.max_series, 0, "0: all", whole=True)
    validation.greater_than("--perplexity", args.perplexity, 0)
    validation.seed("--seed", args.seed)
    runs.check_run_flags(args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    utils.setup_tensorflow(seed=args.seed)
    import ts_model

    model, record, data = runs.load_run_from_flags(args)
    keep = probes.subset_indices(len(data.y_train), args.max_series, args.seed)
    x, y = data.x_train[keep], data.y_train[keep]
    tiled = runs.tile_for_run(record, x)
    am = probes.find_am(model)
    logits = {
        "zero program": probes.am_logits(am, tiled),
        "V2S (trained program)": probes.am_logits(am, probes.reprogram(model, tiled)),
    }
    if args.tfa_weight:
        logits["TFa (fine-tuned AM)"] = tfa_logits(
            args.tfa_weight, ts_model.tile_segments(x, args.tfa_seg, args.tfa_offset)
        )
    panels = []
    for i, (name, values) in enumerate(logits.items()):
        score = separation(values, y)
        panels.append((f"({i + 1}) {name}", tsne_2d(values, args.seed, args.perplexity), score))
        print(f"{name}: silhouette {score:.4f} over {len(y)} TRAIN series")
    if not args.tfa_weight:
        panels.append(("(3) TFa", None, float("nan")))
    class_names = [f"{k} (label {v})" for k, v in enumerate(data.label_values)]
    out = runs.output_path(args.out, args.results_dir, f"{record['run']}_tsne.png")
    plot_tsne(
        panels,
        y,
        class_names,
        f"t-SNE of the AM's logits on {data.name} TRAIN ({len(y)} series), run {record['run']}",
        out,
    )
    print(f"figure={out}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
