"""Child program of the DDP test: registers the tiny test network, then runs the synthetic training script.

``--gpus 2`` makes ``train.run`` spawn two local processes; each re-imports this file as ``__mp_main__``, so
the tiny network is registered in every rank.
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent)]

from engine_helpers import register_tiny  # noqa: E402

register_tiny()

from data.synthetic import SYNTHETIC_SPEC  # noqa: E402
from train.run import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(SYNTHETIC_SPEC, sys.argv[1:]))
