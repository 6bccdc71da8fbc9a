"""Gong calls into the rules end to end: Salesforce and Gong sandboxes over real HTTP, calls pulled
into the store, rules run. The hygiene finding "late-stage deal with no call in 14 days" names
exactly the late-stage deals whose last call (in Gong's truth) is older than 14 days or missing -
calls matched by Gong's CRM context in Salesforce (exactly), by participant emails in Pipedrive
(never a false finding; a deal whose sibling deal of the same account had a call is missed); the handoff
of a won deal with calls lists the stakeholders met; scoring explains its call points."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crmsync.connectors import build_connector
from crmsync.decide.runner import run_full
from crmsync.sandbox.core import Knobs
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.sandbox.salesforce.ids import make_id
from crmsync.sandbox.world import STAGES
from crmsync.settings import Settings, load_settings
from crmsync.store import Store
from crmsync.sync.activity import sync_calls
from crmsync.sync.runner import open_engine

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
SYSTEMS = ("salesforce", "pipedrive", "gong")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=300, seed=11, systems=SYSTEMS, state_dir=tmp_path,
                           knobs={"gong": Knobs(burst_limit=50, burst_window_s=1.0, daily_limit=10_000)})
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def settings(sandbox: SandboxHandle, store: Store, tmp_path: Path) -> Settings:
    url = store.engine.url.render_as_string(hide_password=False)
    path = sandbox.write_config(tmp_path / "crmsync.yaml", store_url=url, rules_dir=str(RULES_DIR))
    text = path.read_text().replace("kind: gong\n", "kind: gong\n  options: {backfill_days: 800}\n")
    path.write_text(text)
    return load_settings(path)


def expected_stale(sandbox: SandboxHandle) -> set[int]:
    """World deal numbers in Proposal Sent / Negotiation whose last Gong call is > 14 days old or none."""
    world = sandbox.world
    last: dict[int, dt.datetime] = {}
    for call in sandbox.sims["gong"].truth("calls"):
        if call["deal_id"] is not None:
            started = dt.datetime.fromisoformat(call["metaData"]["started"].replace("Z", "+00:00"))
            last[call["deal_id"]] = max(started, last.get(call["deal_id"], started))
    now = dt.datetime.now(dt.UTC)
    late = {s.order for s in STAGES if s.label in ("Proposal Sent", "Negotiation")}
    return {d.id for d in world.deals if STAGES[d.stage].order in late
            and (d.id not in last or (now - last[d.id]).days > 14)}


def findings(store: Store, connection: str, rule: str) -> set[str]:
    return {str(d.source_id) for d in store.decisions(limit=100_000)
            if d.connection == connection and d.rule_name == rule and d.action == "finding"}


def test_call_findings_match_gong_truth(sandbox: SandboxHandle, settings: Settings, store: Store) -> None:
    for system in ("salesforce", "pipedrive"):
        with open_engine(settings, store, CONNECTION_NAMES[system]) as engine:
            for object_name in CRM_OBJECTS[system]:
                assert engine.backfill(object_name).status == "ok"
    gong = settings.connection(CONNECTION_NAMES["gong"])
    connector: Any = build_connector(gong)
    try:
        pulled = sync_calls(store, connector)
    finally:
        connector.close()
    assert pulled.records == len(sandbox.sims["gong"].truth("calls"))
    for system in ("salesforce", "pipedrive"):
        run_full(settings, store, CONNECTION_NAMES[system])
    stale = expected_stale(sandbox)
    planted = sandbox.sims["gong"].planted["no_recent_call"]
    assert planted and planted <= stale
    sf = findings(store, CONNECTION_NAMES["salesforce"], "late_stage_no_recent_call")
    assert sf == {make_id("006", n) for n in stale}
    # Pipedrive deal ids are the world numbers; there calls are matched by participant emails, which
    # cannot tell two open deals of one account apart: a call about either counts for both. So every
    # deal flagged is truly stale (precision), a stale deal whose sibling had a call is missed
    pd = findings(store, CONNECTION_NAMES["pipedrive"], "late_stage_no_recent_call")
    assert pd and pd <= {str(n) for n in stale}
    champion = findings(store, CONNECTION_NAMES["salesforce"], "champion_not_on_any_call")
    absent = sandbox.sims["gong"].planted["champion_absent"]
    assert champion and champion & {make_id("006", n) for n in absent}
    handoffs = [d for d in store.decisions(limit=100_000) if d.action == "create_handoff"
                and d.connection == CONNECTION_NAMES["salesforce"] and "calls" in d.fields]
    assert handoffs and all(h.fields["calls"]["stakeholders met"] for h in handoffs)
    scored = [d for d in store.decisions(limit=100_000) if d.rule_kind == "scoring"
              and d.connection == CONNECTION_NAMES["salesforce"] and "calls_held +8" in (d.reason or "")]
    assert scored
