"""Run the mechanism checks' full variants and print every figure beside the paper's.

    python benchmarks/mechanisms.py                      # all checks, full variants
    python benchmarks/mechanisms.py lsa-gd induction     # some of them
    python benchmarks/mechanisms.py --fast               # the variants the tests run

Writes NAME.json and NAME.png to --out (default runs/mech-full) and copies each PNG to
docs/img/mech-NAME.png for docs/mechanisms.md.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from iclkit.mech.checks import CHECKS, run_check

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checks", nargs="*", default=list(CHECKS), choices=[[], *CHECKS])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "mech-full")
    parser.add_argument("--no-docs", action="store_true", help="do not copy PNGs to docs/img")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    failed = []
    start = time.perf_counter()
    for name in args.checks or list(CHECKS):
        report = run_check(name, fast=args.fast, seed=args.seed, out_dir=args.out)
        print(report.table(), end="\n\n", flush=True)
        if not args.no_docs:
            shutil.copyfile(args.out / f"{name}.png", REPO / "docs" / "img" / f"mech-{name}.png")
        if not report.passed:
            failed.append(name)
    elapsed = time.perf_counter() - start
    print(f"total {elapsed:.0f} s; checks with a failed figure: {failed or 'none'}")


if __name__ == "__main__":
    main()
