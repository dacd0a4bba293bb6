"""Shared fixtures for the whole suite (CPU only, small threads so parallel runs stay fair).

Signals: training runs in-process install `train.results.preempt.Preemption`'s handlers, which only record a
SIGTERM/SIGUSR1/SIGINT so the run can save and stop. A signal sent to the test process from outside (``timeout``,
Ctrl-C, a batch scheduler) during such a run would be swallowed and the suite would go on. The autouse guard
below therefore stops the whole session when a run caught a signal that the test did not send itself (tests that
signal their own process ask for the ``signals_to_self`` fixture), and fails a test that leaves any of those
handlers changed when it returns.
"""
from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import torch
from reference_data import original_models

from train.results.preempt import SIGNALS, Preemption

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` are skipped, with the reason, where no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device: torch.cuda.is_available() is False here "
                                   "(bash benchmarks/gpu_check.sh runs these on a GPU machine)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def reference() -> dict:
    return original_models()


@pytest.fixture
def signals_to_self() -> None:
    """Marks a test that sends SIGTERM/SIGUSR1/SIGINT to its own process: a run catching them is expected."""


@pytest.fixture(autouse=True)
def _signal_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    before = {sig: signal.getsignal(sig) for sig in SIGNALS}
    guards: list[Preemption] = []
    enter = Preemption.__enter__

    def entering(self: Preemption) -> Preemption:
        guards.append(self)  # each run's guard: its ``signum`` says whether it caught a signal
        return enter(self)

    monkeypatch.setattr(Preemption, "__enter__", entering)
    yield
    caught = [guard.signum for guard in guards if guard.signum is not None]
    left = [signal.Signals(sig).name for sig in SIGNALS if signal.getsignal(sig) is not before[sig]]
    for sig, handler in before.items():
        signal.signal(sig, handler)  # the rest of the suite stays stoppable whatever this test did
    if caught and "signals_to_self" not in request.fixturenames:
        name = signal.Signals(caught[0]).name
        pytest.exit(f"{name} reached the test process during {request.node.nodeid}; a training run caught it, "
                    "so the suite stops here", returncode=128 + caught[0])
    assert not left, f"the test returned with handlers of {left} still changed (a run must restore them)"
