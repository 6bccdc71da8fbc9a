"""``crmsync sync`` and ``crmsync backfill`` with poison and failing connections, run as a user runs
them (a real process) against the simulators and the real store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from faults_harness import Crm, stored_deals

from crmsync.connectors import build_connector
from crmsync.model import ObjectType
from crmsync.sandbox.core import CorruptValue
from crmsync.store import Store
from crmsync.sync.engine import SyncEngine

CRMSYNC = str(Path(sys.executable).parent / "crmsync")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRMSYNC__")}
    return subprocess.run([CRMSYNC, *args], cwd=cwd, env={**env, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=120)


def write_config(path: Path, store_url: str, connections: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"store": {"url": store_url}, "connections": connections}))
    return path


def test_one_failing_connection_never_stops_the_others(tmp_path: Path, crm: Crm,
                                                       empty_store_url: Callable[[], str]) -> None:
    url = empty_store_url()
    refused = {**crm.connection_dict("wrong-token"), "credentials": {
        k: "wrong" for k in crm.connection_dict()["credentials"]}}
    unbuildable = {**crm.connection_dict("no-credentials"), "credentials": {}}
    good = crm.connection_dict("good")
    config = write_config(tmp_path / "crmsync.yaml", url, [refused, unbuildable, good])

    result = run("sync", "--config", str(config), cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "wrong-token" in result.stderr and "no-credentials" in result.stderr
    store = Store.open(url)
    try:
        assert set(stored_deals(store, "good")) == set(crm.deal_ids())
    finally:
        store.close()


def test_backfill_reports_quarantined_records_and_succeeds(tmp_path: Path, crm: Crm,
                                                           empty_store_url: Callable[[], str]) -> None:
    url = empty_store_url()
    crm.serve_malformed(crm.deal_ids()[7], "amount", "twelve")
    config = write_config(tmp_path / "crmsync.yaml", url, [crm.connection_dict("bf")])
    result = run("backfill", "--connection", "bf", "--object", "deals", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "complete with 1 quarantined" in result.stdout


def test_backfill_fails_when_records_are_unaccounted_for(tmp_path: Path, crm: Crm,
                                                         empty_store_url: Callable[[], str]) -> None:
    """The CRM lists one deal under another's id: the source counts one more than is stored and
    nothing is quarantined, so a record is unaccounted for."""
    url = empty_store_url()
    first, second = crm.deal_ids()[2:4]
    id_field = "Id" if crm.kind == "salesforce" else "id"
    crm.sim.knobs.corrupt = [CorruptValue(second, id_field, int(first) if crm.kind == "pipedrive" else first,
                                          path=r"/(query|search|deals)", top_level=True)]
    config = write_config(tmp_path / "crmsync.yaml", url, [crm.connection_dict("bf")])
    result = run("backfill", "--connection", "bf", "--object", "deals", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "INCOMPLETE" in result.stdout and "1 unaccounted for" in result.stdout


def test_unaccounted_counts_neither_stored_nor_quarantined(store: Store, crm: Crm) -> None:
    crm.serve_malformed(crm.deal_ids()[4], "close_date", "not a date")
    conn = crm.connection()
    connector = build_connector(conn)
    try:
        result = SyncEngine(store, connector, conn).backfill("deals")
    finally:
        connector.close()
    assert result.complete is False and result.quarantined_open == 1 and result.unaccounted == 0
    assert store.count(ObjectType.DEAL, conn.name) == len(crm.deal_ids()) - 1
