"""``crmsync report funnel`` end to end: a Pipedrive sandbox synced into a store over HTTP, stages
moved in the CRM, re-synced, then the command prints the tables and writes the chart and CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from report_harness import OBJECTS, history_events_in
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.model import Deal, ObjectType, Stage
from crmsync.sandbox.pipedrive import PipedriveSimulator
from crmsync.sandbox.runner import SandboxHandle
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.store.stage_events import count_stage_events
from crmsync.sync.runner import run_backfill, run_sync_cycle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def synced_config(store: Store, pipedrive: SandboxHandle, tmp_path: Path) -> tuple[Path, str]:
    url = store.engine.url.render_as_string(hide_password=False)
    config = pipedrive.write_config(tmp_path / "crmsync.yaml", store_url=url)
    settings = load_settings(config)
    name = settings.connections[0].name
    for obj in OBJECTS:
        assert run_backfill(settings, store, name, obj).status == "ok"
    # A week later, people move deals on: every open deal in the first two stages goes one stage on.
    sim = pipedrive.sims["pipedrive"]
    assert isinstance(sim, PipedriveSimulator)
    sim.advance(7 * 86_400)
    moved = 0
    for wdeal in pipedrive.world.deals:
        if wdeal.stage in (0, 1):
            sim.move_stage(str(wdeal.id), str(wdeal.stage + 2))  # ids are order + 1: the next stage
            moved += 1
    assert moved > 50
    assert all(r.status == "ok" for r in run_sync_cycle(settings, store, name, objects=["deals"]))
    assert count_stage_events(store.engine, name) == history_events_in(pipedrive.world) + moved
    return config, name


def test_report_funnel_command(store: Store, pipedrive: SandboxHandle, tmp_path: Path) -> None:
    config, name = synced_config(store, pipedrive, tmp_path)
    chart, table_csv = tmp_path / "out" / "funnel.png", tmp_path / "out" / "funnel.csv"
    result = CliRunner().invoke(app, ["report", "funnel", "--config", str(config), "--chart", str(chart),
                                      "--csv", str(table_csv)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    stages = [s for s in store.iter_records(ObjectType.STAGE, connection=name) if isinstance(s, Stage)]
    assert len(stages) == 7
    for stage in stages:  # every stage is in the table (closed-lost ones in the caption's counts)
        if stage.name != "Closed Lost":
            assert stage.name in result.output
    assert "segment all" in result.output and "censored" in result.output
    assert chart.read_bytes()[:8] == PNG_MAGIC and chart.stat().st_size > 20_000

    with table_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    deals = [d for d in store.iter_records(ObjectType.DEAL, connection=name) if isinstance(d, Deal)]
    everyone = [r for r in rows if r["segment"] == "all"]
    assert [r["stage"] for r in everyone] == ["Qualification", "Discovery", "Demo Scheduled", "Proposal Sent",
                                             "Negotiation", "Closed Won"]
    assert int(everyone[0]["reached"]) == len(deals)  # every deal entered the first stage
    assert int(everyone[-1]["reached"]) == sum(d.is_won for d in deals)
    # The moves a week after the backfill are completed stays: Qualification and Discovery have medians.
    assert float(everyone[0]["median_days"]) > 0 and int(everyone[0]["stays"]) > 0
    assert {r["segment"] for r in rows} >= {"all", "SMB", "MidMarket", "Enterprise"}


def test_report_funnel_filters(store: Store, pipedrive: SandboxHandle, tmp_path: Path) -> None:
    config, _ = synced_config(store, pipedrive, tmp_path)
    chart, table_csv = tmp_path / "smb.png", tmp_path / "smb.csv"
    result = CliRunner().invoke(app, ["report", "funnel", "-c", str(config), "--segment", "SMB", "--since", "90d",
                                      "--chart", str(chart), "--csv", str(table_csv)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    with table_csv.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["segment"] for r in rows} == {"SMB"}
    assert chart.exists()
    bad = CliRunner().invoke(app, ["report", "funnel", "-c", str(config), "--since", "last tuesday"])
    assert bad.exit_code != 0
