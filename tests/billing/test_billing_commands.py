from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmsync.billing.commands import billing_app
from crmsync.sandbox import SandboxServer, generate_world
from crmsync.sandbox.meteroid import DEFAULT_API_KEY, MeteroidSimulator


@pytest.fixture()
def config(tmp_path: Path):
    sim = MeteroidSimulator(generate_world(7, 300, now=dt.datetime.now(dt.UTC)))
    with SandboxServer(sim.build_app(), name="meteroid") as srv:
        path = tmp_path / "crmsync.yaml"
        path.write_text(f"""
store: {{url: "sqlite:///{tmp_path}/s.db"}}
connections:
  - {{name: billing, kind: meteroid, base_url: "{srv.url}", credentials: {{api_key: "{DEFAULT_API_KEY}"}}}}
billing: {{connection: billing, price_master: report_only}}
""")
        yield path, sim


def test_drift_writes_csv_with_money_at_stake(config, tmp_path: Path) -> None:
    path, _ = config
    out = tmp_path / "drift.csv"
    result = CliRunner().invoke(billing_app, ["drift", "--config", str(path), "--csv", str(out),
                                              "--world-seed", "7", "--world-deals", "300"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    kinds = {r["kind"] for r in rows}
    assert {"price_book", "list_price_drift", "amount_vs_lines"} <= kinds
    book = [r for r in rows if r["kind"] == "price_book"]
    assert {r["subject"].split()[0] for r in book} == {"ADDON-SSO", "DATA-WH"}
    assert all(float(r["money_at_stake"]) >= 0 for r in rows)
    assert DEFAULT_API_KEY not in result.output


def test_renewals_lists_the_60_90_day_window(config) -> None:
    path, sim = config
    result = CliRunner().invoke(billing_app, ["renewals", "--config", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    today = dt.datetime.now(dt.UTC).date()
    due = [s for s in sim.truth("subscriptions") if s["end_date"]
           and 60 <= (dt.date.fromisoformat(s["end_date"]) - today).days <= 90]
    assert f"renewals in 60-90 days: {len(due)}" in result.output and due
    assert due[0]["id"] in result.output


def test_sync_report_only(config) -> None:
    path, _ = config
    result = CliRunner().invoke(billing_app, ["sync", "--config", str(path), "--world-seed", "7"])
    assert result.exit_code == 0, result.output
    assert "ADDON-SSO" in result.output and "nothing queued" in result.output
