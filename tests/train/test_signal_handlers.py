"""A training run in this process gives back the SIGTERM/SIGUSR1/SIGINT handlers it installed, on every way out:
a finished run, a run stopped by a real signal mid-epoch, and a run that raises."""
from __future__ import annotations

import os
import signal

import pytest
from engine_helpers import TinyNet, dataset_for, load_script, tiny_args, tiny_network

from train.engine.run import run
from train.results.preempt import SIGNALS


@pytest.fixture(scope="module")
def spec_and_data():
    spec = load_script("train_synthetic").SPEC
    with tiny_network():
        yield spec, dataset_for(spec)


def _on_training_call(monkeypatch: pytest.MonkeyPatch, n: int, action) -> None:
    """Make the tiny network call ``action()`` in its ``n``-th training forward pass."""
    forward, calls = TinyNet.forward, []

    def counting(self, x):
        if self.training:
            calls.append(1)
            if len(calls) == n:
                action()
        return forward(self, x)

    monkeypatch.setattr(TinyNet, "forward", counting)


def _sentinels() -> dict[int, object]:
    """Install a distinct Python handler per watched signal, so a leftover handler cannot pass by being default."""
    def sentinel(signum, frame):  # pragma: no cover - never called: the run's handlers replace it while it runs
        raise AssertionError(f"signal {signum} reached the sentinel")
    return {sig: sentinel for sig in SIGNALS}


@pytest.fixture
def sentinels():
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    installed = _sentinels()
    for sig, handler in installed.items():
        signal.signal(sig, handler)
    yield installed
    for sig, handler in before.items():
        signal.signal(sig, handler)


def _assert_restored(installed: dict[int, object]) -> None:
    left = {signal.Signals(s).name for s in SIGNALS if signal.getsignal(s) is not installed[s]}
    assert not left, f"handlers not restored: {sorted(left)}"


def test_a_finished_run_restores_the_handlers(spec_and_data, tmp_path, sentinels) -> None:
    spec, data = spec_and_data
    summary = run(spec, tiny_args(data, tmp_path, "--end-epoch", "1"))
    assert not summary["preempted"]
    _assert_restored(sentinels)


def test_a_run_stopped_by_a_real_sigterm_restores_the_handlers(spec_and_data, tmp_path, sentinels,
                                                               signals_to_self, monkeypatch) -> None:
    spec, data = spec_and_data
    _on_training_call(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    summary = run(spec, tiny_args(data, tmp_path, "--end-epoch", "2"))
    assert summary["preempted"] == "SIGTERM"  # the run's handler caught it, not the sentinel
    _assert_restored(sentinels)


def test_a_run_that_raises_restores_the_handlers(spec_and_data, tmp_path, sentinels, monkeypatch) -> None:
    spec, data = spec_and_data

    def fail() -> None:
        raise RuntimeError("injected failure in the training step")

    _on_training_call(monkeypatch, 2, fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        run(spec, tiny_args(data, tmp_path, "--end-epoch", "1"))
    _assert_restored(sentinels)


INNER = '''
import os
import signal

from engine_helpers import TinyNet, dataset_for, load_script, tiny_args, tiny_network

from train.engine.run import run


def test_leaves_a_handler():
    signal.signal(signal.SIGUSR1, lambda signum, frame: None)


def test_a_signal_from_outside_during_a_run(tmp_path, monkeypatch):
    forward = TinyNet.forward
    monkeypatch.setattr(TinyNet, "forward", lambda self, x: (os.kill(os.getpid(), signal.SIGTERM), forward(self, x))[1])
    spec = load_script("train_synthetic").SPEC
    with tiny_network():
        run(spec, tiny_args(dataset_for(spec), tmp_path, "--end-epoch", "1"))


def test_never_reached():
    pass
'''


@pytest.mark.slow
def test_the_guard_fails_a_leftover_handler_and_a_caught_sigterm_stops_the_suite(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "conftest", "-p", "no:cacheprovider",
                           str(tmp_path / "test_inner.py")], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    assert "SIGTERM reached the test process during" in proc.stdout + proc.stderr
    assert "test_leaves_a_handler ERROR" in proc.stdout  # its teardown failed: SIGUSR1's handler was left
    assert "test_never_reached" not in proc.stdout  # the session stopped before the next test
