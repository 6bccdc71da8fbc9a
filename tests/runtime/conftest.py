"""Fixtures of the worker tests: a Pipedrive sandbox serving many connections (one token each),
config files pointing at it, and throwaway PostgreSQL databases for distributed mode."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from crmsync.sandbox.core import Knobs, SandboxServer
from crmsync.sandbox.pipedrive import PipedriveSimulator
from crmsync.sandbox.world import World, generate_world

PG_ADMIN = os.environ.get("CRMSYNC_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKENS = [f"pd-token-{i:02d}" for i in range(50)]


class PipedriveSandbox:
    def __init__(self, world: World, tokens: list[str], knobs: Knobs | None = None) -> None:
        self.world = world
        self.tokens = tokens
        self.sim = PipedriveSimulator(world, knobs, api_tokens=set(tokens))
        self.server = SandboxServer(self.sim.build_app(), name="pipedrive").start()

    @property
    def url(self) -> str:
        return self.server.url

    def connection(self, index: int, **overrides: Any) -> dict[str, Any]:
        conn: dict[str, Any] = {
            "name": f"pd-{index:02d}", "kind": "pipedrive", "base_url": self.url,
            "credentials": {"api_token": self.tokens[index]},
            "objects": ["owners", "pipelines", "stages", "deals"],
            "schedule": {"interval_seconds": 3600},
        }
        conn.update(overrides)
        return conn

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def small_world() -> World:
    return generate_world(seed=11, deals=200)


@pytest.fixture
def pipedrive_sandbox(small_world: World) -> Iterator[PipedriveSandbox]:
    sandbox = PipedriveSandbox(small_world, TOKENS)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def write_config(path: Path, store_url: str, connections: list[dict[str, Any]], **extra: Any) -> Path:
    data: dict[str, Any] = {"store": {"url": store_url}, "connections": connections,
                            "rules_dir": str(path.parent / "no-rules")}
    data.update(extra)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (skips when the server is not reachable)."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
    name = f"crmsync_rt_{secrets.token_hex(4)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{base.removeprefix('postgresql://')}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def start_worker(config: Path, *args: str, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = log_path.open("wb")
    return subprocess.Popen([sys.executable, "-m", "crmsync.cli", "--log-format", "json", "worker",
                             "--config", str(config), *args], stdout=log, stderr=subprocess.STDOUT, env=env)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
