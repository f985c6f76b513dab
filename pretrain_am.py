"""Evaluate a source acoustic model on a Speech-Commands-layout folder.

    python pretrain_am.py --eval-dir DIR --net 0 [--am-weights PATH] [--batch-size 64]

DIR/<word>/*.wav for the 35 words of `speech_models.SOURCE_CLASSES` and DIR/_unknown_/*.wav
(scored as class 0); other entries (e.g. `_background_noise_`) are skipped and counted.
Prints per-word results, then as its last two lines `accuracy_36=<fraction>` and
`accuracy_core10=<fraction>` (clips of the 10 core-word folders, right when the 36-way argmax is
that word). Training (`--net v2su`, `--net cnn1d`) is not implemented yet.
"""

from __future__ import annotations

import argparse

import utils


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--eval-dir", required=True, help="Speech-Commands-layout folder to score")
    parser.add_argument("--net", default="0", help="0/v2sa (default), 3/v2su, 5/cnn1d")
    parser.add_argument("--am-weights", help="weights file (default: the usual search, see speech_models)")
    parser.add_argument("--batch-size", type=int, default=64, help="clips per prediction batch")
    return parser.parse_args(argv)


def format_per_class(per_class: dict, columns: int = 4) -> list[str]:
    """`word correct/n` entries, `columns` to a line."""
    cells = [f"{word:>9} {r['correct']:>3}/{r['n']:<3}" for word, r in per_class.items()]
    return ["  ".join(cells[i : i + columns]).rstrip() for i in range(0, len(cells), columns)]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.batch_size < 1:
        raise utils.V2SError(f"--batch-size must be positive, got {args.batch_size}")
    utils.setup_tensorflow()
    import speech_models

    net = speech_models.resolve_net(args.net)
    speech_models.scan_folder(args.eval_dir)
    model, info = speech_models.load_am(net, args.am_weights)
    print(f"model {info.name}: {info.path} ({info.source}, sha256 {info.sha256[:12]}, original={info.original})")
    result = speech_models.predict_folder(model, args.eval_dir, batch_size=args.batch_size)
    for line in format_per_class(result["per_class"]):
        print(line)
    print(f"clips={len(result['labels'])} core10_clips={result['n_core10']} "
          f"skipped={len(result['skipped'])} ({', '.join(result['skipped']) or 'none'})")  # fmt: skip
    print(f"accuracy_36={result['accuracy_36']:.4f}")
    print(f"accuracy_core10={result['accuracy_core10']:.4f}")
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
