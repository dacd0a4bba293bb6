"""Train on any prepared data set, without writing a script: its classes come from its label dictionary.

    python -m data.prepare folders --videos my_videos/ --out my_set      # or ssv2, or any other format
    python train.py --dataset my_set --network srtg_r3d_18 [--clip-size 112] ...

``--dataset`` is the folder ``data.prep.prepare`` wrote (``labels/<name>_{train,val}.csv`` + dictionary and
``data/<folder>/jpg``). The defaults suit a small data set (``data.catalog.datasets.GENERIC_DEFAULTS``: 16x112² clips,
no multigrid, 30 epochs); every argument of the other scripts works here (``--help``).
"""
import sys

from data.catalog.datasets import GENERIC_DEFAULTS, discover_dataset
from data.catalog.spec import DatasetSpec
from train.engine.run import main

# --help without a data set: the generic defaults on a placeholder spec
HELP_SPEC = DatasetSpec(name="DATASET", num_classes=1, folder="videos", train_csv="train.csv", val_csv="val.csv",
                        augmentation="small", script="train.py", defaults=GENERIC_DEFAULTS)


def spec_for(argv: list[str]) -> DatasetSpec:
    """The spec of ``--dataset ROOT`` in ``argv`` (``HELP_SPEC`` when there is none, e.g. for ``--help``)."""
    for i, arg in enumerate(argv):
        if arg == "--dataset" and i + 1 < len(argv):
            return discover_dataset(argv[i + 1])
        if arg.startswith("--dataset="):
            return discover_dataset(arg.split("=", 1)[1])
    if "-h" in argv or "--help" in argv:
        return HELP_SPEC
    raise FileNotFoundError("train.py needs --dataset ROOT (a folder written by `python -m data.prepare`)")


if __name__ == "__main__":
    args = sys.argv[1:]
    try:
        spec = spec_for(args)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(main(spec, args))
