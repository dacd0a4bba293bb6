"""Train a video network on UCF-101 split 1 (101 classes, https://www.crcv.ucf.edu/data/UCF101.php).

    python train_ucf101.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

This file only holds the data set's facts (classes, folder, label CSVs, the original script's defaults); the
training itself is ``train.run.run``. ``--help`` lists every argument with this data set's defaults.

Multigrid cycles are off by default (as the original forced for the small data sets).
"""
import sys

from data.spec import DatasetSpec
from train.run import main

SPEC = DatasetSpec(
    name="UCF101", num_classes=101, folder="UCF101_videos", train_csv="ucf101_split1_train.csv",
    val_csv="ucf101_split1_val.csv", timeslices=False, augmentation="small",
    defaults={"dataset": "UCF101", "network": "r3d_50", "clip_length": 16, "clip_size": 256,
              "train_frame_interval": [2], "val_frame_interval": 2, "batch_size": 32, "lr_base": 0.1,
              "lr_steps": [15, 30, 40], "end_epoch": 100, "long_cycles": False, "short_cycles": False})

if __name__ == "__main__":
    sys.exit(main(SPEC))
