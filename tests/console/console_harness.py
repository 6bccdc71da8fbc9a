"""The console under test: a Salesforce sandbox (leads, owners, accounts) synced into the test's
store, a small rule directory, two accounts (admin, viewer) and the console served on loopback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from crmsync.console.accounts import add_user
from crmsync.console.server import ConsoleServer
from crmsync.model import ObjectType, Owner
from crmsync.sandbox.core import LocalCA, SandboxServer
from crmsync.sandbox.runner import FIELD_MAPPINGS, sandbox_credentials
from crmsync.sandbox.salesforce.simulator import HUMAN_USER, SalesforceSimulator
from crmsync.settings import Settings
from crmsync.store import Store
from crmsync.sync.runner import open_engine

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "console"
CONNECTION = "sandbox-sf"
ADMIN = ("ada", "ada-console-pass-1")
VIEWER = ("vic", "vic-console-pass-1")

ROUTING = """\
# Routing for the console tests: new leads go to the inbound pool.
version: 1
unassigned_owner_ids: [{queue}]
reroute_inactive_owner: true
pools:
  # The inbound desk (the browser test adds a rep here).
  - name: inbound
    strategy: weighted
    respect_working_hours: false
    members:
      - {{owner: {first}, weight: 1}}
    fallback: {{pool: overflow}}
  - name: overflow
    strategy: round_robin
    teams: [NA Sales]
    respect_working_hours: false
rules:
  - name: inbound_leads
    object: lead
    pool: inbound
  - name: catch_all_deals
    object: deal
    pool: overflow
"""


@dataclass
class ConsoleUnderTest:
    settings: Settings
    store: Store
    sim: SalesforceSimulator
    server: ConsoleServer
    rules_dir: Path
    reps: list[Owner]  # active sales reps, sorted by id; reps[0] is the inbound pool's member

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, who: tuple[str, str] | None = ADMIN) -> httpx.Client:
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        if who is not None:
            login(client, *who)
        return client


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "page has no CSRF token"
    return m.group(1)


def login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"csrf_token": csrf_of(page.text), "username": username,
                                       "password": password, "next": "/"})


def rules_dir_for(path: Path, queue: str, first: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "routing.yaml").write_text(ROUTING.format(queue=queue, first=first), encoding="utf-8")
    (path / "scoring.yaml").write_text((REPO / "config" / "rules" / "scoring.yaml").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    return path


def start(tmp: Path, store: Store, sf: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> ConsoleUnderTest:
    sim, server, ca = sf
    settings_doc: dict[str, Any] = {
        "store": {"url": "sqlite:///unused.db"},
        "connections": [{
            "name": CONNECTION, "kind": "salesforce", "base_url": server.url, "ca_bundle": str(ca.ca_path),
            "credentials": sandbox_credentials("salesforce", sim), "objects": ["owners", "accounts", "leads"],
            "field_mappings": FIELD_MAPPINGS["salesforce"],
            "options": {"bulk_threshold": 10_000_000, "lookback_seconds": 0},
        }],
    }
    settings = Settings.model_validate({**settings_doc, "rules_dir": str(tmp / "rules")})
    with open_engine(settings, store, CONNECTION) as engine:
        for object_name in ("owners", "accounts", "leads"):
            result = engine.backfill(object_name)
            assert result.status == "ok", result.error
    owners = [o for o in store.iter_records(ObjectType.OWNER, connection=CONNECTION) if isinstance(o, Owner)]
    reps = sorted((o for o in owners if o.active and not o.out_of_office and (o.team or "").endswith("Sales")
                   and o.source_id != HUMAN_USER), key=lambda o: o.source_id)
    rules_dir_for(tmp / "rules", HUMAN_USER, reps[0].source_id)
    add_user(store, *ADMIN, "admin")
    add_user(store, *VIEWER, "viewer")
    console = ConsoleServer(settings, store, state_dir=tmp / "console").start()
    return ConsoleUnderTest(settings, store, sim, console, tmp / "rules", reps)
