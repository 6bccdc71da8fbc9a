"""The evaluation context: everything a rule may read besides the record itself."""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from crmsync.model import Account, Owner, Record, Stage, utc
from crmsync.rules.state import InMemoryRoutingState, RoutingState


@dataclass(frozen=True, slots=True)
class Subscription:
    """A billing subscription linked to a deal (from the billing system)."""

    subscription_id: str
    end_date: dt.date | None
    connection: str
    deal_id: str


@dataclass(slots=True)
class RuleContext:
    """``now`` is an aware UTC instant; rules never read the wall clock themselves."""

    now: dt.datetime
    owners: Mapping[tuple[str, str], Owner] = field(default_factory=dict)
    stages: Mapping[tuple[str, str], Stage] = field(default_factory=dict)
    accounts: Mapping[tuple[str, str], Account] = field(default_factory=dict)
    previous: Mapping[tuple[str, str, str], Record] = field(default_factory=dict)
    routing_state: RoutingState = field(default_factory=InMemoryRoutingState)
    # open records per (connection, owner id), for fewest-open routing; updated as we assign
    open_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    subscriptions: Mapping[tuple[str, str], Subscription] = field(default_factory=dict)
    predictive: Mapping[str, Any] = field(default_factory=dict)  # model name -> NaiveBayesModel
    known_keys: Container[str] = field(default_factory=frozenset)  # idempotency keys already decided
    # call and engagement signals per (connection, "deal" | "lead", source id): crmsync.rules.signals
    signals: Mapping[tuple[str, str, str], Any] = field(default_factory=dict)
    # customer health inputs per (connection, won deal id): crmsync.rules.health.CustomerFacts
    customers: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    today: dt.date = field(init=False)
    _cache: dict[Any, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.now = utc(self.now, field_name="ctx.now")
        self.today = self.now.date()

    def related(self, kind: str, record: Any) -> Any:
        if kind == "account":
            account_id = getattr(record, "account_id", None) or getattr(record, "converted_account_id", None)
            return self.accounts.get((record.connection, account_id)) if account_id else None
        if kind == "stage":
            return self.stages.get((record.connection, record.stage_id)) if record.stage_id else None
        if kind == "owner":
            return self.owners.get((record.connection, record.owner_id)) if record.owner_id else None
        if kind == "signals":
            return self.signals.get((record.connection, record.object_type.value, record.source_id))
        return None

    def previous_of(self, record: Any) -> Any:
        if not self.previous:
            return None
        return self.previous.get((record.connection, record.object_type.value, record.source_id))

    def owner(self, connection: str, owner_id: str | None) -> Owner | None:
        return self.owners.get((connection, owner_id)) if owner_id else None

    def stage(self, connection: str, stage_id: str | None) -> Stage | None:
        return self.stages.get((connection, stage_id)) if stage_id else None

    def cached(self, key: Any, build: Any) -> Any:
        """Per-context memo for values derived from the context (e.g. stage name -> ids)."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = build()
            return value
