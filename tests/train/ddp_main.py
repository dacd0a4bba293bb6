"""Child program of the DDP, preemption and resume tests: registers the tiny test network, then runs the
synthetic training script.

``--gpus 2`` makes ``train.engine.run`` spawn two local processes; each re-imports this file as ``__mp_main__``, so
the tiny network is registered in every rank. Test hooks (environment): ``TEST_MARK_DIR`` + ``TEST_MARK_AT=E:S``
make each rank write ``<dir>/rank<r>`` (its pid) once step S of 0-based epoch E is done, and every later
step sleep ``TEST_STEP_SLEEP`` seconds, so that a test can send a real signal in the middle of an epoch.
``TEST_START_MARK=<file>`` writes that file when the run starts reading its label CSVs and holds the label scan
there for ``TEST_START_SLEEP`` seconds, so that a test can send a real signal while the run starts.
"""
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE.parent)]

from engine_helpers import register_tiny  # noqa: E402

register_tiny()

from data.prep.synthetic import SYNTHETIC_SPEC  # noqa: E402
from train.engine import loop  # noqa: E402
from train.engine.run import main  # noqa: E402


def _install_mark() -> None:
    mark_dir, at = os.environ.get("TEST_MARK_DIR"), os.environ.get("TEST_MARK_AT")
    if not (mark_dir and at):
        return
    epoch, step = (int(v) for v in at.split(":"))
    sleep = float(os.environ.get("TEST_STEP_SLEEP", "0.5"))
    call = loop.TrainStep.__call__

    def marked(self, model, data, target, where, *args):
        out = call(self, model, data, target, where, *args)
        here = where.replace(",", "").split()  # "epoch N iteration I"
        e, i = int(here[1]) - 1, int(here[3])
        if (e, i) >= (epoch, step):
            rank = os.environ.get("RANK", "0")
            path = Path(mark_dir) / f"rank{rank}"
            if not path.exists():
                path.write_text(str(os.getpid()))
            time.sleep(sleep)
        return out

    loop.TrainStep.__call__ = marked


def _install_start_mark() -> None:
    mark = os.environ.get("TEST_START_MARK")
    if not mark:
        return
    from train.engine import run  # noqa: PLC0415

    build = run.build_loaders

    def slow_build(*args, **kwargs):
        Path(mark).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("TEST_START_SLEEP", "5")))
        return build(*args, **kwargs)

    run.build_loaders = slow_build


_install_mark()
_install_start_mark()

if __name__ == "__main__":
    sys.exit(main(SYNTHETIC_SPEC, sys.argv[1:]))
