"""Train a video network on HACS (Human Action Clips and Segments, 200 classes, http://hacs.csail.mit.edu/).

    python train_hacs.py --network srtg_r3d_50 --dataset <root>/data/ [--gpus 4] [--batch-size N] ...

This file only holds the data set's facts (classes, folder, label CSVs, the original script's defaults); the
training itself is ``train.run.run``. ``--help`` lists every argument with this data set's defaults.
"""
import sys

from data.spec import DatasetSpec
from train.run import main

SPEC = DatasetSpec(
    name="HACS", num_classes=200, folder="HACS_videos", train_csv="HACS_clips_v1.1_train.csv",
    val_csv="HACS_clips_v1.1_val.csv", timeslices=True, augmentation="large",
    defaults={"dataset": "HACS", "network": "r3d_50", "clip_length": 16, "clip_size": 284, "val_clip_length": 16,
              "val_clip_size": 256, "train_frame_interval": [1, 2], "val_frame_interval": 2, "batch_size": 48,
              "lr_base": 0.1, "lr_steps": [40, 60, 75, 90], "end_epoch": 120, "long_cycles": True,
              "short_cycles": True})

if __name__ == "__main__":
    sys.exit(main(SPEC))
