"""Pure cursor logic for ``updated_since`` + ``sort_by=update_time`` passes (no I/O).

A pass asks for ``update_time >= since`` (a closed lower bound) sorted ascending and follows the
API's cursor. ``since`` is the watermark (the newest ``update_time`` emitted) minus a lookback.
Records already emitted with the same ``(update_time, id)`` are skipped (``seen``), so a
closed bound does not re-emit a block of records sharing one timestamp forever, and a record
that appears late inside the lookback window is still caught. ``update_time`` has whole-second
precision, so a version read while its second was still running is not remembered (``settled``):
an edit later in that same second keeps the same ``update_time`` and must not be skipped. ``seen`` only keeps entries inside
the lookback window, so it stays small. The checkpoint is saved after every page: an interrupted
pass resumes from the API cursor it had reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# A version read at least this long after its update_time's second began cannot change within it.
SETTLE_SECONDS = 1


@dataclass
class Checkpoint:
    watermark: int | None = None  # epoch seconds of the newest update_time emitted
    seen: dict[int, int] = field(default_factory=dict)  # id -> update_time, inside the lookback window
    pass_since: int | None = None  # the pass in flight: its updated_since ...
    pass_next: str | None = None  # ... and the API cursor of its next page
    in_pass: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Checkpoint:
        if not data:
            return cls()
        return cls(watermark=data.get("watermark"),
                   seen={int(k): int(v) for k, v in (data.get("seen") or {}).items()},
                   pass_since=data.get("pass_since"), pass_next=data.get("pass_next"),
                   in_pass=bool(data.get("in_pass")))

    def to_dict(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "seen": {str(k): v for k, v in sorted(self.seen.items())},
                "pass_since": self.pass_since, "pass_next": self.pass_next, "in_pass": self.in_pass}

    def begin(self, lookback_s: int, override_since: int | None = None) -> tuple[int | None, str | None]:
        """(updated_since, API cursor) for the next request: resume a pass or start one."""
        if self.in_pass:
            return self.pass_since, self.pass_next
        if override_since is not None:
            since: int | None = override_since
        elif self.watermark is None:
            since = None
        else:
            since = self.watermark - lookback_s
        self.in_pass, self.pass_since, self.pass_next = True, since, None
        return since, None

    def accept(self, record_id: int, update_time: int, read_at: float | None = None) -> bool:
        """True if this version of the record was not emitted before (and remember it once its
        second is over: ``read_at`` is when the request that returned it was sent, epoch seconds)."""
        if self.seen.get(record_id) == update_time:
            return False
        if read_at is None or read_at >= update_time + SETTLE_SECONDS:
            self.seen[record_id] = update_time
        else:
            self.seen.pop(record_id, None)  # read inside its own second: read it again next time
        if self.watermark is None or update_time > self.watermark:
            self.watermark = update_time
        return True

    def page_done(self, next_cursor: str | None, lookback_s: int) -> None:
        if self.watermark is not None:
            floor = self.watermark - lookback_s
            self.seen = {k: v for k, v in self.seen.items() if v >= floor}
        if next_cursor is None:
            self.in_pass, self.pass_since, self.pass_next = False, None, None
        else:
            self.pass_next = next_cursor
