"""Train a video network on HMDB-51 split 1 (51 classes,
https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/).

    python train_hmdb51.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

This file only holds the data set's facts (classes, folder, label CSVs, the original script's defaults); the
training itself is ``train.run.run``. ``--help`` lists every argument with this data set's defaults.

Multigrid cycles are off by default. The original's default ``--dataset HMDB101`` was a typo (no such config).
"""
import sys

from data.spec import DatasetSpec
from train.run import main

SPEC = DatasetSpec(
    name="HMDB51", num_classes=51, folder="HMDB51_videos", train_csv="hmdb_split1_train.csv",
    val_csv="hmdb_split1_val.csv", timeslices=False, augmentation="small",
    defaults={"dataset": "HMDB51", "network": "r3d_50", "clip_length": 16, "clip_size": 256,
              "train_frame_interval": [2], "val_frame_interval": 2, "batch_size": 32, "lr_base": 0.1,
              "lr_steps": [15, 30, 40], "end_epoch": 100, "long_cycles": False, "short_cycles": False})

if __name__ == "__main__":
    sys.exit(main(SPEC))
