"""Train a video network on Moments in Time (339 classes, http://moments.csail.mit.edu/).

Replaces the original's ``train_moments.py``.

    python train_mit.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

The data set's facts and default hyper-parameters are registered in ``data/catalog/datasets.py``; training is
``train.engine.run``. ``--help`` lists every argument with this data set's defaults.
"""
import sys

from data.catalog.datasets import get_dataset
from train.engine.run import main

SPEC = get_dataset("moments")

if __name__ == "__main__":
    sys.exit(main(SPEC))
