"""The simulators' wall clock: what each fake CRM stamps its records with and puts in ``Date``.

Real time by default. A test can freeze it at an instant, move it by a step, and let it run on
again, so that edits land inside one timestamp unit (one Pipedrive or Salesforce second) while a
client pages through that same unit: the races a sync must survive become reproducible. Rate
limit windows keep using the monotonic clock of the process (they are about real request rates).
"""

from __future__ import annotations

import datetime as dt
import threading
import time


class SimClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0  # seconds added to the real clock while running
        self._frozen: float | None = None

    def time(self) -> float:
        """Epoch seconds now, as the simulated system sees it."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            return time.time() + self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time(), dt.UTC)

    def now_ms(self) -> int:
        return int(self.time() * 1000)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self, at: float | dt.datetime | None = None) -> float:
        """Stop the clock (at ``at``, or at the current simulated time); returns the frozen instant."""
        value = self.time() if at is None else (at.timestamp() if isinstance(at, dt.datetime) else float(at))
        with self._lock:
            self._frozen = value
        return value

    def advance(self, seconds: float) -> float:
        """Move the clock forward (frozen or running); returns the new simulated time."""
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds
        return self.time()

    def run(self) -> None:
        """Let a frozen clock run on from where it stands (no jump back to real time)."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
