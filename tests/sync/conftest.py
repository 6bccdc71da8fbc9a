"""Sandboxes for the push-path tests (the outbox here, the mirrors in tests/mirror): a simulator
served over real HTTP(S) on loopback, plus the ``ConnectionSettings`` that point a connector at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from crmsync.connectors import build_connector
from crmsync.sandbox.core import LocalCA, SandboxServer, Simulator
from crmsync.sandbox.world import World, generate_world
from crmsync.settings import ConnectionSettings


@dataclass
class Env:
    kind: str
    sim: Any
    server: SandboxServer
    conn: ConnectionSettings

    def connector(self) -> Any:
        return build_connector(self.conn)

    def calls(self) -> int:
        return int(self.sim.log.snapshot()["total"])


def _simulator(kind: str, world: World) -> tuple[Simulator, dict[str, str]]:
    if kind == "salesforce":
        from crmsync.sandbox.salesforce import SalesforceSimulator, SandboxCredentials

        c = SandboxCredentials()
        return SalesforceSimulator(world), {"client_id": c.client_id, "client_secret": c.client_secret,
                                            "username": c.username, "password": c.password}
    if kind == "hubspot":
        from crmsync.sandbox.hubspot import SANDBOX_TOKEN, HubSpotSimulator

        return HubSpotSimulator(world), {"access_token": SANDBOX_TOKEN}
    from crmsync.sandbox.pipedrive import DEFAULT_TOKEN, PipedriveSimulator

    return PipedriveSimulator(world), {"api_token": DEFAULT_TOKEN}


def start_env(kind: str, *, deals: int = 200, name: str | None = None, seed: int = 7,
              ca: LocalCA | None = None, **conn_kw: Any) -> Env:
    world = generate_world(seed=seed, deals=deals)
    sim, credentials = _simulator(kind, world)
    tls = ca if kind == "salesforce" else None
    server = SandboxServer(sim.build_app(), tls=tls, name=kind).start()
    conn = ConnectionSettings(name=name or kind[:2], kind=kind, base_url=server.url,  # type: ignore[arg-type]
                              ca_bundle=tls.ca_path if tls else None, credentials=credentials,
                              options={"lookback_seconds": 0, "max_wait_s": 2, "max_wait_seconds": 2},
                              **conn_kw)
    return Env(kind, sim, server, conn)


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return LocalCA.create(Path(tmp_path_factory.mktemp("ca")))


@pytest.fixture
def sandbox(local_ca: LocalCA) -> Iterator[Callable[..., Env]]:
    started: list[Env] = []

    def make(kind: str, **kw: Any) -> Env:
        env = start_env(kind, ca=local_ca, **kw)
        started.append(env)
        return env

    yield make
    for env in started:
        env.server.stop()
