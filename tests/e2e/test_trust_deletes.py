"""Trust but verify deletes, per CRM: nothing live is ever marked deleted on the CRM's say-so alone.

- A list of deleted/archived records that holds live ones (the filter lost on the way: here a
  proxy that drops the query string) is refused with a clear error; nothing of it is stored.
- A hard-delete sweep that would mark more than ``delete_sweep_max_share`` of the stored records
  deleted stops and waits for ``--confirm``; a small one goes through.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from e2e_harness import CrmUnderTest, assert_store_equals_truth
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.connectors import build_connector
from crmsync.model import ObjectType
from crmsync.sandbox.core import FaultRule
from crmsync.store import Store
from crmsync.sync.engine import SweepRefused, SyncEngine

# the list each CRM answers deletions with, and the query that asks for them
DELETION_LISTS = {
    "hubspot": FaultRule(r"^/crm/v3/objects/deals$", "drop_query", method="GET", query=r"archived=true"),
    "pipedrive": FaultRule(r"^/api/v2/deals$", "drop_query", method="GET", query=r"status=deleted"),
}


def engine_for(store: Store, crm: CrmUnderTest) -> SyncEngine:
    conn = crm.connection()
    return SyncEngine(store, build_connector(conn), conn)


def deleted_in_store(store: Store, engine: SyncEngine) -> set[str]:
    return {r.source_id for r in store.iter_records(ObjectType.DEAL, connection=engine.conn.name, include_deleted=True)
            if r.deleted}


@pytest.mark.deals(40)
def test_a_deletion_list_holding_live_records_is_refused(store: Store, crm: CrmUnderTest) -> None:
    if crm.kind not in DELETION_LISTS:
        pytest.skip("Salesforce says IsDeleted on each record and lists deleted ids only (getDeleted)")
    engine = engine_for(store, crm)
    assert engine.backfill("deals").status == "ok"
    victim = sorted(crm.truth(), key=int)[4]
    crm.sim.delete(crm.deal_object, victim)
    crm.sim.knobs.update({"faults": [DELETION_LISTS[crm.kind]]})
    refused = engine.run("deals", mode="sync")
    assert refused.status == "failed"
    assert "refusing" in (refused.error or "") and "not" in (refused.error or "")
    assert deleted_in_store(store, engine) <= {victim}  # no live deal was marked deleted
    crm.sim.knobs.update({"faults": []})
    assert engine.run("deals", mode="sync").status == "ok"  # the list answers right again: all arrives
    assert deleted_in_store(store, engine) == {victim}
    assert_store_equals_truth(store, crm, engine.conn.name)


@pytest.mark.deals(40)
def test_a_sweep_deleting_a_large_share_waits_for_confirmation(store: Store, crm: CrmUnderTest) -> None:
    engine = engine_for(store, crm)
    assert engine.backfill("deals").status == "ok"
    ids = sorted(crm.truth())
    crm.sim.delete(crm.deal_object, ids[0], hard=True)  # 1 of 40: within the 10% default
    assert engine.sweep_deletes("deals") == 1
    for deal_id in ids[1:13]:  # 12 more of the 39 left: 31%
        crm.sim.delete(crm.deal_object, deal_id, hard=True)
    with pytest.raises(SweepRefused, match="--confirm"):
        engine.sweep_deletes("deals")
    assert deleted_in_store(store, engine) == {ids[0]}  # nothing marked
    runs = store.last_runs(1, connection=engine.conn.name)
    assert runs[0].kind == "sweep" and runs[0].status == "stopped" and "--confirm" in (runs[0].error or "")
    assert engine.sweep_deletes("deals", confirm=True) == 12
    assert_store_equals_truth(store, crm, engine.conn.name)


@pytest.mark.deals(40)
def test_the_sweep_command_refuses_then_confirms(store: Store, crm: CrmUnderTest, tmp_path: Path) -> None:
    if crm.kind != "pipedrive":
        pytest.skip("the command is the same for every CRM")
    engine = engine_for(store, crm)
    assert engine.backfill("deals").status == "ok"
    for deal_id in sorted(crm.truth(), key=int)[:20]:
        crm.sim.delete(crm.deal_object, deal_id, hard=True)
    conn = crm.connection().model_dump(mode="json")
    conn["credentials"] = {"api_token": crm.connection().secret("api_token")}
    config = tmp_path / "crmsync.yaml"
    config.write_text(yaml.safe_dump({"store": {"url": store.engine.url.render_as_string(hide_password=False)},
                                      "connections": [conn]}))
    runner = CliRunner()
    refused = runner.invoke(app, ["sweep", "--config", str(config), "--connection", conn["name"], "--object",
                                  "deals"])
    assert refused.exit_code == 1, refused.output
    assert "--confirm" in refused.output and "Traceback" not in refused.output
    done = runner.invoke(app, ["sweep", "--config", str(config), "--connection", conn["name"], "--object", "deals",
                               "--confirm"])
    assert done.exit_code == 0, done.output
    assert "20 marked deleted" in done.output
    assert_store_equals_truth(store, crm, engine.conn.name)
