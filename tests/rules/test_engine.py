from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path

from typer.testing import CliRunner

from crmsync.model import ObjectType
from crmsync.rules.commands import rules_app
from crmsync.rules.context import RuleContext
from crmsync.rules.engine import apply_fields, evaluate, incremental
from crmsync.rules.hygiene import digest
from crmsync.rules.loader import load_rules
from crmsync.rules.predictive import NaiveBayesModel
from crmsync.rules.state import InMemoryRoutingState
from crmsync.rules.testing import run_tests

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "rules"


def _bench():  # the bench's deterministic generator, reused for a realistic population
    spec = importlib.util.spec_from_file_location("bench_rules", ROOT / "bench" / "bench_rules.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _ctx(b, state, known=frozenset(), previous=None) -> RuleContext:
    owners, stages, accounts = b.build_context_parts()
    return RuleContext(now=b.NOW, owners=owners, stages=stages, accounts=accounts, routing_state=state,
                       known_keys=known, previous=previous or {})


def test_second_cycle_creates_nothing_new_and_keys_are_stable() -> None:
    b = _bench()
    rs = load_rules(RULES)
    deals = b.build_deals(3000)
    run1 = evaluate(rs, deals, _ctx(b, InMemoryRoutingState()))
    again = evaluate(rs, b.build_deals(3000), _ctx(b, InMemoryRoutingState()))
    assert [d.idempotency_key for d in run1] == [d.idempotency_key for d in again]
    assert len({d.idempotency_key for d in run1}) == len(run1), "one key per decision"
    kinds = {d.rule_kind for d in run1}
    assert {"scoring", "routing", "hygiene", "handoff", "renewal"} <= kinds
    # cycle 2 over the same records, same durable state, decision log known: nothing new
    state = InMemoryRoutingState()
    first = evaluate(rs, deals, _ctx(b, state))
    second = evaluate(rs, deals, _ctx(b, state, known={d.idempotency_key for d in first}))
    assert second == []
    # even when the set_fields/assignments came back from the CRM, nothing new
    by_id = {x.source_id: x for x in deals}
    assigned = set()
    for d in first:
        if d.action in ("set_fields", "assign_owner"):
            apply_fields(by_id[d.source_id], d)
            if d.action == "assign_owner":
                assigned.add(d.source_id)
    after = evaluate(rs, deals, _ctx(b, state, known={d.idempotency_key for d in first}))
    # the only new work: tasks for findings on deals that had no owner to give them to before
    assert assigned and all(d.action == "create_task" and d.source_id in assigned for d in after)


def test_incremental_only_evaluates_changed_records() -> None:
    b = _bench()
    rs = load_rules(RULES)
    deals = b.build_deals(500)
    state = InMemoryRoutingState()
    known = {d.idempotency_key for d in evaluate(rs, deals, _ctx(b, state))}
    old = deals[10]
    new = type(old)(**{**old.as_dict(), "extra": dict(old.extra)})
    new.stage_id, new.is_closed, new.is_won = "qualification", False, False
    prev_stage = b.STAGES[[s[0] for s in b.STAGES].index(old.stage_id)]
    out = incremental(rs, [new], _ctx(b, state, known=known, previous={(old.connection, "deal", old.source_id): old}))
    assert out and {d.source_id for d in out} == {new.source_id}
    if not prev_stage[4] and prev_stage[2] > 0:
        assert any(d.rule_name == "stage_moved_backward" for d in out)


def test_config_rule_tests_pass() -> None:
    results = run_tests(load_rules(RULES), RULES / "tests")
    assert len(results) >= 10
    assert [r.name for r in results if not r.passed] == []


def test_digest_groups_findings_by_owner() -> None:
    b = _bench()
    decisions = evaluate(load_rules(RULES), b.build_deals(300), _ctx(b, InMemoryRoutingState()), kinds=["hygiene"])
    dg = digest(decisions)
    assert sum(len(v) for v in dg.values()) == sum(1 for d in decisions if d.action == "finding")
    for rows in dg.values():
        order = [{"critical": 0, "warning": 1, "info": 2}[r["severity"]] for r in rows]
        assert order == sorted(order)


def test_predictive_naive_bayes_learns_and_explains() -> None:
    b = _bench()
    deals = b.build_deals(2000)
    for d in deals:  # plant a strong signal: Referral deals mostly win
        if d.is_closed:
            d.is_won = d.lead_source == "Referral" or d.source_id.endswith("7")
    owners, stages, accounts = b.build_context_parts()
    c = RuleContext(now=b.NOW, owners=owners, stages=stages, accounts=accounts)
    model = NaiveBayesModel.train(ObjectType.DEAL, ["lead_source", "account.segment"], deals, c)
    assert model.n_won > 0 and model.n_lost > 0
    ref = next(d for d in deals if d.lead_source == "Referral")
    web = next(d for d in deals if d.lead_source == "Web")
    p_ref, parts = model.predict(ref, c)
    p_web, _ = model.predict(web, c)
    assert p_ref > 0.9 > 0.3 > p_web
    assert parts[0].field == "lead_source" and parts[0].value == "referral" and parts[0].ratio > 1
    rs = load_rules(RULES)
    c2 = RuleContext(now=b.NOW, owners=owners, stages=stages, accounts=accounts,
                     predictive={"deal_health": NaiveBayesModel.train(ObjectType.DEAL, rs.scoring[0].predictive.fields, deals, c)})
    open_deal = next(d for d in deals if not d.is_closed)
    out = evaluate(rs, [open_deal], c2, kinds=["scoring"])
    assert "extra.crmsync_win_probability" in out[0].fields and "predicted win" in out[0].reason


def test_cli_validate_and_test(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(rules_app, ["validate", "--rules-dir", str(RULES)])
    assert ok.exit_code == 0 and "ok:" in ok.output
    tested = runner.invoke(rules_app, ["test", "--rules-dir", str(RULES)])
    assert tested.exit_code == 0 and "0 failed" in tested.output
    bad = tmp_path / "rules"
    bad.mkdir()
    (bad / "hygiene.yaml").write_text("rules:\n  - name: x\n    kind: no_activity\n    days: soon\n")
    res = runner.invoke(rules_app, ["validate", "--rules-dir", str(bad)])
    assert res.exit_code == 1 and "hygiene.yaml:4" in res.output and "rules[0].days" in res.output


def test_explain_does_not_advance_routing_state() -> None:
    from crmsync.rules.explain import explain

    b = _bench()
    rs = load_rules(RULES)
    state = InMemoryRoutingState()
    unowned = next(d for d in b.build_deals(400) if d.owner_id is None)
    rows = explain(rs, unowned, _ctx(b, state))
    assert state.data == {}
    assert any(r["kind"] == "decision:routing" for r in rows)
    assert any(r["kind"] == "scoring" and r["result"] != "no" for r in rows)
    assert dt.UTC  # timestamps in rows are aware
