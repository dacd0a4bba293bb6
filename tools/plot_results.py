"""Draw training curves (loss, top-1, top-5, lr; train vs val) of a results folder as a PNG.

Usage: ``python tools/plot_results.py results/SYNTHETIC/r3d_18_gates_False [--out curves.png]``
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from train.plots.curves import plot_results


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the PNG's path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path, help="folder with train_results_s*.csv / val_results_s*.csv")
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: <results_dir>/curves.png)")
    args = parser.parse_args(argv)
    try:
        out = plot_results(args.results_dir, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
