"""Lead lifecycle funnel: hand-computed small world (maths) and end to end over the Salesforce sandbox
(leads and their conversions synced, the example rules run, then ``crmsync report lifecycle``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from report_harness import NOW
from typer.testing import CliRunner

from crmsync.cli import app
from crmsync.decide.runner import run_full
from crmsync.model import Deal, Lead
from crmsync.report.lifecycle import lead_facts, lifecycle_funnel
from crmsync.sandbox.runner import CONNECTION_NAMES, SandboxHandle, start_sandbox
from crmsync.sandbox.world import generate_world
from crmsync.settings import load_settings
from crmsync.store import Store
from crmsync.sync.runner import run_backfill

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
STAGES = ("lead", "mql", "sql", "opportunity", "customer")


def day(n: float) -> dt.datetime:
    return T0 + dt.timedelta(days=n)


def lead(lid: str, *, created: float = 0, stage: str | None = None, source: str = "Web", converted: bool = False,
         opportunity: str | None = None, employees: int = 50) -> Lead:
    return Lead(connection="c", source_object="leads", source_id=lid, modified_at=day(200), created_at=day(created),
                lifecycle_stage=stage, source=source, is_converted=converted, employees=employees,
                extra={"converted_opportunity_id": opportunity} if opportunity else {})


def deal(did: str, created: float, *, won: bool) -> Deal:
    return Deal(connection="c", source_object="deals", source_id=did, modified_at=day(200), created_at=day(created),
                is_closed=won, is_won=won, stage_changed_at=day(created + 30) if won else None)


LEADS = [lead("1"), lead("2", stage="mql"), lead("3", stage="sql", source="Referral"),
         lead("4", converted=True, opportunity="d4", source="Referral"),
         lead("5", converted=True, opportunity="d5", employees=5000), lead("6")]
DECISIONS = {("c", "2"): [(day(4), "mql")], ("c", "3"): [(day(2), "mql"), (day(12), "sql")],
             ("c", "4"): [(day(6), "mql"), (day(10), "sql")]}
DEALS = {("c", "d4"): deal("d4", 20, won=False), ("c", "d5"): deal("d5", 15, won=True)}
RULE_STAGE = {("c", "6"): "mql"}  # the transitions, evaluated now, make lead 6 an MQL (time unknown)


def facts() -> list:  # type: ignore[type-arg]
    return lead_facts(LEADS, STAGES, field_name="lifecycle_stage", decisions=DECISIONS, rule_stage=RULE_STAGE,
                      deals=DEALS, segments={})


@pytest.mark.parametrize(("step", "reached", "conversion", "median", "timed"), [
    ("lead", 6, 5 / 6, 4.0, 3),        # lead -> MQL known for 2, 3, 4: 4, 2, 6 days
    ("mql", 5, 3 / 5, 7.0, 2),         # MQL -> SQL known for 3, 4: 10, 4 days
    ("sql", 3, 2 / 3, 10.0, 1),        # SQL -> opportunity known for 4: day 10 -> 20
    ("opportunity", 2, 1 / 2, 30.0, 1),  # deal 5 won 30 days after its creation
    ("customer", 1, None, None, 0),
])
def test_steps(step: str, reached: int, conversion: float | None, median: float | None, timed: int) -> None:
    f = lifecycle_funnel(facts(), STAGES)
    row = next(r for r in f.rows if r.step == step)
    assert (row.reached, row.timed) == (reached, timed)
    assert row.conversion == (pytest.approx(conversion) if conversion is not None else None)
    assert row.median_days_to_next == (pytest.approx(median) if median is not None else None)


def test_groups_and_untimed_steps() -> None:
    f = lifecycle_funnel(facts(), STAGES)
    assert {k: [r.reached for r in rows] for k, rows in f.by_source} == {
        "Web": [4, 3, 1, 1, 1], "Referral": [2, 2, 2, 1, 0]}
    assert {k: rows[0].reached for k, rows in f.by_segment} == {"SMB": 5, "Enterprise": 1}
    # untimed: lead 5's MQL and SQL (implied by its conversion), lead 6's MQL (rules now)
    assert f.untimed_steps == 3


def test_a_drop_between_quarters_is_flagged_with_its_area() -> None:
    older = [lead(f"a{i}", created=-60, stage="sql" if i < 8 else "mql") for i in range(12)]  # Q4: MQL->SQL 8/12
    newer = [lead(f"b{i}", created=10, stage="sql" if i < 3 else "mql") for i in range(12)]  # Q1: 3/12
    f = lifecycle_funnel(lead_facts(older + newer, STAGES, field_name="lifecycle_stage", decisions={}, rule_stage={},
                                    deals={}, segments={}), STAGES)
    assert [(d.step, d.following, d.quarter_before, d.quarter_after, d.area) for d in f.drops] == [
        ("mql", "sql", "2025-Q4", "2026-Q1", "targeting: lead quality and fit")]
    assert (f.drops[0].before, f.drops[0].after) == (pytest.approx(8 / 12), pytest.approx(3 / 12))


@pytest.fixture
def salesforce(tmp_path: Path) -> Iterator[SandboxHandle]:
    handle = start_sandbox(systems=["salesforce"], world=generate_world(9, 800, now=NOW), state_dir=tmp_path / "sb")
    try:
        yield handle
    finally:
        handle.stop()


def test_lifecycle_report_over_the_salesforce_sandbox(store: Store, salesforce: SandboxHandle, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    config = salesforce.write_config(tmp_path / "crmsync.yaml", store_url=url)
    settings = load_settings(config)
    name = CONNECTION_NAMES["salesforce"]
    for obj in ("owners", "stages", "accounts", "leads", "deals"):
        assert run_backfill(settings, store, name, obj).status == "ok", obj
    run_full(settings, store, name)  # the example scoring rules decide lifecycle stages (the decision log)
    html = tmp_path / "lifecycle.html"
    result = CliRunner().invoke(app, ["report", "lifecycle", "-c", str(config), "--html", str(html)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = html.read_text(encoding="utf-8")
    world = salesforce.world
    conversions = [world.lead_conversion(le) for le in world.leads]
    converted = sum(1 for c in conversions if c)
    customers = sum(1 for c in conversions if c and c[1] and world.stages[world.deals[c[1] - 1].stage].is_won)
    assert converted > 10 and customers > 0
    steps = dict(re.findall(r"<tr><td>(Lead|MQL|SQL|Opportunity|Customer)</td><td>(\d+)</td>", text))
    assert int(steps["Lead"]) == len(world.leads)
    assert int(steps["Opportunity"]) == converted and int(steps["Customer"]) == customers
    assert int(steps["Lead"]) >= int(steps["MQL"]) >= int(steps["SQL"]) >= converted
    assert "to_mql" in text and "to_sql" in text  # the definitions the scoring rules use
    assert "By lead source" in text and "By segment" in text and "the weakest step" in text
