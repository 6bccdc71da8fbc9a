"""Retry waits of the HubSpot and Pipedrive transports over real HTTP: a server-named wait is capped
at ``max_wait_s``; backoff without a hint has jitter (between half and all of the doubling step)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.connectors import build_connector
from crmsync.connectors.base import RetriableError
from crmsync.sandbox.runner import CONNECTION_NAMES, SandboxHandle, start_sandbox
from crmsync.settings import ConnectionSettings

PATHS = {"hubspot": r"/crm/v3/pipelines/deals$", "pipedrive": r"/api/v2/pipelines$"}
INITIAL = {"hubspot": 0.25, "pipedrive": 0.5}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(deals=20, seed=3, systems=("hubspot", "pipedrive"),
                           state_dir=tmp_path_factory.mktemp("backoff"))
    try:
        yield handle
    finally:
        handle.stop()


def _connector(sandbox: SandboxHandle, system: str, sleeps: list[float], **options: Any) -> Any:
    entry = next(d for d in sandbox.connection_dicts() if d["name"] == CONNECTION_NAMES[system])
    entry["options"] = {**entry.get("options", {}), **options}
    connector = build_connector(ConnectionSettings.model_validate(entry))
    if system == "hubspot":
        connector.transport.sleep = sleeps.append
    else:
        connector.http._sleep = sleeps.append
    return connector


def _pipelines(connector: Any) -> None:
    list(connector.pull("pipelines", None))


@pytest.mark.parametrize("system", ["hubspot", "pipedrive"])
def test_backoff_has_jitter_within_the_doubling_step(sandbox: SandboxHandle, system: str) -> None:
    sim = sandbox.sims[system]
    sim.knobs.update({"faults": [{"path": PATHS[system], "kind": "503", "probability": 1.0}]})
    sleeps: list[float] = []
    connector = _connector(sandbox, system, sleeps, max_attempts=5)
    try:
        with pytest.raises(RetriableError):
            _pipelines(connector)
    finally:
        sim.knobs.update({"faults": []})
        connector.close()
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps, start=1):
        step = INITIAL[system] * 2 ** (attempt - 1)
        assert step / 2 <= slept < step, (attempt, slept)


def test_hubspot_retry_after_is_capped(sandbox: SandboxHandle) -> None:
    sim = sandbox.sims["hubspot"]
    sim.knobs.update({"faults": [{"path": PATHS["hubspot"], "kind": "429", "probability": 1.0,
                                  "retry_after": 3600}]})
    sleeps: list[float] = []
    connector = _connector(sandbox, "hubspot", sleeps, max_attempts=3, max_wait_s=2)
    try:
        with pytest.raises(RetriableError):
            _pipelines(connector)
    finally:
        sim.knobs.update({"faults": []})
        connector.close()
    assert sleeps == [2.0, 2.0]
