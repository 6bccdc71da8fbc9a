from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from crmsync.model import Account, Deal, Lead, Owner, Stage
from crmsync.rules.context import RuleContext
from crmsync.rules.testing import STANDARD_PIPELINE

NOW = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)  # a Monday
CONN = "test"


def deal(**kw: Any) -> Deal:
    base: dict[str, Any] = {"connection": CONN, "source_object": "Opportunity", "source_id": "d1", "modified_at": NOW}
    base.update(kw)
    return Deal(**base)


def lead(**kw: Any) -> Lead:
    base: dict[str, Any] = {"connection": CONN, "source_object": "Lead", "source_id": "l1", "modified_at": NOW}
    base.update(kw)
    return Lead(**base)


def owner(oid: str, **kw: Any) -> Owner:
    return Owner(connection=CONN, source_object="User", source_id=oid, modified_at=NOW, **kw)


def stages() -> dict[tuple[str, str], Stage]:
    out = {}
    for s in STANDARD_PIPELINE:
        st = Stage(connection=CONN, source_object="Stage", source_id=s["source_id"], modified_at=NOW, name=s["name"],
                   pipeline_id="default", display_order=s["display_order"], probability=Decimal(s["probability"]),
                   is_closed=s.get("is_closed", False), is_won=s.get("is_won", False))
        out[(CONN, st.source_id)] = st
    return out


def account(aid: str, **kw: Any) -> Account:
    return Account(connection=CONN, source_object="Account", source_id=aid, modified_at=NOW, **kw)


def ctx(**kw: Any) -> RuleContext:
    kw.setdefault("stages", stages())
    return RuleContext(now=kw.pop("now", NOW), **kw)


@pytest.fixture
def now() -> dt.datetime:
    return NOW
