"""Truncated or undecodable response bodies are retriable errors in the one error taxonomy: the
run fails as retriable (the next cycle tries again), never with a decoder's exception."""

from __future__ import annotations

from faults_harness import Crm

from crmsync.connectors import build_connector
from crmsync.model import ObjectType
from crmsync.sandbox.core import FaultRule
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine

LISTING = {"salesforce": "query", "hubspot": "search", "pipedrive": "/api/v2/deals"}


def test_a_truncated_body_is_a_retriable_error_and_the_next_cycle_recovers(store: Store, crm: Crm) -> None:
    crm.sim.knobs.faults = [FaultRule(LISTING[crm.kind], "truncate")]
    conn = crm.connection(max_attempts=2, max_wait_seconds=0.05)
    connector = build_connector(conn)
    try:
        [failed] = SyncEngine(store, connector, conn).sync(["deals"])
        assert failed.status == "failed" and failed.error is not None
        assert failed.error.startswith("RetriableError"), failed.error
        crm.sim.knobs.faults = []
        [ok] = SyncEngine(store, connector, conn).sync(["deals"])
    finally:
        connector.close()
    assert ok.status == "ok", ok.error
    assert store.count(ObjectType.DEAL, conn.name) == len(crm.deal_ids())
