"""Fixtures of the console tests: one Salesforce sandbox per session, a console per test, and
one headless Chromium (Debian's package) per session for the browser tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_harness import ConsoleUnderTest, start

from crmsync.sandbox.core import Knobs, LocalCA, SandboxServer
from crmsync.sandbox.salesforce.simulator import SalesforceSimulator
from crmsync.sandbox.world import generate_world
from crmsync.store import Store

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def salesforce(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SalesforceSimulator, SandboxServer, LocalCA]]:
    world = generate_world(13, 300, leads=120)
    sim = SalesforceSimulator(world, Knobs())
    ca = LocalCA.create(tmp_path_factory.mktemp("console-ca"))
    server = SandboxServer(sim.build_app(), tls=ca, name="salesforce").start()
    try:
        yield sim, server, ca
    finally:
        server.stop()


@pytest.fixture
def console(tmp_path: Path, store: Store,
            salesforce: tuple[SalesforceSimulator, SandboxServer, LocalCA]) -> Iterator[ConsoleUnderTest]:
    under_test = start(tmp_path, store, salesforce)
    try:
        yield under_test
    finally:
        under_test.server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()
