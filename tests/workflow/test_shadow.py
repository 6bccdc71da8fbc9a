"""Shadow mode against each CRM's sandbox and a real store.

A 300-deal world is backfilled twice: into the store under test and into a second store. A
candidate rule set (enterprise amounts score 40 instead of 20; at most 2 hygiene tasks per owner a
day instead of 10) is recorded as a version and shadowed beside the live rules. The shadow pass
sends nothing to the CRM (request counters stay at zero) and queues nothing (no outbox rows, no
decision-log rows). Then the live runner runs on the store under test and the candidate runs, as
if it were live, on the second store: the report's per-record differences are exactly the
differences between those two real runs, and its live side is exactly what the live runner logged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_world import CRMS, copied_rules, one_crm_sandbox, settings_for
from crmsync.decide.runner import current_rule_set, run_full
from crmsync.model import ObjectType, Record, now_utc
from crmsync.report.shadow import shadow_page, shadow_report
from crmsync.runtime.pipeline import RulesStep, SyncStep, run_connection_cycle
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.store import tables as t
from crmsync.store.workflow_tables import shadow_decisions, shadow_records
from crmsync.sync.runner import open_engine
from crmsync.trials.shadow import open_periods, record_version, run_shadow, start_period, stop_period


@pytest.fixture(params=CRMS)
def system(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(system: str, tmp_path: Path) -> Iterator[SandboxHandle]:
    with one_crm_sandbox(system, tmp_path, seed=11) as handle:
        yield handle


def _candidate(tmp_path: Path) -> Path:
    return copied_rules(tmp_path, name="candidate", edits={
        "scoring.yaml": ("{name: enterprise_amount, points: 20,", "{name: enterprise_amount, points: 40,"),
        "hygiene.yaml": ("daily_cap_per_owner: 10", "daily_cap_per_owner: 2")})


def _live_settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    return settings_for(sandbox, store, tmp_path / "live.yaml", copied_rules(tmp_path, name="live"))


def _backfill(settings: Settings, store: Store, system: str) -> None:
    with open_engine(settings, store, CONNECTION_NAMES[system]) as engine:
        for object_name in CRM_OBJECTS[system]:
            assert engine.backfill(object_name).status == "ok"


def _value(record: Record, path: str) -> Any:
    if path.startswith("extra."):
        return record.extra.get(path[len("extra."):])
    return getattr(record, path, None)


def _effects(store: Store, live_store: Store, connection: str) -> dict[tuple[str, str, str], Any]:
    """Per record: (owner, scoring fields, task keys) after the decisions logged in ``store``,
    starting from the records as ``live_store`` holds them."""
    d = t.decisions.c
    with store.engine.connect() as conn:
        rows = list(conn.execute(select(d.object_type, d.source_id, d.rule_kind, d.action, d.fields,
                                        d.idempotency_key).where(d.connection == connection).order_by(d.id)))
    out: dict[tuple[str, str, str], Any] = {}
    for ot, sid, kind, action, fields, key in rows:
        rk = (connection, ot, sid)
        if rk not in out:
            record = live_store.get(ot, connection, sid) if ot in ("deal", "lead") else None
            out[rk] = {"owner": None if record is None else record.owner_id, "score": {}, "tasks": set(),
                       "record": record}
        e = out[rk]
        if action == "assign_owner":
            e["owner"] = fields["owner_id"]
        elif action == "set_fields" and kind == "scoring":
            e["score"].update({k: None if v is None else str(v) for k, v in fields.items()})
        elif action == "create_task":
            e["tasks"].add(key)
    return out


def _score(e: dict[str, Any] | None, paths: set[str], record: Record | None) -> dict[str, str | None]:
    score = {p: None if record is None or _value(record, p) is None else str(_value(record, p)) for p in paths}
    if e is not None:
        score.update(e["score"])
    return score


def test_shadow_pushes_nothing_and_reports_the_differences_exactly(
        system: str, sandbox: SandboxHandle, store: Store, empty_store_url: Callable[[], str],
        tmp_path: Path) -> None:
    name = CONNECTION_NAMES[system]
    candidate = _candidate(tmp_path)
    settings = _live_settings(sandbox, store, tmp_path)
    _backfill(settings, store, system)
    other = Store.open(empty_store_url())
    try:
        other.upgrade()
        other_settings = settings_for(sandbox, other, tmp_path / "candidate.yaml", candidate)
        _backfill(other_settings, other, system)

        now = now_utc()
        version = record_version(store, candidate, author="test", note="candidate")
        period_id = start_period(store, version, now - dt.timedelta(hours=1), now + dt.timedelta(days=1),
                                 created_by="test")
        sim: Any = sandbox.sims[system]
        sim.log.reset()
        live_set, _ = current_rule_set(settings, store)
        (run,) = run_shadow(store, live_set, name, [], now=now)

        # nothing went anywhere: no request to the CRM, no outbox row, no decision-log row
        assert sim.log.snapshot()["total"] == 0
        assert store.outbox_items(connection=name, limit=100_000) == []
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(t.decisions)).scalar_one() == 0
            logged = {side: n for side, n in conn.execute(
                select(shadow_decisions.c.side, func.count()).group_by(shadow_decisions.c.side))}
        assert run.evaluated == store.count(ObjectType.DEAL, name) + store.count(ObjectType.LEAD, name)
        assert logged == run.logged and logged["live"] > 0 and logged["shadow"] > 0

        # the two rule sets for real: live on this store, the candidate on the copy
        run_full(settings, store, name, now=now)
        run_full(other_settings, other, name, now=now)

        with store.engine.connect() as conn:
            live_keys = {k for (k,) in conn.execute(select(t.decisions.c.idempotency_key)
                                                    .where(t.decisions.c.connection == name))}
            shadow_live_keys = {k for (k,) in conn.execute(select(shadow_decisions.c.idempotency_key)
                                                           .where(shadow_decisions.c.side == "live"))}
        assert shadow_live_keys == live_keys  # the live side is exactly what the live runner decided

        live, shadow = _effects(store, store, name), _effects(other, store, name)
        expected = set()
        for rk in set(live) | set(shadow):
            a, b = live.get(rk), shadow.get(rk)
            record = store.get(rk[1], name, rk[2]) if rk[1] in ("deal", "lead") else None
            paths = set((a or {}).get("score", {})) | set((b or {}).get("score", {}))
            owner_a = a["owner"] if a else (record.owner_id if record else None)
            owner_b = b["owner"] if b else (record.owner_id if record else None)
            score_a, score_b = _score(a, paths, record), _score(b, paths, record)
            tasks_a, tasks_b = (a or {}).get("tasks", set()), (b or {}).get("tasks", set())
            if owner_a != owner_b or score_a != score_b or tasks_a != tasks_b:
                expected.add((rk, owner_a, owner_b, tuple(sorted(score_a.items())), tuple(sorted(score_b.items())),
                              tuple(sorted(tasks_a - tasks_b)), tuple(sorted(tasks_b - tasks_a))))

        report = shadow_report(store, period_id)
        got = {((x.connection, x.object_type, x.source_id), x.live.owner, x.shadow.owner,
                tuple(sorted(x.live.score.items())), tuple(sorted(x.shadow.score.items())),
                tuple(x.only_live_tasks), tuple(x.only_shadow_tasks)) for x in report.differences}
        assert got == expected
        counts = report.counts
        assert counts["records_differing"] == len(expected) > 0
        assert counts["scores_differ"] > 0 and counts["tasks_only_live"] > 0  # the cap of 2 holds tasks back
        assert counts["tasks_only_live"] == sum(len(e[5]) for e in expected)
        page = shadow_page(report)
        assert f"{counts['records_differing']:,} would change" in page.findings[0]
    finally:
        other.close()


@pytest.mark.parametrize("system", ["hubspot"])  # the worker step is the same for every CRM
def test_the_worker_shadows_only_while_the_period_is_open(system: str, sandbox: SandboxHandle, store: Store,
                                                          tmp_path: Path) -> None:
    name = CONNECTION_NAMES[system]
    settings = _live_settings(sandbox, store, tmp_path)
    _backfill(settings, store, system)
    version = record_version(store, _candidate(tmp_path), author="test")
    now = now_utc()
    later = start_period(store, version, now + dt.timedelta(days=1), now + dt.timedelta(days=2), created_by="test")
    run_connection_cycle(settings, store, name, steps=[RulesStep()])
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(shadow_records)).scalar_one() == 0
    assert open_periods(store, now) == []
    current = start_period(store, version, now - dt.timedelta(minutes=5), now + dt.timedelta(days=1),
                           created_by="test")
    report = run_connection_cycle(settings, store, name, steps=[RulesStep()])
    assert report.counts["trials"]["shadow_evaluated"] == store.count(ObjectType.DEAL, name)
    with store.engine.connect() as conn:
        evaluated = conn.execute(select(func.count()).select_from(shadow_records)
                                 .where(shadow_records.c.period_id == current)).scalar_one()
    assert evaluated == store.count(ObjectType.DEAL, name)
    assert store.outbox_items(connection=name, limit=10) == []  # nothing changed: the live rules were skipped

    # a rep raises a deal to an enterprise amount: the next cycle pulls it, both sides re-evaluate it,
    # and the live side is exactly what the live rules decided in that cycle
    deal = next(d for d in store.iter_records(ObjectType.DEAL, connection=name)
                if not d.is_closed and (d.amount or 0) < 10_000)
    with store.engine.connect() as conn:
        before = {k for (k,) in conn.execute(select(shadow_decisions.c.idempotency_key)
                                             .where(shadow_decisions.c.source_id == deal.source_id))}
    sim: Any = sandbox.sims[system]
    sim.edit("deals", deal.source_id, {"amount": "75000"})
    sim.clock.advance(3_601)
    cycle = run_connection_cycle(settings, store, name, steps=[SyncStep(), RulesStep()])
    assert cycle.outcomes["rules"] == "ok", cycle.outcomes
    d, s = t.decisions.c, shadow_decisions.c
    with store.engine.connect() as conn:
        live_keys = {k for (k,) in conn.execute(select(d.idempotency_key).where(d.source_id == deal.source_id))}
        sides = {side: {k for (k,) in conn.execute(select(s.idempotency_key).where(
            (s.source_id == deal.source_id) & (s.side == side) & (s.period_id == current)))} - before
            for side in ("live", "shadow")}
        scores = {side: [f for (f,) in conn.execute(select(s.fields).where(
            (s.source_id == deal.source_id) & (s.side == side) & (s.rule_kind == "scoring")
            & s.idempotency_key.not_in(before)))] for side in ("live", "shadow")}
    assert live_keys and sides["live"] == live_keys  # this cycle's live decisions, exactly
    (live_score,), (shadow_score,) = scores["live"], scores["shadow"]
    assert float(shadow_score["extra.crmsync_score"]) == float(live_score["extra.crmsync_score"]) + 20
    diff = {x.source_id: x for x in shadow_report(store, current).differences}[deal.source_id]
    assert diff.score_differs and not diff.owner_differs
    assert stop_period(store, current) and not stop_period(store, current)
    assert [p.id for p in open_periods(store, now_utc())] == []
    assert later != current


@pytest.mark.parametrize("system", ["pipedrive"])
def test_shadow_sides_close_resolved_tasks_as_live_does(system: str, sandbox: SandboxHandle, store: Store,
                                                         tmp_path: Path) -> None:
    """A rep fixes a past close date: the live rules complete its task; the shadow period's live side
    decides the same close (same key), the candidate's side too, and only live's close is queued."""
    from crmsync.connectors import build_connector
    from crmsync.sync.outbox import drain

    name = CONNECTION_NAMES[system]
    settings = _live_settings(sandbox, store, tmp_path)
    _backfill(settings, store, system)
    run_full(settings, store, name)
    conn = settings.connection(name)

    def push() -> None:
        connector = build_connector(conn)
        try:
            assert drain(store, connector, conn).failed == 0
        finally:
            connector.close()

    push()
    past = next(i for i in store.outbox_items(connection=name, limit=100_000)
                if i.idempotency_key.startswith("hygiene-task:close_date_in_past:"))
    deal_id = str(past.fields["deal_id"])
    version = record_version(store, _candidate(tmp_path), author="test")
    now = now_utc()
    period_id = start_period(store, version, now - dt.timedelta(minutes=1), now + dt.timedelta(days=1),
                             created_by="test")
    run_connection_cycle(settings, store, name, steps=[RulesStep()])  # the period's first pass
    fixed = (now.date() + dt.timedelta(days=30)).isoformat()
    sim: Any = sandbox.sims[system]
    sim.edit("deals", deal_id, {"expected_close_date": fixed})  # the rep, in Pipedrive (not an echo)
    sim.clock.advance(3_601)
    cycle = run_connection_cycle(settings, store, name, steps=[SyncStep(), RulesStep()])
    assert cycle.outcomes["rules"] == "ok", cycle.outcomes
    close_key = f"close:{past.idempotency_key}"
    closes = [i.idempotency_key for i in store.outbox_items(connection=name, limit=100_000)
              if i.idempotency_key.startswith("close:")]
    assert closes == [close_key]  # live's, queued once
    with store.engine.connect() as c:
        sides = {side for (side,) in c.execute(select(shadow_decisions.c.side).where(
            (shadow_decisions.c.idempotency_key == close_key) & (shadow_decisions.c.period_id == period_id)))}
    assert sides == {"live", "shadow"}
