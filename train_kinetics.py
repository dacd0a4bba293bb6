"""Train a video network on Kinetics-200/400/600/700 (``--variant``, default 700;
https://deepmind.com/research/open-source/kinetics).

    python train_kinetics.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

This file only holds the data set's facts (classes, folder, label CSVs, the original script's defaults); the
training itself is ``train.run.run``. ``--help`` lists every argument with this data set's defaults.

``--variant`` picks the class count and the ``kinetics-<variant>_{train,val}.csv`` label files; results go to
``results/KINETICS-<variant>/``.
"""
import sys

from data.spec import DatasetSpec
from train.run import main

SPEC = DatasetSpec(
    name="KINETICS-700", num_classes=700, folder="Kinetics_videos", train_csv="kinetics-700_train.csv",
    val_csv="kinetics-700_val.csv", timeslices=True, augmentation="large",
    defaults={"dataset": "Kinetics", "variant": 700, "network": "r3d_50", "clip_length": 16, "clip_size": 284,
              "val_clip_length": 16, "val_clip_size": 256, "train_frame_interval": [4, 5, 6],
              "val_frame_interval": 5, "batch_size": 32, "lr_base": 0.05, "lr_steps": [40, 70, 95],
              "end_epoch": 130, "long_cycles": True, "short_cycles": True},
    variants={200: 200, 400: 400, 600: 600, 700: 700})

if __name__ == "__main__":
    sys.exit(main(SPEC))
