from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from crmsync.rules.context import RuleContext
from crmsync.rules.decisions import Decision
from crmsync.rules.routing import Router, unavailable_reason
from crmsync.rules.schema import RoutingFile
from crmsync.rules.state import InMemoryRoutingState

from .conftest import CONN, NOW, account, ctx, deal, lead, owner


def router(pools: list[dict[str, Any]], rules: list[dict[str, Any]], **kw: Any) -> Router:
    return Router(RoutingFile.model_validate({"pools": pools, "rules": rules, **kw}))


def route_all(r: Router, records: list[Any], c: RuleContext) -> list[Decision]:
    out: list[Decision] = []
    for rec in records:
        r.route(rec, c, out, "h")
    return out


def leads(n: int, start: int = 0) -> list[Any]:
    return [lead(source_id=f"l{i}", region="NA") for i in range(start, start + n)]


def test_fairness_weighted_pool_with_inactive_and_capped_rep() -> None:
    owners = {(CONN, o.source_id): o for o in [
        owner("A"), owner("B"), owner("C"), owner("D", active=False), owner("E", capacity_per_day=100),
    ]}
    r = router(
        [{"name": "p", "strategy": "weighted", "members": [
            {"owner": "A", "weight": 3}, {"owner": "B", "weight": 2}, {"owner": "C", "weight": 1},
            {"owner": "D", "weight": 2}, {"owner": "E", "weight": 2}]}],
        [{"name": "all", "object": "lead", "pool": "p"}],
    )
    c = ctx(owners=owners)
    out = route_all(r, leads(1000), c)
    assert len(out) == 1000
    got = Counter(d.fields["owner_id"] for d in out)
    assert got["D"] == 0, "inactive rep gets nothing"
    assert got["E"] == 100, "capped rep stops exactly at its cap"
    uncapped = got["A"] + got["B"] + got["C"]
    for rep, weight in (("A", 3), ("B", 2), ("C", 1)):
        assert abs(got[rep] / uncapped - weight / 6) <= 0.02, (rep, got)
    # while E was under its cap, its share followed its weight among eligible reps (2 of 8)
    first = Counter(d.fields["owner_id"] for d in out[:400])
    assert abs(first["E"] / 400 - 2 / 8) <= 0.02
    assert all("why" not in d.reason and "chose" in d.reason for d in out)


def test_skipped_rep_keeps_turn_and_no_backup_absorbs_it() -> None:
    reps = {(CONN, x): owner(x) for x in "ABC"}
    r = router([{"name": "p", "members": [{"owner": x} for x in "ABC"]}], [{"name": "all", "object": "lead", "pool": "p"}])
    state = InMemoryRoutingState()
    assert [d.fields["owner_id"] for d in route_all(r, leads(1), ctx(owners=reps, routing_state=state))] == ["A"]
    reps[(CONN, "B")].out_of_office = True  # B was next in line
    away = route_all(r, leads(10, start=1), ctx(owners=reps, routing_state=state))
    got = Counter(d.fields["owner_id"] for d in away)
    assert set(got) == {"A", "C"} and abs(got["A"] - got["C"]) <= 2, "B's turns are spread, not absorbed by one rep"
    reps[(CONN, "B")].out_of_office = False
    back = route_all(r, leads(30, start=11), ctx(owners=reps, routing_state=state))
    assert back[0].fields["owner_id"] == "B", "B resumes with the turn it kept"
    got = Counter(d.fields["owner_id"] for d in back)
    assert all(abs(got[x] - 10) <= 1 for x in "ABC"), got


