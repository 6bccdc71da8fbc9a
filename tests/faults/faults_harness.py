"""Helpers for the fault tests: one simulator per CRM, a connection to it, poison values to plant.

Poison is planted two ways, both as the CRM's API would serve it: through the user handle (a
value the CRM accepts but crmsync's model or store refuses, e.g. a currency ``ZZZZ``), or on the
wire with the ``corrupt`` knob (a value the CRM would never store: ``update_time: "irure"``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from crmsync.model import Deal, ObjectType
from crmsync.sandbox.core import CorruptValue, LocalCA, SandboxServer, Simulator
from crmsync.sandbox.runner import DEAL_NAME_FIELD, DEAL_OBJECT, sandbox_credentials
from crmsync.sandbox.world import World
from crmsync.settings import ConnectionSettings
from crmsync.store import Store

NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
# Small pages, so a poison record sits in the middle of a page with good records around it.
PAGE_OPTIONS: dict[str, dict[str, Any]] = {
    "salesforce": {"page_size": 10, "bulk_threshold": 10_000_000, "lookback_seconds": 0, "max_wait_seconds": 0.5},
    "hubspot": {"page_size": 10, "lookback_seconds": 0, "max_wait_seconds": 0.5},
    "pipedrive": {"page_limit": 10, "lookback_seconds": 0, "max_wait_s": 2},
}
#: native field of a deal per CRM, by role
DEAL_FIELDS: dict[str, dict[str, str]] = {
    "salesforce": {"currency": "CurrencyIsoCode", "modified": "SystemModstamp", "amount": "Amount",
                   "close_date": "CloseDate", "name": "Name"},
    "hubspot": {"currency": "deal_currency_code", "modified": "hs_lastmodifieddate", "amount": "amount",
                "close_date": "closedate", "name": "dealname"},
    "pipedrive": {"currency": "currency", "modified": "update_time", "amount": "value",
                  "close_date": "expected_close_date", "name": "title"},
}


@dataclass
class Crm:
    kind: str
    world: World
    sim: Simulator
    server: SandboxServer
    ca: LocalCA

    def connection(self, name: str | None = None, **options: Any) -> ConnectionSettings:
        return ConnectionSettings.model_validate(self.connection_dict(name, **options))

    def connection_dict(self, name: str | None = None, **options: Any) -> dict[str, Any]:
        return {
            "name": name or f"faults-{self.kind}", "kind": self.kind, "base_url": self.server.url,
            "ca_bundle": str(self.ca.ca_path) if self.kind == "salesforce" else None,
            "credentials": sandbox_credentials(self.kind, self.sim), "objects": ["deals"],
            "options": {**PAGE_OPTIONS[self.kind], **options},
        }

    def field(self, role: str) -> str:
        return DEAL_FIELDS[self.kind][role]

    def deal_ids(self) -> list[str]:
        return sorted(str(r.get("Id") or r.get("id")) for r in self.sim.truth(DEAL_OBJECT[self.kind]))

    def edit(self, deal_id: str, role: str, value: Any) -> None:
        self.sim.edit(DEAL_OBJECT[self.kind], deal_id, {self.field(role): value})

    def rename(self, deal_id: str, name: str) -> None:
        self.sim.edit(DEAL_OBJECT[self.kind], deal_id, {DEAL_NAME_FIELD[self.kind]: name})

    def serve_malformed(self, deal_id: str, role: str, value: Any) -> None:
        """From now on the API answers with ``value`` for this deal's field (the record is unchanged)."""
        self.sim.knobs.corrupt = [*self.sim.knobs.corrupt, CorruptValue(deal_id, self.field(role), value)]

    def serve_clean(self) -> None:
        self.sim.knobs.corrupt = []


def stored_deals(store: Store, connection: str) -> dict[str, Deal]:
    out: dict[str, Deal] = {}
    for record in store.iter_records(ObjectType.DEAL, connection=connection):
        assert isinstance(record, Deal)
        out[record.source_id] = record
    return out
