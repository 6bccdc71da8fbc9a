"""The one stop-signal helper: first signal sets the event (exit code 128+signal), a second exits at once."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from crmsync.signals import install_stop_signals


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_first_signal_stops_cleanly_second_exits(restore_handlers: None) -> None:
    stopped: list[bool] = []
    stop = install_stop_signals(on_stop=lambda: stopped.append(True))
    assert stop.exit_code is None
    os.kill(os.getpid(), signal.SIGTERM)
    _wait_for(stop.event.is_set)
    assert stop.event.is_set() and stopped == [True]
    assert stop.exit_code == 128 + signal.SIGTERM
    with pytest.raises(SystemExit) as info:
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(lambda: False, 2.0)
    assert info.value.code == 128 + signal.SIGINT
