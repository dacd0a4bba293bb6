"""Train a video network on HACS (Human Action Clips and Segments, 200 classes, http://hacs.csail.mit.edu/).

    python train_hacs.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

The data set's facts and default hyper-parameters are registered in ``data/catalog/datasets.py``; training is
``train.engine.run``. ``--help`` lists every argument with this data set's defaults.
"""
import sys

from data.catalog.datasets import get_dataset
from train.engine.run import main

SPEC = get_dataset("hacs")

if __name__ == "__main__":
    sys.exit(main(SPEC))
