"""``crmsync report billing``: Pipedrive and Meteroid sandboxes; deals synced over HTTP, the billing sync
creates subscriptions for clean won deals, then the report joins them back to the deals."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_harness import NOW
from test_report_pages import ARTIFACTS, CHROMIUM, PNG_MAGIC, screenshot
from typer.testing import CliRunner

from crmsync.billing.sync import run_billing_sync
from crmsync.cli import app
from crmsync.sandbox.runner import CONNECTION_NAMES, CRM_OBJECTS, SandboxHandle, start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.sync.runner import run_backfill


@pytest.fixture
def crm_and_billing(tmp_path: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(systems=["pipedrive", "meteroid"], world=generate_world(5, 400, now=NOW),
                           state_dir=tmp_path / "sb")
    try:
        yield handle
    finally:
        handle.stop()


def test_billing_report_joins_won_deals_to_their_subscriptions(store: Store, crm_and_billing: SandboxHandle,
                                                                tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    config = crm_and_billing.write_config(tmp_path / "crmsync.yaml", store_url=url)
    settings = load_settings(config)
    name = CONNECTION_NAMES["pipedrive"]
    for obj in CRM_OBJECTS["pipedrive"]:
        assert run_backfill(settings, store, name, obj).status == "ok", obj
    created = run_billing_sync(settings, store)
    html, table = tmp_path / "billing.html", tmp_path / "billing.csv"
    result = CliRunner().invoke(app, ["report", "billing", "-c", str(config), "--html", str(html), "--csv", str(table)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = html.read_text(encoding="utf-8")
    won = sum(1 for d in crm_and_billing.world.deals if crm_and_billing.world.stages[d.stage].is_won)
    match = re.search(r"Of (\d+) won deals, (\d+) \(", text)
    assert match is not None, text[:2000]
    assert int(match.group(1)) == won
    subscribed = int(match.group(2))
    assert 0 < subscribed <= won
    assert created.provisioned > 0
    assert subscribed == created.provisioned  # every deal the billing sync provisioned is joined back
    assert "Net revenue retention is" in text and "From won to first invoice takes" in text
    assert "Retention by cohort" in text and "Retention by segment" in text
    # the seeded subscriptions the world already had carry no crmsync marker: counted, not matched
    assert re.search(r"(\d+) subscriptions carry no crmsync deal marker", text)
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert images and base64.b64decode(images[0])[:8] == PNG_MAGIC
    if Path(CHROMIUM).exists():
        loaded, total = screenshot(html, ARTIFACTS / "billing.png")
        assert loaded == total == len(images)
