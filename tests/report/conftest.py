"""Fixtures of the report tests: a small Pipedrive sandbox and a config file pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from report_harness import NOW

from crmsync.logging import configure_logging
from crmsync.sandbox.runner import SandboxHandle, start_sandbox
from crmsync.sandbox.world import generate_world


@pytest.fixture
def pipedrive(tmp_path: Path) -> Iterator[SandboxHandle]:
    """A Pipedrive simulator over a 500-deal world, served on an ephemeral loopback port."""
    handle = start_sandbox(systems=["pipedrive"], world=generate_world(5, 500, now=NOW), state_dir=tmp_path / "sb")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """The CLI points logging at the CliRunner's stream, which closes: point it back afterwards."""
    yield
    configure_logging("json")
