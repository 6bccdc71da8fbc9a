"""The ``crm`` fixture: a fresh world and simulator per CRM (Salesforce over TLS), per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_harness import NOW, CrmUnderTest

from crmsync.sandbox.core import Knobs, LocalCA, SandboxServer
from crmsync.sandbox.runner import build_simulator
from crmsync.sandbox.world import generate_world


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deals(n): size of the generated world for the crm fixture")


@pytest.fixture(params=["salesforce", "hubspot", "pipedrive"])
def crm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrmUnderTest]:
    kind = request.param
    deals = request.node.get_closest_marker("deals")
    world = generate_world(11, deals.args[0] if deals else 1200, now=NOW)
    sim = build_simulator(kind, world, Knobs())
    ca = LocalCA.create(tmp_path_factory.mktemp("ca"))
    server = SandboxServer(sim.build_app(), tls=ca if kind == "salesforce" else None, name=kind).start()
    try:
        yield CrmUnderTest(kind, world, sim, server, ca)
    finally:
        server.stop()
