"""Checkpoint of ``updated_since`` + ``sort_by=update_time`` passes (pure, no I/O).

A pass asks for ``update_time >= since`` (a closed lower bound) sorted ascending and follows the
API's cursor (a position in (update_time, id) order, so edits during the pass move records to its
end instead of shifting pages). The settling rule is ``crmsync.connectors.cursor``: Pipedrive's
``update_time`` has whole seconds, so

- a version is remembered in ``seen`` (and skipped by later passes) only if its second was settled
  when read; a version read while its second was open is emitted again next time, because an edit
  later in that second keeps the same ``update_time``;
- a page that reached into the open seconds lowers ``open_floor``, and the next pass starts there
  instead of at the watermark: the watermark never carries the next pass past a second that was
  still being written when it was read.

``seen`` keeps only entries at or above the next pass's start, so it stays small. The checkpoint
is saved after every page: an interrupted pass resumes from the API cursor it had reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crmsync.connectors.cursor import StampRule, lower, next_start

# Whole-second stamps; writes may become visible a little after their stamp and the clock behind
# ``Date`` may differ from the one that stamps (options.settle_seconds overrides the 2 s).
DEFAULT_RULE = StampRule(unit_s=1.0, settle_s=2.0)


@dataclass
class Checkpoint:
    watermark: int | None = None  # epoch seconds of the newest update_time emitted
    seen: dict[int, int] = field(default_factory=dict)  # id -> settled update_time already emitted
    pass_since: int | None = None  # the pass in flight: its updated_since ...
    pass_next: str | None = None  # ... and the API cursor of its next page
    in_pass: bool = False
    open_floor: int | None = None  # the lowest second read while still open (next pass starts there)
    carried_floor: int | None = None  # the open floor the pass in flight started from

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Checkpoint:
        if not data:
            return cls()
        return cls(watermark=data.get("watermark"),
                   seen={int(k): int(v) for k, v in (data.get("seen") or {}).items()},
                   pass_since=data.get("pass_since"), pass_next=data.get("pass_next"),
                   in_pass=bool(data.get("in_pass")), open_floor=data.get("open_floor"),
                   carried_floor=data.get("carried_floor"))

    def to_dict(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "seen": {str(k): v for k, v in sorted(self.seen.items())},
                "pass_since": self.pass_since, "pass_next": self.pass_next, "in_pass": self.in_pass,
                "open_floor": self.open_floor, "carried_floor": self.carried_floor}

    def next_since(self) -> int | None:
        """The closed lower bound a new pass would start from."""
        start = next_start(self.watermark, self.open_floor)
        return None if start is None else int(start)

    def begin(self, override_since: int | None = None) -> tuple[int | None, str | None]:
        """(updated_since, API cursor) for the next request: resume a pass or start one."""
        if self.in_pass:
            return self.pass_since, self.pass_next
        since = override_since if override_since is not None else self.next_since()
        # The open region the last pass left is re-read by this one: until this pass ends, a
        # crash must still restart at or below it.
        self.carried_floor, self.open_floor = self.open_floor, None
        self.in_pass, self.pass_since, self.pass_next = True, since, None
        return since, None

    def accept(self, record_id: int, update_time: int, read_at: float | None = None,
               rule: StampRule = DEFAULT_RULE) -> bool:
        """True if this version of the record was not emitted before; remember it once settled.
        ``read_at`` is a lower bound of the server time the page was read at (epoch seconds)."""
        if self.seen.get(record_id) == update_time:
            return False
        if rule.remember(update_time, read_at):
            self.seen[record_id] = update_time
        else:
            self.seen.pop(record_id, None)  # read while its second was open: read it again next time
        if self.watermark is None or update_time > self.watermark:
            self.watermark = update_time
        return True

    def page_read(self, newest: int | None, read_at: float | None, rule: StampRule = DEFAULT_RULE) -> None:
        """A page whose newest ``update_time`` is ``newest`` was read at ``read_at``."""
        floor = rule.reached_open(newest, read_at)
        if floor is not None:
            self.open_floor = int(lower(self.open_floor, floor) or 0)

    def page_done(self, next_cursor: str | None) -> None:
        floor = lower(self.next_since(), self.carried_floor)
        if floor is not None:
            self.seen = {k: v for k, v in self.seen.items() if v >= floor}
        if next_cursor is None:
            self.in_pass, self.pass_since, self.pass_next = False, None, None
            self.carried_floor = None
        else:
            self.pass_next = next_cursor
