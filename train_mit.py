"""Train a video network on Moments in Time (339 classes, http://moments.csail.mit.edu/).

Replaces the original ``train_moments.py``.

    python train_mit.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

This file only holds the data set's facts (classes, folder, label CSVs, the original script's defaults); the
training itself is ``train.run.run``. ``--help`` lists every argument with this data set's defaults.
"""
import sys

from data.spec import DatasetSpec
from train.run import main

SPEC = DatasetSpec(
    name="MOMENTS", num_classes=339, folder="Moments_in_Time_videos", train_csv="Moments_in_Time_train.csv",
    val_csv="Moments_in_Time_val.csv", timeslices=False, augmentation="large",
    defaults={"dataset": "Moments", "network": "r3d_50", "clip_length": 16, "clip_size": 284, "val_clip_length": 16,
              "val_clip_size": 256, "train_frame_interval": [3, 4], "val_frame_interval": 3, "batch_size": 48,
              "lr_base": 0.1, "lr_steps": [25, 50, 70], "end_epoch": 110, "long_cycles": True,
              "short_cycles": True})

if __name__ == "__main__":
    sys.exit(main(SPEC))
