"""Start the simulators together on loopback and describe how to connect to them.

``start_sandbox`` generates one seeded world, builds a simulator per system, serves each on its
own port (Salesforce over TLS with a CA generated into ``state_dir``) and returns a handle with
the simulators (the user handle and the truth), the servers and ready-made connection settings.
The connection settings carry ``FIELD_MAPPINGS``: the custom fields the example rules write
(score, grade, lead lifecycle stage), which each simulator declares as an admin would create them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crmsync.example_rules import example_rules_dir
from crmsync.sandbox.core import Knobs, LocalCA, SandboxServer, Simulator
from crmsync.sandbox.world import World, generate_world
from crmsync.settings import ConnectionSettings

SYSTEMS = ("salesforce", "hubspot", "pipedrive", "meteroid")
#: sales-engagement tools, started on request (``systems=``): not CRMs, synced by ``crmsync.engagement``
ENGAGEMENT_SYSTEMS = ("outreach", "apollo", "salesloft")
#: Every system the sandbox can serve; revenue intelligence and engagement tools are built on request.
ALL_SYSTEMS = (*SYSTEMS, "gong", *ENGAGEMENT_SYSTEMS)
CONNECTION_NAMES = {"salesforce": "sandbox-sf", "hubspot": "sandbox-hs", "pipedrive": "sandbox-pd",
                    "meteroid": "sandbox-billing", "gong": "sandbox-gong", "outreach": "sandbox-outreach",
                    "apollo": "sandbox-apollo", "salesloft": "sandbox-salesloft"}
# Each CRM's native name for a deal and its name field (the user handle and truth use native names).
DEAL_OBJECT = {"salesforce": "Opportunity", "hubspot": "deals", "pipedrive": "deals"}
DEAL_NAME_FIELD = {"salesforce": "Name", "hubspot": "dealname", "pipedrive": "title"}
CRM_OBJECTS = {
    "salesforce": ["owners", "stages", "products", "price_book_entries", "accounts", "contacts", "leads", "deals",
                   "line_items"],
    "hubspot": ["owners", "pipelines", "stages", "products", "accounts", "contacts", "deals", "line_items"],
    "pipedrive": ["owners", "pipelines", "stages", "products", "accounts", "contacts", "deals", "line_items"],
    "meteroid": [],
    "gong": ["users", "calls"],
    "outreach": ["users", "mailboxes", "sequences", "prospects", "sequence_states", "mailings", "calls"],
    "apollo": ["mailboxes", "sequences", "prospects", "sequence_states", "mailings"],
    "salesloft": ["mailboxes", "sequences", "prospects", "sequence_states", "mailings"],
}
#: Fields crmsync's example rules write (``config/rules/scoring.yaml``) as each sandbox CRM holds them:
#: custom fields an admin would create once per org/portal/company (the simulators declare them),
#: mapped onto canonical fields with ``field_mappings`` so they are read back and written by name.
MEDDIC = ("metrics", "economic_buyer", "decision_criteria", "decision_process", "identified_pain", "champion")
HANDOFF = ("use_case", "success_criteria", "technical_requirements")
FIELD_MAPPINGS: dict[str, dict[str, dict[str, str]]] = {
    "salesforce": {
        "deals": {"Crmsync_Score__c": "extra.crmsync_score:decimal", "Crmsync_Grade__c": "extra.crmsync_grade",
                  # the org's MEDDIC and approval fields under the names the shipped hygiene rules read
                  **{f"{'_'.join(w.capitalize() for w in name.split('_'))}__c": f"extra.{name}" for name in MEDDIC + HANDOFF},
                  "Discount_Approved__c": "extra.discount_approved:bool"},
        "leads": {"Lifecycle_Stage__c": "lifecycle_stage"},
    },
    "hubspot": {
        "deals": {"crmsync_score": "extra.crmsync_score:decimal", "crmsync_grade": "extra.crmsync_grade",
                  **{f"meddic_{name}": f"extra.{name}" for name in MEDDIC}},
    },
    "pipedrive": {  # custom field names (``/v1/dealFields``); the connector turns them into hex keys
        "deals": {"crmsync_score": "extra.crmsync_score:decimal", "crmsync_grade": "extra.crmsync_grade"},
    },
}


def build_simulator(system: str, world: World, knobs: Knobs | None = None) -> Simulator:
    if system == "salesforce":
        from crmsync.sandbox.salesforce import SalesforceSimulator

        return SalesforceSimulator(world, knobs)
    if system == "hubspot":
        from crmsync.sandbox.hubspot import HubSpotSimulator

        return HubSpotSimulator(world, knobs)
    if system == "pipedrive":
        from crmsync.sandbox.pipedrive import PipedriveSimulator

        return PipedriveSimulator(world, knobs)
    if system == "meteroid":
        from crmsync.sandbox.meteroid import MeteroidSimulator

        return MeteroidSimulator(world, knobs)
    if system == "gong":
        from crmsync.sandbox.gong import GongSimulator

        return GongSimulator(world, knobs)
    if system == "outreach":
        from crmsync.sandbox.outreach import OutreachSimulator

        return OutreachSimulator(world, knobs)
    if system == "apollo":
        from crmsync.sandbox.apollo import ApolloSimulator

        return ApolloSimulator(world, knobs)
    if system == "salesloft":
        from crmsync.sandbox.salesloft import SalesloftSimulator

        return SalesloftSimulator(world, knobs)
    raise ValueError(f"unknown sandbox system {system!r} (expected one of {', '.join(ALL_SYSTEMS)})")


def sandbox_credentials(system: str, sim: Any) -> dict[str, str]:
    """Credentials the simulator accepts, in the connector's credential keys."""
    if system == "salesforce":
        creds = sim.credentials
        return {"username": creds.username, "password": creds.password, "client_id": creds.client_id,
                "client_secret": creds.client_secret, "refresh_token": creds.refresh_token}
    if system == "hubspot":
        return {"access_token": sorted(sim.tokens)[0]}
    if system == "pipedrive":
        return {"api_token": sorted(sim.api_tokens)[0]}
    if system == "gong":
        return {"access_key": sim.access_key, "access_key_secret": sim.access_secret}
    if system == "salesloft":
        return {"access_token": sim.token}
    if system == "outreach":
        return {"client_id": sim.client_id, "client_secret": sim.client_secret, "refresh_token": sim.refresh_token}
    return {"api_key": sim.api_key}


