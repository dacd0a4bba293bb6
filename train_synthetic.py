"""Train on the built-in synthetic motion data set: the quickest end-to-end check of the whole pipeline.

    python train_synthetic.py                     # generates ./synthetic_data on first use, trains srtg_r3d_18 on CPU
    python train_synthetic.py --dataset DIR       # a set written by `python -m data.synthetic --out DIR`

The eight classes differ only in motion (move left/right/up/down, rotate cw/ccw, grow, shrink), so a single
frame cannot tell them apart. Every argument of the other scripts works here too (``--help``).
"""
import sys
from collections.abc import Sequence
from pathlib import Path

from data.catalog.datasets import get_dataset
from data.prep.synthetic import generate
from train.engine.cli import parse_config
from train.engine.run import main

# The CPU demo's defaults are the data set's (``SYNTHETIC`` in data/catalog/datasets.py, where they are described).
SPEC = get_dataset("synthetic")
DEFAULT_DIR = str(SPEC.defaults["dataset"])
VIDEOS_PER_CLASS = 240


def ensure_dataset(argv: Sequence[str] | None) -> None:
    """Generate the default set when ``--dataset`` is left at its default and the set is not there yet."""
    cfg = parse_config(SPEC, argv)  # also handles --help
    if cfg.data.dataset != DEFAULT_DIR:
        return
    out = Path(DEFAULT_DIR)
    if not (out / "labels" / SPEC.val_csv).is_file():  # the CSVs are written last: their presence = complete
        print(f"generating the synthetic data set in ./{DEFAULT_DIR} (once) ...", file=sys.stderr)
        generate(out, videos_per_class=VIDEOS_PER_CLASS, workers=2)


if __name__ == "__main__":
    ensure_dataset(sys.argv[1:])
    sys.exit(main(SPEC))
