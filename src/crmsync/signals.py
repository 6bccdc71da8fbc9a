"""The one stop-signal helper of every long-running command (sync, backfill, worker, sandbox serve).

First SIGTERM/SIGINT: set the stop event (the current page finishes, its checkpoint is kept, the
command exits with ``128 + signal``) and call ``on_stop``; a second signal exits at once with
``128 + signal``. Signal handlers can only be installed from the main thread: elsewhere (tests,
embedded use) nothing is installed and the caller's event still works.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("crmsync.signals")


class StopSignal:
    """The stop event plus the number of the signal that set it (None: not a signal)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.signum: int | None = None

    @property
    def exit_code(self) -> int | None:
        """``128 + signal`` once a signal asked to stop (the shell's convention), else None."""
        return None if self.signum is None else 128 + self.signum


def install_stop_signals(event: threading.Event | None = None, *,
                         on_stop: Callable[[], Any] | None = None) -> StopSignal:
    stop = StopSignal(event)

    def handler(signum: int, frame: Any) -> None:
        if stop.event.is_set():
            raise SystemExit(128 + signum)
        stop.signum = signum
        log.warning("stop_requested", signal=signal.Signals(signum).name)
        stop.event.set()
        if on_stop is not None:
            on_stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
    return stop