def test_round_robin_state_is_durable_per_pool() -> None:
    reps = {(CONN, x): owner(x) for x in "ABC"}
    r = router([{"name": "p", "members": [{"owner": x} for x in "ABC"]},
                {"name": "q", "members": [{"owner": x} for x in "ABC"]}],
               [{"name": "na", "object": "lead", "when": {"field": "region", "eq": "NA"}, "pool": "p"},
                {"name": "other", "object": "lead", "pool": "q"}])
    state = InMemoryRoutingState()
    first = route_all(r, leads(2), ctx(owners=reps, routing_state=state))
    emea = route_all(r, [lead(source_id="e1", region="EMEA")], ctx(owners=reps, routing_state=state))
    second = route_all(r, leads(1, start=2), ctx(owners=reps, routing_state=state))
    assert [d.fields["owner_id"] for d in first + second] == ["A", "B", "C"]
    assert emea[0].fields["owner_id"] == "A" and emea[0].rule_name == "other"


@pytest.mark.parametrize(
    ("kw", "now", "reason"),
    [
        ({"active": False}, NOW, "inactive"),
        ({"out_of_office": True}, NOW, "out of office"),
        ({"timezone": "Europe/Berlin", "working_hours": {"start": "09:00", "end": "15:00"}}, NOW, "off hours"),
        ({"timezone": "America/New_York", "working_hours": {"start": "09:00", "end": "17:00", "days": [0, 1, 2, 3, 4]}},
         NOW, None),
        ({"timezone": "America/New_York", "working_hours": {"start": "09:00", "end": "17:00", "days": [0, 1, 2, 3, 4]}},
         NOW - dt.timedelta(days=2), "off hours"),  # Saturday
        ({"timezone": "Asia/Tokyo", "working_hours": {"start": "22:00", "end": "06:00"}}, NOW, None),  # 00:00 JST
    ],
)
def test_availability(kw: dict[str, Any], now: dt.datetime, reason: str | None) -> None:
    got = unavailable_reason(owner("x", **kw), now)
    assert (got is None) if reason is None else (got is not None and reason in got)


def test_fewest_open_spreads_a_bulk_insert() -> None:
    reps = {(CONN, x): owner(x) for x in "ABC"}
    r = router([{"name": "p", "strategy": "fewest_open", "members": [{"owner": x} for x in "ABC"]}],
               [{"name": "all", "object": "lead", "pool": "p"}])
    c = ctx(owners=reps, open_counts={(CONN, "A"): 10, (CONN, "B"): 0, (CONN, "C"): 2})
    got = Counter(d.fields["owner_id"] for d in route_all(r, leads(30), c))
    assert got == {"B": 14, "C": 12, "A": 4}


@pytest.mark.parametrize(
    ("record", "expected_owner", "expected_rule"),
    [
        (lead(source_id="x1", email="jo@acme.example", region="NA"), "A", "acct"),
        (lead(source_id="x2", company="Acme, Inc.", region="NA"), "A", "acct"),
        (lead(source_id="x3", email="jo@new.example", region="EMEA"), "E", "terr"),
        (lead(source_id="x4", email="jo@new.example", region="Mars"), "C", "terr"),
        (deal(source_id="d1", account_id="a1"), "A", "deal_acct"),
        (deal(source_id="d2", account_id="a2"), "C", "deal_terr"),  # account owner inactive -> territory default
    ],
)
def test_rule_strategies(record: Any, expected_owner: str, expected_rule: str) -> None:
    reps = {(CONN, x): owner(x) for x in "ACE"}
    reps[(CONN, "Z")] = owner("Z", active=False)
    accounts = {(CONN, "a1"): account("a1", name="Acme Inc", domain="acme.example", owner_id="A"),
                (CONN, "a2"): account("a2", name="Old", owner_id="Z")}
    r = router(
        [{"name": "na", "members": [{"owner": "A"}]}, {"name": "emea", "members": [{"owner": "E"}]},
         {"name": "rest", "members": [{"owner": "C"}]}],
        [{"name": "acct", "object": "lead", "strategy": "account_match"},
         {"name": "terr", "object": "lead", "strategy": "territory",
          "territory": {"field": "region", "map": {"NA": "na", "EMEA": "emea"}, "default": "rest"}},
         {"name": "deal_acct", "object": "deal", "strategy": "account_match", "match_by": ["account"]},
         {"name": "deal_terr", "object": "deal", "pool": "rest"}],
    )
    out = route_all(r, [record], ctx(owners=reps, accounts=accounts))
    assert [(d.fields["owner_id"], d.rule_name) for d in out] == [(expected_owner, expected_rule)]


