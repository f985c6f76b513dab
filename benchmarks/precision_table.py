"""Is bf16 good enough? The honest TEST accuracy of the same sweep in fp32 and in bf16, per dataset.

Trains nothing: reads the run records under --out written by the two sweeps

    python reproduce.py --datasets Coffee,Wine,Lightning2,Herring,ECG200,GunPoint --nets 0 --grid small \\
        --seeds 3 --no-minirocket --no-multirocket --data-dir ../shared/ucr --out results/precision [--precision bf16]

and writes `<out>/bf16_vs_fp32.md` (`sweep.precision`: per dataset the fp32 seeds, their spread and the
bf16 mean; the verdict: bf16 within the fp32 seed spread on every dataset and its mean over datasets within
0.5 points). Prints the table.

    .venv/bin/python benchmarks/precision_table.py [--out results/precision]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import utils  # noqa: E402
from sweep.executor import load_records  # noqa: E402
from sweep.precision import compare, markdown  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(utils.PROJECT_DIR / "results" / "precision"), help="the sweeps' folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not (out / "runs").is_dir():
        raise utils.V2SError(f"--out {out}: no runs/ folder of run records")
    records = load_records(str(out))
    result = compare(records)
    command = "python benchmarks/precision_table.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(result, command.strip())
    utils.atomic_write_bytes(out / "bf16_vs_fp32.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    utils.run_cli(main)
