from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from crmsync.model import ObjectType
from crmsync.rules.conditions import ConditionError, compile_condition

from .conftest import CONN, NOW, account, ctx, deal, lead

D = ObjectType.DEAL


@pytest.mark.parametrize(
    ("cond", "fields", "expected"),
    [
        ({"field": "amount", "eq": 100}, {"amount": Decimal("100")}, True),
        ({"field": "amount", "eq": 100}, {"amount": Decimal("100.5")}, False),
        ({"field": "amount", "ne": 100}, {"amount": None}, True),
        ({"field": "deal_type", "in": ["New Business", "Expansion"]}, {"deal_type": "Expansion"}, True),
        ({"field": "deal_type", "in": ["New Business"]}, {"deal_type": None}, False),
        ({"field": "amount", "gt": 50000}, {"amount": Decimal("50000")}, False),
        ({"field": "amount", "gte": 50000}, {"amount": Decimal("50000")}, True),
        ({"field": "amount", "lt": 10}, {"amount": None}, False),
        ({"field": "amount", "lte": "10.5"}, {"amount": Decimal("10.5")}, True),
        ({"field": "amount", "between": [10, 20]}, {"amount": Decimal("20")}, True),
        ({"field": "amount", "between": [10, 20]}, {"amount": Decimal("20.01")}, False),
        ({"field": "close_date", "lt": "2026-03-01"}, {"close_date": dt.date(2026, 2, 28)}, True),
        ({"field": "name", "contains": "acme"}, {"name": "ACME renewal"}, True),
        ({"field": "contact_ids", "contains": "c2"}, {"contact_ids": ["c1", "c2"]}, True),
        ({"field": "name", "exists": True}, {"name": ""}, False),
        ({"field": "amount", "exists": False}, {"amount": None}, True),
        ({"field": "extra.champion", "exists": True}, {"extra": {"champion": "Ops"}}, True),
        ({"field": "extra.champion", "exists": True}, {"extra": {}}, False),
        ({"field": "extra.seats", "gte": 50}, {"extra": {"seats": "75"}}, True),
        ({"field": "extra.seats", "gte": 50}, {"extra": {"seats": "n/a"}}, False),
        ({"field": "extra.tier", "eq": "gold"}, {"extra": {"tier": "gold"}}, True),
        ({"field": "last_activity_at", "days_since": {"gt": 30}}, {"last_activity_at": NOW - dt.timedelta(days=31)}, True),
        ({"field": "last_activity_at", "days_since": {"gt": 30}}, {"last_activity_at": NOW - dt.timedelta(days=29)}, False),
        ({"field": "last_activity_at", "days_since": {"gt": 30}}, {"last_activity_at": None}, False),
        ({"field": "close_date", "days_since": {"between": [-30, 0]}}, {"close_date": dt.date(2026, 3, 20)}, True),
        ({"field": "extra.renewed_on", "days_since": {"lte": 7}}, {"extra": {"renewed_on": "2026-02-27"}}, True),
        ({"field": "account.region", "eq": "EMEA"}, {"account_id": "a1"}, True),
        ({"field": "account.region", "eq": "EMEA"}, {"account_id": "missing"}, False),
        ({"field": "stage.display_order", "gte": 3}, {"stage_id": "proposal"}, True),
        ({"all": [{"field": "amount", "gt": 1}, {"field": "is_closed", "eq": False}]}, {"amount": Decimal(5)}, True),
        ({"all": [{"field": "amount", "gt": 1}, {"field": "is_closed", "eq": True}]}, {"amount": Decimal(5)}, False),
        ({"any": [{"field": "amount", "gt": 10}, {"field": "name", "eq": "x"}, {"field": "is_won", "eq": True}]},
         {"name": "x"}, True),
        ({"not": {"field": "name", "eq": "x"}}, {"name": "x"}, False),
    ],
)
def test_operators(cond: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    pred = compile_condition(D, cond)
    c = ctx(accounts={(CONN, "a1"): account("a1", region="EMEA")})
    assert pred(deal(**fields), c) is expected


@pytest.mark.parametrize(
    ("prev", "now_value", "want", "expected"),
    [("discovery", "proposal", True, True), ("proposal", "proposal", True, False),
     ("proposal", "proposal", False, True), (None, "proposal", True, False)],
)
def test_changed_compares_with_previous_version(prev: str | None, now_value: str, want: bool, expected: bool) -> None:
    pred = compile_condition(D, {"field": "stage_id", "changed": want})
    previous = {} if prev is None else {(CONN, "deal", "d1"): deal(stage_id=prev)}
    assert pred(deal(stage_id=now_value), ctx(previous=previous)) is expected


def test_lead_fields() -> None:
    pred = compile_condition(ObjectType.LEAD, {"field": "email", "contains": "@ACME."})
    assert pred(lead(email="jo@acme.io"), ctx()) is True


@pytest.mark.parametrize(
    ("cond", "path", "message"),
    [
        ({"field": "amout", "gt": 1}, ("field",), "unknown field 'amout'"),
        ({"field": "amount", "greater": 1}, ("greater",), "unknown operator 'greater'"),
        ({"field": "amount", "gt": "lots"}, ("gt",), "expected a number"),
        ({"field": "close_date", "gt": "tomorrow"}, ("gt",), "expected a date"),
        ({"field": "amount", "between": [5]}, ("between",), "[low, high]"),
        ({"field": "amount", "days_since": {"gt": 3}}, ("days_since",), "date or timestamp"),
        ({"field": "last_activity_at", "days_since": 3}, ("days_since",), "one comparison"),
        ({"all": [{"field": "amount", "gt": 1}, {"field": "is_won", "eq": "yes"}]}, ("all", 1, "eq"), "true or false"),
        ({"field": "amount", "gt": 1, "lt": 5}, (), "exactly one operator"),
        ({"field": "stage.nope", "eq": 1}, ("field",), "unknown field 'nope'"),
        ({"all": []}, ("all",), "non-empty"),
    ],
)
def test_compile_errors_name_the_key(cond: dict[str, Any], path: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ConditionError) as err:
        compile_condition(D, cond)
    assert err.value.path == path
    assert message in err.value.message
