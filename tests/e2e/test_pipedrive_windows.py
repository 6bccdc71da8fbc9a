"""Pipedrive deal backfills read as several ``update_time`` windows at once (issue 17), end to end:
connector + engine + a real store against the sandbox with its burst limit on.

The windowed backfill equals the sandbox's truth with no 429; edits, creates and deletes made
while it runs arrive with the following incremental pass; a SIGKILL mid-way resumes each window
from its own checkpoint without loss; and the windows really overlap (more than one chain of
requests in flight), or the tests would prove nothing about them.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_harness import CrmUnderTest, assert_store_equals_truth, backfill_in_child

from crmsync.connectors import build_connector, ratelimit
from crmsync.connectors.base import Page
from crmsync.connectors.pipedrive.windows import FORMAT
from crmsync.model import ObjectType
from crmsync.store import Store
from crmsync.sync.engine import ObjectResult, SyncEngine, backfill_cursor_name
from request_rates import most_in_any_window
from waiting import wait_until

BURST = 12  # requests per 2 s, as the sandbox counts them (x-ratelimit-limit)
pytestmark = pytest.mark.parametrize("crm", ["pipedrive"], indirect=True)


@pytest.fixture(autouse=True)
def fresh_limiters() -> Iterator[None]:
    ratelimit.forget()
    yield
    ratelimit.forget()


def limited(crm: CrmUnderTest, latency_ms: float = 30) -> None:
    crm.sim.knobs.update({"burst_limit": BURST, "burst_window_s": 2.0, "latency_ms": latency_ms})


def engine_for(store: Store, crm: CrmUnderTest, **options: Any) -> SyncEngine:
    conn = crm.connection(stage_history=False, backfill_windows="auto", **options)
    return SyncEngine(store, build_connector(conn), conn)



class Windows:
    """Records the windows of every checkpoint the engine was handed."""

    def __init__(self) -> None:
        self.most = 0
        self.running_most = 0
        self.final: dict[str, Any] | None = None

    def __call__(self, result: ObjectResult, page: Page) -> None:
        if page.cursor.get("format") == FORMAT:
            windows = [w for w in page.cursor["windows"] if w["phase"] == "live"]
            self.most = max(self.most, len(windows))
            self.running_most = max(self.running_most, sum(1 for w in windows if not w["done"]))
        if page.done:
            self.final = page.cursor


@pytest.mark.deals(4000)
def test_windowed_backfill_equals_truth_under_the_burst_limit(store: Store, crm: CrmUnderTest) -> None:
    limited(crm)
    engine = engine_for(store, crm)
    seen = Windows()
    crm.sim.log.reset()
    result = engine.backfill("deals", progress=seen)
    assert result.status == "ok", result.error
    assert result.complete is True, (result.source_count, result.stored_count)
    assert seen.running_most >= 2, "the backfill never had two windows running"
    statuses = crm.sim.log.snapshot()["by_status"]
    assert int(statuses.get("429", 0)) == 0, statuses
    times = [r.at for r in crm.sim.log.recent if r.path.startswith("/api")]
    assert len(times) > 2 * BURST
    assert most_in_any_window(times, 2.0) <= BURST + 4  # answer stamps trail arrivals by the latency
    assert_store_equals_truth(store, crm, engine.conn.name)
    # the hand-over: incremental sync starts from the backfill's start, in the one-chain format
    handed = store.load_cursor(engine.conn.name, "deals")
    assert handed is not None and set(handed["connector"]) == {"live", "deleted"}
    assert seen.final is not None and handed["connector"] == seen.final
    quiet = engine.run("deals", mode="sync")
    assert quiet.status == "ok", quiet.error
    assert_store_equals_truth(store, crm, engine.conn.name)


@pytest.mark.deals(3000)
def test_edits_creates_and_deletes_during_a_windowed_backfill(store: Store, crm: CrmUnderTest) -> None:
    limited(crm, latency_ms=20)
    engine = engine_for(store, crm)
    by_age = [str(d["id"]) for d in sorted(crm.sim.truth(crm.deal_object), key=lambda d: (d["update_time"], d["id"]))]
    seen = Windows()
    touched: list[str] = []

    def meddle(result: ObjectResult, page: Page) -> None:
        seen(result, page)
        if result.pages == 6 and not touched:  # several windows are running by now
            crm.edit_name(by_age[0], "Oldest, renamed while windows run")  # read long ago by the first window
            crm.edit_name(by_age[len(by_age) // 2], "Middle, renamed")
            crm.edit_name(by_age[-1], "Newest, renamed")
            crm.sim.delete(crm.deal_object, by_age[1])
            crm.sim.delete(crm.deal_object, by_age[-2])
            touched.append(crm.new_deal("Created while windows run"))
        if page.done:  # every chain has ended: only the hand-over to incremental sync can catch these
            crm.edit_name(by_age[2], "Oldest but two, renamed after the last page")
            crm.sim.delete(crm.deal_object, by_age[3])
            touched.append(crm.new_deal("Created after the last page"))

    result = engine.backfill("deals", progress=meddle)
    assert result.status == "ok", result.error
    assert len(touched) == 2, "the backfill had fewer than six pages"
    assert seen.running_most >= 2
    follow_up = engine.run("deals", mode="sync")
    assert follow_up.status == "ok", follow_up.error
    assert_store_equals_truth(store, crm, engine.conn.name)
    for gone_id in (by_age[1], by_age[-2], by_age[3]):
        gone = store.get(ObjectType.DEAL, engine.conn.name, gone_id)
        assert gone is None or gone.deleted


@pytest.mark.deals(4000)
def test_sigkill_mid_windowed_backfill_then_resume(store: Store, crm: CrmUnderTest, tmp_path: Path) -> None:
    conn = crm.connection(stage_history=False, backfill_windows="auto")
    limited(crm, latency_ms=60)  # slow pages so the kill lands mid-backfill
    child = backfill_in_child(store, conn, tmp_path)
    cursor_name = backfill_cursor_name("deals", None, None)

    def running_windows() -> int:
        saved = store.load_cursor(conn.name, cursor_name)
        connector = (saved or {}).get("connector") or {}
        return sum(1 for w in connector.get("windows") or [] if w["phase"] == "live" and not w["done"])

    def mid_backfill() -> bool:
        assert child.poll() is None, "the backfill finished before it could be killed"
        return store.count(ObjectType.DEAL, conn.name) >= 1000 and running_windows() >= 2

    wait_until(mid_backfill, timeout=60, what="1,000 deals stored with two windows running", interval=0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    crm.sim.knobs.update({"latency_ms": 0})
    partial = store.count(ObjectType.DEAL, conn.name)
    assert 0 < partial < len(crm.truth())
    saved = store.load_cursor(conn.name, cursor_name)
    assert saved is not None and saved["connector"]["format"] == FORMAT and not saved["complete"]
    assert running_windows() >= 2

    engine = SyncEngine(store, build_connector(conn), conn)
    resumed = engine.backfill("deals")
    assert resumed.status == "ok", resumed.error
    assert resumed.complete is True
    # each window resumed from its own checkpoint: at most a page per window read again
    windows = len(saved["connector"]["windows"])
    assert resumed.records <= len(crm.truth()) - partial + windows * 100
    assert_store_equals_truth(store, crm, conn.name)
    assert engine.run("deals", mode="sync").status == "ok"
    assert_store_equals_truth(store, crm, conn.name)
