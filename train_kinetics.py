"""Train a video network on Kinetics-200/400/600/700 (``--variant``, default 700; https://deepmind.com/research/open-source/kinetics).

    python train_kinetics.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

The data set's facts and default hyper-parameters are registered in ``data/catalog/datasets.py``; training is
``train.engine.run``. ``--help`` lists every argument with this data set's defaults.

``--variant`` picks the class count and the ``kinetics-<variant>_{train,val}.csv`` label files; results go to
``results/KINETICS-<variant>/``.
"""
import sys

from data.catalog.datasets import get_dataset
from train.engine.run import main

SPEC = get_dataset("kinetics")

if __name__ == "__main__":
    sys.exit(main(SPEC))
