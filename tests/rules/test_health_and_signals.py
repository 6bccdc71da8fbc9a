"""Customer health maths and explanations, check-ins, expansion exactly once, call signals matched
to deals and contacts, and the hygiene call findings of the shipped rule files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from crmsync.activity import Call, CallParty, CrmRef, InvoiceFact, MeterReading
from crmsync.decide.runner import outbox_item_for
from crmsync.model import Contact
from crmsync.rules.decisions import CREATE_EXPANSION, CREATE_TASK, FINDING
from crmsync.rules.engine import evaluate
from crmsync.rules.health import CustomerFacts, score_customer
from crmsync.rules.loader import load_rules
from crmsync.rules.signals import build_signals, engagement_from_calls

from .conftest import CONN, NOW, ctx, deal, owner

RULES = Path(__file__).resolve().parents[2] / "config" / "rules"
TODAY = NOW.date()


def reading(value: int, included: int | None = 100) -> MeterReading:
    return MeterReading("billing", "sub_1", "cus_1", "bm_1", "active_seats", "Active seats", TODAY.replace(day=1),
                        TODAY, Decimal(value), None if included is None else Decimal(included))


def invoice(n: int, *, paid: bool, due_days_ago: int = 10) -> InvoiceFact:
    due = TODAY - dt.timedelta(days=due_days_ago)
    return InvoiceFact("billing", f"inv_{n}", "cus_1", "sub_1", "FINALIZED", "PAID" if paid else "UNPAID",
                       due - dt.timedelta(days=30), due, None, 10_000, 0 if paid else 10_000, "EUR")


def facts(**kw: object) -> CustomerFacts:
    base: dict[str, object] = {"subscription_id": "sub_1", "start_date": TODAY - dt.timedelta(days=120),
                               "readings": (reading(70),), "invoices": (invoice(1, paid=True),),
                               "last_touch": NOW - dt.timedelta(days=10), "calls_since_start": 2}
    base.update(kw)
    return CustomerFacts(**base)  # type: ignore[arg-type]


def cfg():  # type: ignore[no-untyped-def]
    rules = load_rules(RULES)
    assert rules.health is not None
    return rules, rules.health.cfg


def test_health_maths_per_input_with_explanations() -> None:
    _, config = cfg()
    full = score_customer(config, facts(), TODAY, NOW)
    assert full.score == Decimal("100.0") and full.grade == "healthy"
    assert "70 of 100 active_seats = 70%" in full.explain()
    # usage at 40%: (0.4 - 0.2) / (0.6 - 0.2) = 0.5 of 40 points; one of two invoices overdue: 0.5 of 25
    mixed = score_customer(config, facts(readings=(reading(40),), invoices=(invoice(1, paid=True),
                                                                          invoice(2, paid=False))), TODAY, NOW)
    parts = {p.name: p.points for p in mixed.parts}
    # adoption (usage 50% at day 90) is missed at 40%: 2 of 3 milestones -> 13.3 of 20
    assert parts == {"usage": Decimal("20.0"), "billing": Decimal("12.5"), "onboarding": Decimal("13.3"),
                     "engagement": Decimal("15.0")}
    assert mixed.score == Decimal("60.8") and mixed.grade == "watch"
    assert "1 of 2 invoices overdue (inv_2)" in mixed.explain() and "missed adoption" in mixed.explain()
    # no call for 70 days (between 45 and 90: half), no limit known: usage counts in full
    quiet = score_customer(config, facts(readings=(reading(5, None),), last_touch=NOW - dt.timedelta(days=70)),
                           TODAY, NOW)
    assert {p.name: p.points for p in quiet.parts}["engagement"] == Decimal("7.5")
    assert "no active_seats limit" in quiet.explain()
    # an unpaid invoice not yet due is not overdue
    assert score_customer(config, facts(invoices=(invoice(3, paid=False, due_days_ago=-5),)), TODAY, NOW).score == 100


def won(**kw: object):  # type: ignore[no-untyped-def]
    return deal(is_closed=True, is_won=True, stage_id="closedwon", owner_id="o1", account_id="a1", name="Acme",
                amount=Decimal(1000), currency="EUR", **kw)


def test_expansion_is_decided_once_and_becomes_a_deal_create() -> None:
    rules, _ = cfg()
    record = won()
    c = ctx(owners={(CONN, "o1"): owner("o1", name="Ann")}, customers={(CONN, "d1"): facts(readings=(reading(95),))})
    first = [d for d in evaluate(rules, [record], c, kinds=("health",)) if d.action == CREATE_EXPANSION]
    assert len(first) == 1
    assert "active_seats at 95% of the plan limit" in first[0].reason and first[0].fields["owner_id"] == "o1"
    item = outbox_item_for(first[0], record, c)
    assert item is not None and item.object_name == "deals" and item.operation == "create"
    assert item.fields["crmsync_key"] == first[0].idempotency_key  # the CRM upsert key: a rerun finds it
    # a rerun (the key is known: queued or logged) decides nothing new, at 95% or at 99%
    again = ctx(owners=c.owners, customers={(CONN, "d1"): facts(readings=(reading(99),))},
                known_keys={first[0].idempotency_key})
    assert [d for d in evaluate(rules, [record], again, kinds=("health",)) if d.action == CREATE_EXPANSION] == []
    below = ctx(owners=c.owners, customers={(CONN, "d1"): facts(readings=(reading(80),))})
    assert [d for d in evaluate(rules, [record], below, kinds=("health",)) if d.action == CREATE_EXPANSION] == []


def test_check_in_before_a_milestone_and_health_logged() -> None:
    rules, _ = cfg()
    start = TODAY - dt.timedelta(days=25)  # "first seats live" due in 5 days, usage at 10%
    c = ctx(customers={(CONN, "d1"): facts(start_date=start, readings=(reading(10),))})
    out = evaluate(rules, [won()], c, kinds=("health",))
    tasks = [d for d in out if d.action == CREATE_TASK]
    assert [t.fields["subject"] for t in tasks] == ["Check-in: first seats live for Acme"]
    assert tasks[0].fields["due_date"] == start + dt.timedelta(days=30)
    finding = next(d for d in out if d.action == FINDING)
    assert finding.fields["grade"] in ("healthy", "watch", "at_risk") and "usage" in finding.reason


def call(cid: str, days_ago: int, emails: list[str], *, refs: tuple[CrmRef, ...] = (), next_steps: bool = False,
         competitor: bool = False) -> Call:
    parties = (CallParty("rep@us.example", "Rep", "AE", "Internal", "u1"),
               *(CallParty(e, e.split("@")[0], "CTO", "External") for e in emails))
    return Call("gong", cid, NOW - dt.timedelta(days=days_ago), 1800, "call", "u1", parties, refs,
                trackers={"Competitors": 1 if competitor else 0},
                tracker_phrases={"Competitors": ("Globex",)} if competitor else {},
                highlights={"Next steps": ("Send the proposal",)} if next_steps else {})


def contact(cid: str, email: str, title: str = "CTO") -> Contact:
    return Contact(connection=CONN, source_object="Contact", source_id=cid, modified_at=NOW, email=email,
                   account_id="a1", title=title)


def test_signals_match_calls_by_context_or_email_and_feed_hygiene_and_scoring() -> None:
    rules, _ = cfg()
    late = deal(source_id="d1", stage_id="negotiation", account_id="a1", extra={"champion": "Head of Ops"},
                created_at=NOW - dt.timedelta(days=200), owner_id="o1", name="Acme")
    other = deal(source_id="d2", stage_id="negotiation", account_id="a9", created_at=NOW - dt.timedelta(days=200))
    people = [contact("c1", "cto@acme.example"), contact("c2", "ops@acme.example", "Head of Ops")]
    calls = [call("k1", 30, ["cto@acme.example"], competitor=True),
             call("k2", 20, ["nobody@else.example"], refs=(CrmRef("Salesforce", "Opportunity", "d1"),),
                  next_steps=True)]
    signals = build_signals(CONN, calls, [late, other], [], people, NOW, engagement=engagement_from_calls(calls))
    s = signals[(CONN, "deal", "d1")]
    assert (s.calls_held, s.days_since_call, s.competitor_mentioned, s.next_steps_agreed) == (2, 20, True, True)
    assert s.champion_on_call is False and s.competitors == ("Globex",) and "Send the proposal" in s.highlights
    assert s.meetings == 1  # the CTO met once
    assert signals[(CONN, "deal", "d2")].calls_held == 0
    c = ctx(signals=signals, owners={(CONN, "o1"): owner("o1")})
    found = {d.rule_name for d in evaluate(rules, [late], c, kinds=("hygiene",)) if d.action == FINDING}
    assert {"late_stage_no_recent_call", "champion_not_on_any_call"} <= found
    # no call data connected: no call findings
    bare = {d.rule_name for d in evaluate(rules, [late], ctx(), kinds=("hygiene",)) if d.action == FINDING}
    assert not bare & {"late_stage_no_recent_call", "champion_not_on_any_call"}
    score = next(d for d in evaluate(rules, [late], c, kinds=("scoring",)))
    assert "next_steps_agreed +8" in score.reason and "competitor_mentioned -5" in score.reason


def test_handoff_carries_call_highlights_and_stakeholders_met() -> None:
    rules, _ = cfg()
    record = won(extra={"use_case": "Revenue analytics"})
    calls = [call("k1", 12, ["cto@acme.example"], next_steps=True)]
    signals = build_signals(CONN, calls, [record], [], [contact("c1", "cto@acme.example")], NOW)
    out = evaluate(rules, [record], ctx(signals=signals), kinds=("handoff",))
    handoff = next(d for d in out if d.action == "create_handoff")
    assert handoff.fields["calls"]["stakeholders met"] == "cto (CTO)"
    assert handoff.fields["calls"]["highlights"] == "Send the proposal"
    note = next(d for d in out if d.action == "create_note")
    assert "stakeholders met: cto (CTO)" in note.fields["body"] and "Send the proposal" in note.fields["body"]


def test_no_health_before_the_contract_starts() -> None:
    rules, _ = cfg()
    c = ctx(customers={(CONN, "d1"): facts(start_date=TODAY + dt.timedelta(days=3), readings=(reading(99),))})
    assert evaluate(rules, [won()], c, kinds=("health",)) == []


def test_engagement_from_another_source_merges_by_email() -> None:
    from crmsync.rules.signals import EngagementSummary, merge_engagement

    calls = [call("k1", 3, ["CTO@acme.example"])]
    outreach = {"cto@acme.example": EngagementSummary("CTO@acme.example", opens=4, replies=1,
                                                      last_engaged_at=NOW - dt.timedelta(days=1))}
    people = merge_engagement(engagement_from_calls(calls), outreach)
    assert people["cto@acme.example"] == EngagementSummary("cto@acme.example", 4, 1, 1, NOW - dt.timedelta(days=1))
