"""Pipedrive deal backfills as several ``update_time`` windows read side by side.

One ``GET /api/v2/deals`` cursor chain cannot overlap its own requests (each page names the next),
so a single chain runs at one answer per round trip (~125 ms), far below the burst limit. Windows
``updated_since <= update_time < updated_until`` (closed lower, open upper bound, per the v2 spec)
are disjoint, so their chains can run at once, each spending from the shared burst limiter.

How the windows are chosen (work stealing, no counting calls): the backfill starts as one chain
over everything. Its first answer gives the oldest ``update_time``, the server time (the backfill's
start) and the round trip; from those, ``chains`` (how many requests must be in flight to keep the
burst limit busy: rate x round trip + 1, capped by the burst limit) and the first splits follow.
A window is split at the middle of its remaining time span, the part above the middle becoming a
new window; whenever a window finishes, the window with the most records still to read (its
density, so far or over its last full page, whichever is higher, times its remaining span) gives up
its upper half. So the windows follow the data's
real distribution (deals are heavily skewed toward recent update times) without a single counting
call; a split costs at most the rest of one page (the split window drops rows at or above its new
bound and ends there; the new window reads them).

Guarantees, as with one chain:

- every window has its own ``Checkpoint`` (``incremental``), advanced only by pages handed to the
  engine; the engine saves all windows' checkpoints with each page, so a kill resumes each window
  where its last stored page left it (a split not yet saved is simply made again);
- a request's ``updated_until`` stays the bound its chain started with (a cursor is only reused
  with the query it came from); a lowered bound is applied to the rows;
- the last window is open above, so a deal edited during the backfill (its ``update_time`` moves
  to now) is read by it or, once it has ended, by incremental sync: the hand-over cursor is that
  window's checkpoint (its watermark is the newest stamp read, as one chain's would be; every edit
  made after it ended is stamped later), so the first incremental pass reads every such edit;
- the ``status=deleted`` pass is one more chain, run beside the windows.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from crmsync.connectors.base import Page, Quarantined
from crmsync.connectors.cursor import StampRule
from crmsync.connectors.pipedrive.http import RawPage
from crmsync.connectors.pipedrive.incremental import Checkpoint
from crmsync.connectors.wire import decode_body
from crmsync.model import Record

FORMAT = "windows/1"
MIN_SPLIT_PAGES = 2  # split only a window with at least this many pages estimated still to read
DEPTH = 1  # answers fetched ahead per chain (the concurrency comes from the chains)
MIN_CHAINS = 4

Fetch = Callable[[dict[str, Any], "str | None"], RawPage]
MapRows = Callable[[list[dict[str, Any]], bool], tuple[list[Record], list[Quarantined], list[str]]]
Epoch = Callable[[Any], "int | None"]


@dataclass
class Window:
    lo: int | None  # closed lower bound (epoch seconds); None: from the beginning
    hi: int | None  # open upper bound the rows are held to; None: open above
    api_hi: int | None  # the ``updated_until`` the chain's requests carry (its bound when it started)
    phase: str = "live"  # live | deleted
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    done: bool = False
    rows: int = 0  # rows kept so far (density estimate; not saved)
    position: int | None = None  # newest update_time kept so far (not saved)
    recent: tuple[int, int] | None = None  # the last full page's rows and stamp span (not saved)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(DEPTH), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "api_hi": self.api_hi, "phase": self.phase, "done": self.done,
                "checkpoint": self.checkpoint.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Window:
        return cls(lo=data.get("lo"), hi=data.get("hi"), api_hi=data.get("api_hi"), phase=data.get("phase", "live"),
                   checkpoint=Checkpoint.from_dict(data.get("checkpoint")), done=bool(data.get("done")))

    def remaining_estimate(self, started: int) -> float:
        """Records this window still has to read: its density times its remaining span. The density
        is the higher of the window's so far and its last full page's: deals crowd toward recent
        update times, so the average of what a window has read underestimates what is above it
        (the open top window's last pages were left to one chain, up to 8 pages at the end)."""
        if self.phase != "live" or self.done or self.position is None or self.lo is None:
            return 0.0
        top = self.hi if self.hi is not None else started
        density = self.rows / max(self.position - self.lo, 1)
        if self.recent is not None:
            rows, span = self.recent
            density = max(density, rows / max(span, 1))
        return density * max(top - self.position, 0)


@dataclass
class WindowedState:
    started: int | None = None  # backfill start on the server's clock minus settling (top of the splits)
    chains: int | None = None  # chains in flight (chosen from the first answer, or options)
    windows: list[Window] = field(default_factory=list)

    @classmethod
    def is_windowed(cls, cursor: dict[str, Any] | None) -> bool:
        return bool(cursor) and (cursor or {}).get("format") == FORMAT

    @classmethod
    def fresh(cls) -> WindowedState:
        return cls(windows=[Window(None, None, None), Window(None, None, None, phase="deleted")])

    @classmethod
    def from_cursor(cls, cursor: dict[str, Any]) -> WindowedState:
        return cls(started=cursor.get("started"), chains=cursor.get("chains"),
                   windows=[Window.from_dict(w) for w in cursor.get("windows") or []])

    def to_cursor(self) -> dict[str, Any]:
        return {"format": FORMAT, "started": self.started, "chains": self.chains,
                "windows": [w.to_dict() for w in self.windows]}

    def handover(self) -> dict[str, Any]:
        """The incremental cursor a finished backfill hands over, as one chain would: the checkpoint
        of the window open above (it holds the newest stamps, its seen versions and its open floor;
        every window below ends under the backfill's settled start), or, when that window read
        nothing, the newest stamp any window read; deletions from the deleted chain's end."""
        live = [w for w in self.windows if w.phase == "live"]
        top = next((w for w in live if w.hi is None), None)
        if top is not None and top.checkpoint.watermark is not None:
            chosen = Checkpoint.from_dict(top.checkpoint.to_dict())
        else:
            marks = [w.checkpoint.watermark for w in live if w.checkpoint.watermark is not None]
            chosen = Checkpoint(watermark=max(marks) if marks else None)
        floors = [w.checkpoint.open_floor for w in live if w.checkpoint.open_floor is not None]
        if floors:
            chosen.open_floor = min(floors)
        deleted = next((w.checkpoint for w in self.windows if w.phase == "deleted"), Checkpoint())
        return {"live": chosen.to_dict(), "deleted": deleted.to_dict()}


def rfc3339(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def chains_for(rate: float | None, round_trip_s: float, burst_allowed: int | None, window_s: float) -> int:
    """Requests that must be in flight for the burst limit to be the bound: the rate the limiter
    sustains (allowed / (window + round trip), a slot being held one window after its answer)
    times the round trip, plus one for the gaps; capped by the burst limit. Never fewer than
    ``MIN_CHAINS``: a rolling window frees its slots in bursts (those its first burst took, a
    window later), and two chains cannot spend a burst (100,000 deals at 35 ms round trips:
    11.3 to 11.9 s with two, 10.9 to 11.4 s with four; bench_quota). No limit known: 4."""
    if rate is None or burst_allowed is None:
        return MIN_CHAINS
    sustained = burst_allowed / (window_s + round_trip_s)
    return max(min(MIN_CHAINS, burst_allowed), min(burst_allowed, math.ceil(sustained * round_trip_s) + 1))


def split_point(window: Window, started: int) -> int | None:
    """Where to split ``window`` (the new window's closed lower bound), or None when too small."""
    if window.position is None:
        return None
    top = window.hi if window.hi is not None else started
    mid = (window.position + 1 + top) // 2
    return mid if window.position + 1 < mid < top else None


class WindowedPull:
    """Runs a windowed deal backfill: pages of all windows, in the order their answers arrive."""

    def __init__(self, state: WindowedState, *, fetch: Fetch, map_rows: MapRows, epoch: Epoch,
                 rule: StampRule, page_limit: int, chains: Callable[[float], int],
                 name: str = "pipedrive-windows") -> None:
        self.state = state
        self.fetch = fetch
        self.map_rows = map_rows
        self.epoch = epoch
        self.rule = rule
        self.page_limit = page_limit
        self.choose_chains = chains
        self.name = name
        self._queue: queue.Queue[tuple[Window, RawPage | None, float, BaseException | None]] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._context = contextvars.copy_context()
        self.splits = 0

    # --- chains -------------------------------------------------------------------------------------
    def _start(self, window: Window) -> None:
        since, api_cursor = window.checkpoint.begin(window.lo)
        query: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": self.page_limit}
        if window.phase == "deleted":
            query["status"] = "deleted"
        if since is not None:
            query["updated_since"] = rfc3339(since)
        if window.api_hi is not None:
            query["updated_until"] = rfc3339(window.api_hi)
        context = self._context.copy()
        thread = threading.Thread(target=context.run, args=(self._chain, window, query, api_cursor),
                                  name=f"{self.name}-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _chain(self, window: Window, query: dict[str, Any], api_cursor: str | None) -> None:
        try:
            while not window.stop.is_set():
                window.slots.acquire()
                if window.stop.is_set():
                    return
                began = time.monotonic()
                raw = self.fetch(query, api_cursor)
                self._queue.put((window, raw, time.monotonic() - began, None))
                if raw.next_cursor is None:
                    return
                api_cursor = raw.next_cursor
        except BaseException as exc:  # surfaces in the consumer at the page where it happened
            self._queue.put((window, None, 0.0, exc))

    def _running(self) -> list[Window]:
        return [w for w in self.state.windows if not w.done]

    def _fill(self) -> None:
        """Split the heaviest windows until ``chains`` live chains run (or nothing is worth splitting)."""
        started = self.state.started
        if started is None or self.state.chains is None:
            return
        while sum(1 for w in self._running() if w.phase == "live") < self.state.chains:
            candidates = [w for w in self._running() if w.phase == "live" and w.position is not None]
            if not candidates:
                return
            heaviest = max(candidates, key=lambda w: w.remaining_estimate(started))
            mid = split_point(heaviest, started)
            if mid is None or heaviest.remaining_estimate(started) < MIN_SPLIT_PAGES * self.page_limit:
                return
            upper = Window(mid, heaviest.hi, heaviest.hi)
            heaviest.hi = mid
            self.state.windows.append(upper)
            self.splits += 1
            self._start(upper)

    # --- pages --------------------------------------------------------------------------------------
    def pages(self) -> Iterator[Page]:
        for window in self._running():
            self._start(window)
        try:
            while self._running():
                window, raw, round_trip, error = self._queue.get()
                if window.stop.is_set():
                    continue  # an answer of a window that has ended (read again, if ever, by nobody)
                if error is not None:
                    raise error
                assert raw is not None
                window.slots.release()
                yield self._page(window, raw, round_trip)
        finally:
            for window in self.state.windows:
                window.stop.set()
                window.slots.release()

    def _page(self, window: Window, raw: RawPage, round_trip: float) -> Page:
        if self.state.started is None and raw.read_at is not None:
            self.state.started = int(self.rule.floor(raw.read_at))
        checkpoint = window.checkpoint
        kept: list[dict[str, Any]] = []
        fresh: list[dict[str, Any]] = []
        beyond = False
        newest: int | None = None
        for row in decode_body(raw.content).get("data") or []:
            stamp = self.epoch(row.get("update_time"))
            if stamp is not None and window.hi is not None and stamp >= window.hi:
                beyond = True  # the rest belongs to the window split off above
                break
            kept.append(row)
            if stamp is not None:
                newest = stamp if newest is None else max(newest, stamp)
            if stamp is None or checkpoint.accept(int(row["id"]), stamp, raw.read_at, self.rule):
                fresh.append(row)
        checkpoint.page_read(newest, raw.read_at, self.rule)
        finished = raw.next_cursor is None or beyond
        checkpoint.page_done(None if finished else raw.next_cursor)
        window.rows += len(kept)
        if len(kept) == self.page_limit and newest is not None:
            oldest = self.epoch(kept[0].get("update_time"))  # ascending: the first row is the oldest
            if oldest is not None:
                window.recent = (len(kept), newest - oldest)
        if newest is not None:
            window.position = newest if window.position is None else max(window.position, newest)
            if window.lo is None:
                window.lo = min(self.epoch(r.get("update_time")) or newest for r in kept)
        if finished:
            window.done = True
            window.stop.set()
            window.slots.release()
        if self.state.chains is None:
            self.state.chains = self.choose_chains(round_trip)
        self._fill()
        records, bad, deleted = self.map_rows(fresh, window.phase == "deleted")
        done = not self._running()
        cursor = self.state.handover() if done else self.state.to_cursor()
        return Page(records, cursor, bad, deleted_ids=deleted, api_calls=1, done=done)
