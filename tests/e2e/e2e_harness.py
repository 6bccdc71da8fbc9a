"""Helpers for end-to-end tests: a simulator per CRM and a connection pointing at it.

``crm`` is parametrised over Salesforce, HubSpot and Pipedrive. Each test gets a fresh world,
a fresh simulator on an ephemeral port (Salesforce over TLS with a local CA), and the
connection settings a user would write. ``truth_ids`` / ``truth_names`` read what the CRM holds.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crmsync.model import Deal, ObjectType
from crmsync.sandbox.core import LocalCA, SandboxServer, Simulator
from crmsync.sandbox.runner import DEAL_NAME_FIELD, DEAL_OBJECT, sandbox_credentials
from crmsync.sandbox.world import World
from crmsync.settings import ConnectionSettings
from crmsync.store import Store

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
# Small pages so a world of a few thousand deals takes many pages (and many checkpoints).
PAGE_OPTIONS: dict[str, dict[str, Any]] = {
    "salesforce": {"page_size": 200, "bulk_threshold": 10_000_000, "bulk_poll_seconds": 0.01,
                   "max_wait_seconds": 0.5, "lookback_seconds": 5},
    "hubspot": {"page_size": 100, "lookback_seconds": 5, "max_wait_seconds": 0.5},
    "pipedrive": {"page_limit": 100, "lookback_seconds": 5, "max_wait_s": 2},
}


@dataclass
class CrmUnderTest:
    kind: str
    world: World
    sim: Simulator
    server: SandboxServer
    ca: LocalCA

    def connection(self, **options: Any) -> ConnectionSettings:
        return ConnectionSettings.model_validate({
            "name": f"e2e-{self.kind}", "kind": self.kind, "base_url": self.server.url,
            "ca_bundle": str(self.ca.ca_path) if self.kind == "salesforce" else None,
            "credentials": sandbox_credentials(self.kind, self.sim),
            "objects": ["deals"],
            "options": {**PAGE_OPTIONS[self.kind], **options},
        })

    @property
    def deal_object(self) -> str:
        return DEAL_OBJECT[self.kind]

    def truth(self) -> dict[str, str | None]:
        """Live deals in the CRM: id -> name."""
        out: dict[str, str | None] = {}
        for row in self.sim.truth(self.deal_object):
            props = row.get("properties", row)
            out[str(row.get("Id") or row.get("id"))] = props.get(DEAL_NAME_FIELD[self.kind])
        return out

    def edit_name(self, deal_id: str, name: str) -> None:
        field = DEAL_NAME_FIELD[self.kind]
        self.sim.edit(self.deal_object, deal_id, {field: name})

    def new_deal(self, name: str) -> str:
        fields: dict[str, Any]
        if self.kind == "salesforce":
            fields = {"Name": name, "StageName": "Qualification", "CloseDate": "2027-01-31", "Amount": 1000}
        elif self.kind == "hubspot":
            fields = {"dealname": name, "dealstage": "qualification", "pipeline": "default", "amount": "1000"}
        else:
            fields = {"title": name, "value": 1000, "currency": "EUR"}
        return str(self.sim.create(self.deal_object, fields))


def store_names(store: Store, connection: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for record in store.iter_records(ObjectType.DEAL, connection=connection):
        assert isinstance(record, Deal)
        out[record.source_id] = record.name
    return out


def assert_store_equals_truth(store: Store, crm: CrmUnderTest, connection: str) -> None:
    truth = crm.truth()
    stored = store_names(store, connection)
    missing = set(truth) - set(stored)
    extra = set(stored) - set(truth)
    assert not missing, f"{len(missing)} deals missing from the store, e.g. {sorted(missing)[:5]}"
    assert not extra, f"{len(extra)} deals in the store that the CRM does not have, e.g. {sorted(extra)[:5]}"
    wrong = {k for k in truth if truth[k] != stored[k]}
    assert not wrong, f"{len(wrong)} deals differ, e.g. {[(k, truth[k], stored[k]) for k in sorted(wrong)[:3]]}"
    assert store.count(ObjectType.DEAL, connection) == len(truth)


def backfill_in_child(store: Store, conn: ConnectionSettings, workdir: Path, object_name: str = "deals") -> subprocess.Popen[bytes]:
    """Start ``crmsync``'s backfill of ``object_name`` for ``conn`` into ``store`` in a child
    process (a config written in ``workdir``), for a test to kill it mid-backfill."""
    config = workdir / "crmsync.yaml"
    url = store.engine.url.render_as_string(hide_password=False)
    entry = conn.model_dump(mode="json", exclude_none=True) | {
        "credentials": {k: v.get_secret_value() for k, v in conn.credentials.items()}}
    config.write_text(yaml.safe_dump({"store": {"url": url}, "connections": [entry]}))
    script = textwrap.dedent(f"""
        from crmsync.settings import load_settings
        from crmsync.store import Store
        from crmsync.sync.runner import run_backfill
        settings = load_settings({str(config)!r})
        run_backfill(settings, Store.open(settings.store.url), {conn.name!r}, {object_name!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-c", script], env=env)
