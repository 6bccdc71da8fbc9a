"""The two-process full re-evaluation gives exactly the sequential result (same decisions, same
order, same routing state), falls back when its worker fails, and is not used for small inputs."""

from __future__ import annotations

import datetime as dt
import gc
import importlib.util
import os
import random
from pathlib import Path
from typing import Any

import pytest

from crmsync.model import Deal, Lead, ObjectType
from crmsync.rules import parallel
from crmsync.rules.context import RuleContext
from crmsync.rules.engine import evaluate, paused_gc
from crmsync.rules.loader import RuleSet, load_rules
from crmsync.rules.predictive import NaiveBayesModel
from crmsync.rules.state import InMemoryRoutingState

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "rules"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_rules", ROOT / "bench" / "bench_rules.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def population() -> tuple[Any, RuleSet, list[Any], dict[tuple[str, str, str], Any]]:
    """20,000 deals (some deleted, some already scored, some without owner) and 5,000 leads, and
    previous versions for a share of them (stage moves, status changes)."""
    b = _bench()
    rs = load_rules(RULES)
    deals = b.build_deals(20_000)
    rng = random.Random(5)
    for i, d in enumerate(deals):
        if i % 13 == 0:
            d.extra["crmsync_score"] = str(rng.randint(0, 90))
        if i % 29 == 0:
            d.deleted = True
        if i % 37 == 0:
            d.owner_id = "999"
    records: list[Any] = []
    for i, d in enumerate(deals):
        records.append(d)
        if i % 4 == 0:
            records.append(Lead(
                connection=b.CONN, source_object="Lead", source_id=f"l{i}", modified_at=b.NOW,
                created_at=b.NOW - dt.timedelta(days=rng.randint(0, 90)), last_name=f"L{i}",
                email=rng.choice([None, f"x{i}@gmail.com", f"p@company{rng.randint(1, 30000)}.example"]),
                company=rng.choice([None, f"Company {rng.randint(1, 30000)} Inc"]),
                title=rng.choice([None, "CEO", "Engineer"]), status=rng.choice([None, "New", "Working", "Qualified"]),
                source=rng.choice([None, "Web", "Referral"]), region=rng.choice([None, "NA", "EMEA", "APAC"]),
                employees=rng.choice([None, 150, 9000]), owner_id=rng.choice([None, "3", "queue"]),
                last_activity_at=rng.choice([None, b.NOW - dt.timedelta(days=rng.randint(0, 60))]),
            ))
    previous: dict[tuple[str, str, str], Any] = {}
    for i in range(0, len(deals), 9):
        old = deals[i]
        prev = Deal(**{**old.as_dict(), "extra": dict(old.extra)})
        prev.stage_id = b.STAGES[rng.randint(0, 6)][0]
        previous[(old.connection, "deal", old.source_id)] = prev
    return b, rs, records, previous


def _ctx(b: Any, **kw: Any) -> RuleContext:
    owners, stages, accounts = b.build_context_parts()
    return RuleContext(now=b.NOW, owners=owners, stages=stages, accounts=accounts,
                       routing_state=InMemoryRoutingState(), **kw)


def _run(b: Any, rs: RuleSet, records: list[Any], workers: int, **kw: Any) -> tuple[list[Any], Any, Any]:
    ctx = _ctx(b, **kw)
    decisions = evaluate(rs, records, ctx, workers=workers)
    return [d.as_row() for d in decisions], ctx.routing_state.data, ctx.open_counts  # type: ignore[attr-defined]


def test_split_gives_the_sequential_result_in_the_same_order(population: Any) -> None:
    b, rs, records, previous = population
    model = NaiveBayesModel.train(ObjectType.DEAL, rs.scoring[0].spec.predictive.fields,
                                  [r for r in records[:8000] if isinstance(r, Deal)], _ctx(b))
    kw = {"previous": previous, "predictive": {"deal_health": model}}
    sequential = _run(b, rs, records, 1, **kw)
    split = _run(b, rs, records, 2, **kw)
    kinds = {row["rule_kind"] for row in sequential[0]}
    assert kinds == {"scoring", "routing", "hygiene", "handoff", "renewal"}
    assert len(sequential[0]) > 50_000
    assert split[0] == sequential[0]
    assert split[1] == sequential[1]  # routing state advanced identically (round-robin credits, assignments)
    assert split[2] == sequential[2]


def test_split_with_known_keys_skips_the_same_decisions(population: Any) -> None:
    b, rs, records, _ = population
    records = records[:8000]
    first = _run(b, rs, records, 1)[0]
    known = {row["idempotency_key"] for i, row in enumerate(first) if i % 3}
    sequential = _run(b, rs, records, 1, known_keys=known)
    split = _run(b, rs, records, 2, known_keys=known)
    assert 0 < len(split[0]) < len(first)
    assert split == sequential


def test_a_failed_worker_is_replaced_by_evaluating_here(population: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rs, records, _ = population
    sequential = _run(b, rs, records[:4000], 1)

    def crash(plan: Any, recs: Any, fd: int) -> int:
        return 3  # the worker exits without sending anything

    monkeypatch.setattr(parallel, "_work", crash)
    assert _run(b, rs, records[:4000], 2) == sequential


def test_no_fork_possible_means_the_sequential_loop(population: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rs, records, _ = population
    sequential = _run(b, rs, records[:3000], 1)

    def refuse() -> int:
        raise BlockingIOError("fork: resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", refuse)
    assert _run(b, rs, records[:3000], 2) == sequential


def test_small_inputs_stay_in_this_process(population: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    b, rs, records, _ = population

    def no_fork() -> int:
        raise AssertionError("forked for a small input")

    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    assert not parallel.should_split(5_000, None)
    assert parallel.should_split(10**6, None)
    assert not parallel.should_split(10**6, 1)
    assert parallel.should_split(10, 2)
    monkeypatch.setattr(os, "fork", no_fork)
    ctx = _ctx(b)
    assert evaluate(rs, records[:5_000], ctx)  # automatic: sequential, no fork


def test_the_split_is_opt_in_and_auto_needs_an_idle_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(parallel.WORKERS_ENV, raising=False)
    assert not parallel.should_split(10**6, None)  # default: sequential
    monkeypatch.setenv(parallel.WORKERS_ENV, "1")
    assert not parallel.should_split(10**6, None)
    monkeypatch.setenv(parallel.WORKERS_ENV, "auto")
    monkeypatch.setattr(parallel, "available_cores", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.6, 1.0, 1.0))  # this process alone
    assert parallel.should_split(10**6, None)
    assert not parallel.should_split(parallel.PARALLEL_MIN_RECORDS - 1, None)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))  # someone else busy too
    assert not parallel.should_split(10**6, None)
    assert parallel.should_split(10**6, 2)  # asked for explicitly
    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not parallel.should_split(10**6, None)


def test_collector_state_is_restored_and_pauses_nest() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with paused_gc(False):
        assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()