def test_sticky_owner_and_fallbacks() -> None:
    reps = {(CONN, x): owner(x) for x in ("A", "B", "Q", "M")}
    reps[(CONN, "B")].active = False
    r = router(
        [{"name": "p", "members": [{"owner": "A"}, {"owner": "B"}]},
         {"name": "empty", "members": [{"owner": "B"}], "fallback": {"owner": "Q"}},
         {"name": "mgr", "members": [{"owner": "B"}], "manager": "M", "fallback": {"manager": True}}],
        [{"name": "sticky", "object": "lead", "strategy": "sticky_owner"},
         {"name": "to_queue", "object": "lead", "when": {"field": "region", "eq": "Q"}, "pool": "empty"},
         {"name": "to_mgr", "object": "lead", "when": {"field": "region", "eq": "M"}, "pool": "mgr"},
         {"name": "p", "object": "lead", "pool": "p"}],
    )
    state = InMemoryRoutingState()
    c = ctx(owners=reps, routing_state=state)
    out = route_all(r, [lead(source_id="1", email="a@co.example"), lead(source_id="2", email="b@co.example"),
                        lead(source_id="3", region="Q", email="x@q.example"),
                        lead(source_id="4", region="M", email="x@m.example")], c)
    assert [(d.fields["owner_id"], d.rule_name) for d in out] == [("A", "p"), ("A", "sticky"), ("Q", "to_queue"),
                                                                   ("M", "to_mgr")]
    assert "fallback queue Q" in out[2].reason and "B: inactive" in out[2].reason


def test_rerun_before_crm_echo_creates_nothing_and_sla_reassigns_once() -> None:
    reps = {(CONN, x): owner(x) for x in "AB"}
    r = router([{"name": "p", "members": [{"owner": "A"}, {"owner": "B"}]}],
               [{"name": "all", "object": "lead", "pool": "p"}],
               sla=[{"name": "first_touch", "object": "lead", "hours": 4}])
    state = InMemoryRoutingState()
    rec = lead(source_id="s1")
    first = route_all(r, [rec], ctx(owners=reps, routing_state=state))
    assert [d.fields["owner_id"] for d in first] == ["A"]
    assert route_all(r, [rec], ctx(owners=reps, routing_state=state)) == []  # not applied yet: nothing new
    rec.owner_id = "A"  # the CRM now shows the assignment
    assert route_all(r, [rec], ctx(owners=reps, routing_state=state, now=NOW + dt.timedelta(hours=3))) == []
    late = route_all(r, [rec], ctx(owners=reps, routing_state=state, now=NOW + dt.timedelta(hours=5)))
    assert [(d.rule_name, d.fields["owner_id"]) for d in late] == [("first_touch", "B")]
    assert late[0].idempotency_key == f"sla:lead:{CONN}:s1:{NOW.isoformat()}"
    acted = lead(source_id="s2", owner_id="A", last_activity_at=NOW + dt.timedelta(hours=1))
    state.set("routing.assigned", f"lead:{CONN}:s2", {"owner": "A", "pool": "p", "at": NOW.isoformat(), "from": "-"})
    assert route_all(r, [acted], ctx(owners=reps, routing_state=state, now=NOW + dt.timedelta(hours=9))) == []


def test_capacity_per_month_and_team_members() -> None:
    reps = {(CONN, "1"): owner("1", team="NA Sales", capacity_per_month=2), (CONN, "2"): owner("2", team="NA Sales"),
            (CONN, "3"): owner("3", team="EMEA Sales")}
    r = router([{"name": "p", "teams": ["NA Sales"]}], [{"name": "all", "object": "lead", "pool": "p"}])
    got = Counter(d.fields["owner_id"] for d in route_all(r, leads(10), ctx(owners=reps)))
    assert got == {"1": 2, "2": 8}
