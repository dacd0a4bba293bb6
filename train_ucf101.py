"""Train a video network on UCF-101 split 1 (101 classes, https://www.crcv.ucf.edu/data/UCF101.php).

    python train_ucf101.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

The data set's facts and default hyper-parameters are registered in ``data/catalog/datasets.py``; training is
``train.engine.run``. ``--help`` lists every argument with this data set's defaults.

Multigrid cycles are off by default (as the original forced for the small data sets).
"""
import sys

from data.catalog.datasets import get_dataset
from train.engine.run import main

SPEC = get_dataset("ucf101")

if __name__ == "__main__":
    sys.exit(main(SPEC))
