"""An experiment end to end on a real store: assignment, the variant's routing, outcomes, the report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from collections import Counter
from pathlib import Path

import pytest
from scipy import stats
from sqlalchemy import select

from crmsync.decide.runner import build_context, known_decision_keys
from crmsync.model import Lead, ObjectType, Owner
from crmsync.report.experiments import experiment_results, experiments_page
from crmsync.rules.engine import evaluate
from crmsync.rules.loader import RuleSet, load_rules
from crmsync.store import Store
from crmsync.store.workflow_tables import experiment_assignments
from crmsync.trials.experiments import group_counts, run_experiments

RULES_DIR = Path(__file__).resolve().parents[2] / "config" / "rules"
CONN = "crm"
NOW = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)
TEAMS = {"na1": "NA Sales", "na2": "NA Sales", "na3": "NA Sales", "emea1": "EMEA Sales", "emea2": "EMEA Sales",
         "apac1": "APAC Sales"}


def _owners() -> list[Owner]:
    return [Owner(connection=CONN, source_object="User", source_id=o, modified_at=NOW, team=team, name=o)
            for o, team in TEAMS.items()]


def _leads(n: int) -> list[Lead]:
    created = NOW - dt.timedelta(days=10)
    return [Lead(connection=CONN, source_object="Lead", source_id=f"00Q{i:06d}", modified_at=created,
                 created_at=created, last_name=f"L{i}", region="APAC") for i in range(n)]


@pytest.fixture
def rule_set() -> RuleSet:
    return load_rules(RULES_DIR)


def test_assignment_routing_outcomes_and_report(store: Store, rule_set: RuleSet, tmp_path: Path) -> None:
    store.upsert([*_owners(), *_leads(600)])
    leads = list(store.iter_records(ObjectType.LEAD, connection=CONN))
    ctx = build_context(store, [CONN], now=NOW, known_keys=known_decision_keys(store, [CONN]))
    run = run_experiments(store, rule_set, leads, ctx, CONN)
    (experiment,) = rule_set.experiments
    groups = group_counts(store, experiment.name)
    assert sum(groups.values()) == 600 and run.assigned[experiment.name] == groups
    with store.engine.connect() as conn:
        stored = {sid: g for sid, g in conn.execute(select(experiment_assignments.c.source_id,
                                                           experiment_assignments.c.variant))}
    assert stored == {lead.source_id: experiment.group_of(CONN, lead.source_id) for lead in leads}

    writes = {i.source_id: i for i in store.outbox_items(connection=CONN, limit=10_000)}
    assert set(writes) == {sid for sid, g in stored.items() if g != "holdout"}  # the holdout is left to the rules
    enterprise = {o for o, team in TEAMS.items() if team in ("NA Sales", "EMEA Sales")}
    for sid, item in writes.items():
        assert item.operation == "update" and set(item.fields) == {"owner_id"}
        if stored[sid] == "fewest_open":
            assert item.fields["owner_id"] in enterprise  # enterprise_desk: NA and EMEA Sales only
    fewest = Counter(writes[s].fields["owner_id"] for s, g in stored.items() if g == "fewest_open")
    assert max(fewest.values()) - min(fewest.values()) <= 1  # fewest open: spread evenly

    # the live rules route only the holdout (APAC leads -> apac_sales), not the experiment's records again
    ctx = build_context(store, [CONN], now=NOW, known_keys=known_decision_keys(store, [CONN]))
    routed = {d.source_id for d in evaluate(rule_set, leads, ctx, kinds=("routing",)) if d.action == "assign_owner"}
    assert routed == {sid for sid, g in stored.items() if g == "holdout"}
    again = run_experiments(store, rule_set, leads, build_context(store, [CONN], now=NOW), CONN)
    assert again.assigned[experiment.name] == {} and again.enqueued == 0

    # outcomes: fewest_open converts 2 of 3 and is touched in 2 h; round_robin 1 of 3, touched in 5 h
    updated = []
    for lead in leads:
        g = stored[lead.source_id]
        n = int(lead.source_id[3:])
        converted = (n % 3 != 0) if g == "fewest_open" else (n % 3 == 0)
        hours = 2 if g == "fewest_open" else 5 + (n % 2)
        assert isinstance(lead, Lead) and lead.created_at is not None
        updated.append(dataclasses.replace(lead, is_converted=converted, modified_at=NOW,
                                           last_activity_at=lead.created_at + dt.timedelta(hours=hours)))
    store.upsert(updated)
    (result,) = experiment_results(store, rule_set.experiments, NOW.date())
    assert result.groups == {"round_robin": groups["round_robin"], "fewest_open": groups["fewest_open"],
                             "holdout": groups["holdout"]}
    conversion = {m.group: m for m in result.metrics["conversion"]}
    ids = {g: [int(s[3:]) for s, x in stored.items() if x == g] for g in groups}
    x_f = sum(1 for n in ids["fewest_open"] if n % 3 != 0)
    x_r = sum(1 for n in ids["round_robin"] if n % 3 == 0)
    assert conversion["fewest_open"].successes == x_f and conversion["round_robin"].successes == x_r
    assert conversion["fewest_open"].value == pytest.approx(x_f / len(ids["fewest_open"]))
    vs = conversion["fewest_open"].versus_control
    assert vs is not None
    table = [[x_f, len(ids["fewest_open"]) - x_f], [x_r, len(ids["round_robin"]) - x_r]]
    assert vs.p_value == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert vs.p_value < 0.001 and vs.interval.low > 0
    touch = {m.group: m for m in result.metrics["time_to_first_touch"]}
    assert touch["fewest_open"].value == pytest.approx(2.0)
    assert result.status == "significant at an interim look (planned n not reached)"  # < 400 per variant
    page = experiments_page([result], now=NOW)
    assert "significant at an interim look" in page.findings[0]
    assert any(row[1] == "round_robin (control)" for row in page.tables[0].rows)

    # after the stop date the experiment is stopped; a smaller plan is reached
    (stopped,) = experiment_results(store, rule_set.experiments, dt.date(2027, 4, 1))
    assert stopped.status == "stopped"
    (early,) = experiment_results(store, rule_set.experiments, dt.date(2025, 12, 31))
    assert early.status == "not started"
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "experiments.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("planned_sample_size: 400", "planned_sample_size: 200"),
                    encoding="utf-8")
    (reached,) = experiment_results(store, load_rules(rules).experiments, NOW.date())
    assert reached.status == "planned n reached"