@dataclass
class SandboxHandle:
    world: World
    ca: LocalCA
    sims: dict[str, Simulator] = field(default_factory=dict)
    servers: dict[str, SandboxServer] = field(default_factory=dict)

    def connection_dicts(self) -> list[dict[str, Any]]:
        out = []
        for system, server in self.servers.items():
            entry: dict[str, Any] = {
                "name": CONNECTION_NAMES[system], "kind": system, "base_url": server.url,
                "credentials": sandbox_credentials(system, self.sims[system]),
                "objects": CRM_OBJECTS[system],
                "schedule": {"interval_seconds": 30},
            }
            if system in FIELD_MAPPINGS:
                entry["field_mappings"] = FIELD_MAPPINGS[system]
            if system == "salesforce":
                # absolute: a relative path in a config file means "beside the file", and the
                # state directory may be given relative to the working directory
                entry["ca_bundle"] = str(self.ca.ca_path.resolve())
            out.append(entry)
        return out

    def connections(self) -> list[ConnectionSettings]:
        return [ConnectionSettings.model_validate(d) for d in self.connection_dicts()]

    def write_config(self, path: Path, *, store_url: str, rules_dir: str | None = None) -> Path:
        """A ready-made config; ``rules_dir`` defaults to the shipped example rules (absolute, so the
        file works from any directory)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "store": {"url": store_url},
            "rules_dir": rules_dir if rules_dir is not None else str(example_rules_dir()),
            "connections": self.connection_dicts(),
            "billing": {"connection": CONNECTION_NAMES["meteroid"]} if "meteroid" in self.servers else {},
        }
        header = ("# Written by crmsync for the local sandbox; the credentials below are the simulators'\n"
                  "# own fixture values and work nowhere else.\n")
        path.write_text(header + yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        return path

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_sandbox(*, deals: int = 1000, seed: int = 7, systems: Sequence[str] = SYSTEMS, first_port: int = 0,
                  state_dir: Path | None = None, now: dt.datetime | None = None,
                  knobs: dict[str, Knobs] | None = None, world: World | None = None) -> SandboxHandle:
    world = world or generate_world(seed, deals, now=now)
    ca = LocalCA.create(state_dir / "ca" if state_dir else None)
    handle = SandboxHandle(world=world, ca=ca)
    try:
        for index, system in enumerate(systems):
            sim = build_simulator(system, world, (knobs or {}).get(system))
            port = first_port + index if first_port else 0
            server = SandboxServer(sim.build_app(), port=port, tls=ca if system == "salesforce" else None,
                                   name=system)
            handle.sims[system] = sim
            handle.servers[system] = server.start()
    except BaseException:
        handle.stop()
        raise
    return handle
