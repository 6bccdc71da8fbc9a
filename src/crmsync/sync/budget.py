"""A per-connection API budget: a share of the CRM's daily quota, with calls kept for pushes.

Two ceilings, whichever comes first stops a pull cleanly (the engine has already checkpointed):
- crmsync's own calls today on this connection may not pass ``daily_share`` x the daily limit
  the CRM reports (``Sforce-Limit-Info``, ``X-HubSpot-RateLimit-Daily``, Pipedrive's daily
  tokens) or ``options.daily_limit`` when the CRM reports none;
- the org-wide remaining quota may not fall under ``reserve_for_push``: business writes keep it.
The day's count lives in the store (``kv_state``), so it survives restarts and is shared by workers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from crmsync.connectors.base import BudgetExhausted, Usage
from crmsync.settings import ConnectionSettings
from crmsync.store import Store

NAMESPACE = "api_budget"


class ApiBudget:
    def __init__(self, store: Store, conn: ConnectionSettings, *, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.conn = conn
        self.clock = clock
        self.daily_limit: int | None = _int_or_none(conn.options.get("daily_limit"))
        self.org_remaining: int | None = None

    def _key(self) -> str:
        return f"{self.conn.name}:{self.clock().date().isoformat()}"

    def used_today(self) -> int:
        value = self.store.get_state(NAMESPACE, self._key())
        return int(value.get("calls", 0)) if isinstance(value, dict) else 0

    def allowance(self) -> int | None:
        if self.daily_limit is None:
            return None
        return int(self.daily_limit * self.conn.budget.daily_share)

    def charge(self, tx: Any, calls: int) -> None:
        if calls <= 0:
            return
        key = self._key()
        current = tx.lock_state(NAMESPACE, key, {"calls": 0, "limit": self.daily_limit})  # see lock_state
        used = int(current.get("calls", 0)) if isinstance(current, dict) else 0
        tx.set_state(NAMESPACE, key, {"calls": used + calls, "limit": self.daily_limit})

    def observe(self, usage: Usage) -> None:
        if usage.limit:
            self.daily_limit = usage.limit
        if usage.remaining is not None:
            self.org_remaining = usage.remaining

    def check(self) -> None:
        allowance = self.allowance()
        used = self.used_today()
        if allowance is not None and used >= allowance:
            raise BudgetExhausted(
                f"{self.conn.name}: daily API budget spent ({used}/{allowance} calls, "
                f"{self.conn.budget.daily_share:.0%} of {self.daily_limit}); resuming tomorrow or when raised")
        if self.org_remaining is not None and self.org_remaining <= self.conn.budget.reserve_for_push:
            raise BudgetExhausted(
                f"{self.conn.name}: only {self.org_remaining} API calls left today, kept for pushes "
                f"(reserve_for_push={self.conn.budget.reserve_for_push})")

    def snapshot(self) -> dict[str, Any]:
        return {"used_today": self.used_today(), "allowance": self.allowance(),
                "daily_limit": self.daily_limit, "org_remaining": self.org_remaining}


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
