"""``crmsync check``: is this installation ready to sync? (the store, then each connection)

- the store: reachable, and its schema at this crmsync's migration head;
- each connection: logs in and makes one cheap authenticated call (Salesforce a one-row SOQL on
  User, HubSpot one owner, Pipedrive ``/v1/users/me``, Meteroid one product), then reports the
  daily quota left as the CRM stated it (calls; Pipedrive counts tokens) and the clock skew
  between the server's ``Date`` header and this machine (a skew past ``MAX_SKEW_S`` fails: OAuth
  tokens, webhook signatures and the cursors' lookback windows all assume clocks agree).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmsync.connectors.base import ConnectorError
from crmsync.settings import ConnectionSettings, Settings

MAX_SKEW_S = 300.0
QUOTA_UNIT = {"salesforce": "calls", "hubspot": "calls", "pipedrive": "tokens", "outreach": "calls",
              "apollo": "calls", "salesloft": "cost"}  # Meteroid states none


@dataclass(slots=True)
class CheckResult:
    check: str  # "store" | "connection"
    target: str  # the store's dialect or the connection name
    ok: bool
    detail: str
    kind: str | None = None
    seconds: float | None = None
    quota_remaining: int | None = None
    quota_limit: int | None = None
    quota_unit: str | None = None
    clock_skew_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "target": self.target, "ok": self.ok, "detail": self.detail,
                "kind": self.kind, "seconds": self.seconds, "quota_remaining": self.quota_remaining,
                "quota_limit": self.quota_limit, "quota_unit": self.quota_unit,
                "clock_skew_s": self.clock_skew_s, **self.extra}


def check_store(store: Any) -> CheckResult:
    problem = store.schema_problem()
    if problem is not None:
        return CheckResult("store", store.dialect, False, problem)
    return CheckResult("store", store.dialect, True, f"reachable, schema at {store.current_revision()}")


def _cheap_call(kind: str, connector: Any) -> Callable[[], Any]:
    if kind == "salesforce":
        return lambda: connector.query("SELECT Id FROM User LIMIT 1", include_deleted=False)
    if kind == "hubspot":
        api = connector.crm.owners.owners_api
        return lambda: connector.call("owners", api.get_page, limit=1)
    if kind == "pipedrive":
        return lambda: connector.call("GET", "/v1/users/me")
    if kind == "meteroid":
        return lambda: next(iter(connector.iter_pages("products")), [])
    if kind == "gong":
        return lambda: connector.request("GET", "/v2/users")
    if kind == "outreach":
        return lambda: connector.http.request("GET", "/api/v2/users", params={"page[size]": 1, "count": "false"})
    if kind == "apollo":
        return lambda: connector.http.request("GET", "/api/v1/email_accounts")
    if kind == "salesloft":
        return lambda: connector.http.request("GET", "/v2/users", params={"per_page": 1})
    raise ValueError(f"no check for connection kind {kind!r}")


def check_connection(conn: ConnectionSettings) -> CheckResult:
    from crmsync.connectors import build_connector

    unit = QUOTA_UNIT.get(conn.kind)
    started = time.monotonic()
    connector: Any = None
    try:
        connector = build_connector(conn)  # Salesforce logs in here
        _cheap_call(conn.kind, connector)()
    except (ConnectorError, OSError, ValueError) as exc:
        return CheckResult("connection", conn.name, False, f"{type(exc).__name__}: {exc}", kind=conn.kind,
                           seconds=round(time.monotonic() - started, 3), quota_unit=unit)
    finally:
        if connector is not None:
            connector.close()
    seconds = round(time.monotonic() - started, 3)
    usage = connector.usage
    skew = usage.clock_skew_s
    ok, detail = True, "logged in, one call answered"
    if skew is not None and abs(skew) > MAX_SKEW_S:
        ok, detail = False, f"clock skew {skew:+.0f}s against the server (more than {MAX_SKEW_S:.0f}s)"
    if usage.remaining is not None and usage.remaining <= 0:
        ok, detail = False, f"no daily quota left ({usage.remaining} of {usage.limit} {unit})"
    return CheckResult("connection", conn.name, ok, detail, kind=conn.kind, seconds=seconds,
                       quota_remaining=usage.remaining, quota_limit=usage.limit, quota_unit=unit,
                       clock_skew_s=skew)


def run_checks(settings: Settings, store: Any, connections: Sequence[str] | None = None) -> list[CheckResult]:
    results = [check_store(store)]
    wanted = set(connections) if connections else None
    for conn in settings.connections:
        if wanted is not None and conn.name not in wanted:
            continue
        if wanted is None and not conn.enabled:
            continue
        results.append(check_connection(conn))
    return results
