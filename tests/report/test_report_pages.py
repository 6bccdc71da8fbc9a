"""``crmsync report deals|losses``: a HubSpot sandbox synced over HTTP (with its stage history), then
the commands write a self-contained HTML page, PNG charts and CSV tables; Chromium renders the HTML
and the screenshot is kept under ``test-artifacts/`` (gitignored) for a person to look at."""

from __future__ import annotations

import base64
import csv
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_harness import NOW
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.sandbox.runner import CONNECTION_NAMES, SandboxHandle, start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.sync.runner import run_backfill

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def hubspot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxHandle]:
    handle = start_sandbox(systems=["hubspot"], world=generate_world(21, 1200, now=NOW),
                           state_dir=tmp_path_factory.mktemp("sb"))
    try:
        yield handle
    finally:
        handle.stop()


def synced(store: Store, handle: SandboxHandle, tmp_path: Path) -> Path:
    url = store.engine.url.render_as_string(hide_password=False)
    config = handle.write_config(tmp_path / "crmsync.yaml", store_url=url)
    settings = load_settings(config)
    for obj in ("owners", "pipelines", "stages", "accounts", "deals"):
        assert run_backfill(settings, store, CONNECTION_NAMES["hubspot"], obj).status == "ok"
    return config


def screenshot(page_path: Path, out: Path) -> tuple[int, int]:
    """Render ``page_path`` in headless Chromium; returns (images loaded, images on the page)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu",
                                          "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_load_state("load")
            loaded = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
            total = page.evaluate("document.images.length")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []  # self-contained
    return int(loaded), int(total)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (.ci/run installs it)")
def test_deals_and_losses_pages_render_in_chromium(store: Store, hubspot: SandboxHandle, tmp_path: Path) -> None:
    config = synced(store, hubspot, tmp_path)
    runner = CliRunner()
    for kind in ("deals", "losses"):
        html, png, table = tmp_path / f"{kind}.html", tmp_path / f"{kind}.png", tmp_path / f"{kind}.csv"
        result = runner.invoke(app, ["report", kind, "-c", str(config), "--html", str(html), "--png", str(png),
                                     "--csv", str(table)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        text = html.read_text(encoding="utf-8")
        images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
        assert images and all(base64.b64decode(i)[:8] == PNG_MAGIC for i in images)
        assert "http://" not in text and "https://" not in text and "<script" not in text
        assert png.read_bytes()[:8] == PNG_MAGIC
        with table.open(encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert len(rows) > 10
        if kind == "deals":
            assert "the weakest step" in text and "Sales velocity is" in text and "Win rate of deals created" in text
            assert "Created-quarter cohorts" in text and "By team" in text and "backwards moves" in text
            assert "Lost deals count at the stage they were lost from." in text
        else:
            assert "most common loss reason" in text and "By competitor" in text and "Most deals are lost from" in text
        loaded, total = screenshot(html, ARTIFACTS / f"{kind}.png")
        assert total == len(images) and loaded == total
        shot = (ARTIFACTS / f"{kind}.png").read_bytes()
        assert shot[:8] == PNG_MAGIC and len(shot) > 50_000
