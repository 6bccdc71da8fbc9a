"""The ``crm`` fixture: a small fresh world and simulator per CRM (Salesforce over TLS), per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from faults_harness import NOW, Crm

from crmsync.sandbox.core import Knobs, LocalCA, SandboxServer
from crmsync.sandbox.runner import build_simulator
from crmsync.sandbox.world import generate_world


@pytest.fixture(params=["salesforce", "hubspot", "pipedrive"])
def crm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crm]:
    kind = request.param
    world = generate_world(11, 40, now=NOW)
    sim = build_simulator(kind, world, Knobs())
    ca = LocalCA.create(tmp_path_factory.mktemp("ca"))
    server = SandboxServer(sim.build_app(), tls=ca if kind == "salesforce" else None, name=kind).start()
    try:
        yield Crm(kind, world, sim, server, ca)
    finally:
        server.stop()
