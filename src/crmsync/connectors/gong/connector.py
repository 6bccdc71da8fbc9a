"""GongConnector: users and recorded calls from Gong's API v2, as canonical ``Call``s.

Calls are pulled with ``POST /v2/calls/extensive`` (parties, CRM context, trackers, topics,
highlights, brief, outcome in one answer), paged by ``records.cursor``. Gong filters by a call's
*start*, not by a modification stamp, and keeps working on a call after it happened (transcription,
trackers and highlights arrive later; recordings are uploaded late), so an incremental pass starts
``lookback_hours`` (default 48) before the end of the previous pass and re-reads that window; the
store upserts calls by id, so a re-read call replaces its earlier version. A pass's cursor holds its
window and Gong's page cursor: a pass stopped mid-way resumes on the page it stopped at.

I/O only: no database, no sleeping policy beyond the transport's retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmsync.activity import Call, CallParty, CrmRef
from crmsync.connectors.base import FatalError, PushItem, PushResult, Quarantined
from crmsync.connectors.engagement import NativeShapes
from crmsync.connectors.gong.http import DEFAULT_BASE_URL, GongHttp
from crmsync.model import ModelError, parse_timestamp
from crmsync.settings import ConnectionSettings

OBJECTS = ("users", "calls")
CONTENT = {"trackers": True, "topics": True, "highlights": True, "brief": True, "callOutcome": True,
           "keyPoints": True}


@dataclass(slots=True)
class CallPage:
    calls: list[Call]
    cursor: dict[str, Any]
    quarantined: list[Quarantined] = field(default_factory=list)
    api_calls: int = 0
    done: bool = False


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GongConnector(NativeShapes):
    kind = "gong"

    def __init__(self, conn: ConnectionSettings, *, http: GongHttp | None = None) -> None:
        key, secret = conn.secret("access_key"), conn.secret("access_key_secret")
        if not key or not secret:
            raise FatalError(f"connection {conn.name}: credentials.access_key and access_key_secret are required")
        self.name = conn.name
        options = conn.options
        self.lookback = dt.timedelta(hours=float(options.get("lookback_hours", 48)))
        self.backfill_days = int(options.get("backfill_days", 365))
        verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
        self.http = http or GongHttp(conn.base_url or DEFAULT_BASE_URL, key, secret, verify=verify,
                                     timeout=float(options.get("timeout_s", 30)),
                                     max_wait_s=float(options.get("max_wait_s", 60)),
                                     calls_per_second=float(options.get("calls_per_second", 3)) or None)
        self.usage = self.http.usage

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        return self.http.request(method, path, params=params, body=body)

    def objects(self) -> Sequence[str]:
        return OBJECTS

    # --- users ------------------------------------------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        """Every Gong user (id, emailAddress, names, active, managerId)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = self.request("GET", "/v2/users", params={"cursor": cursor} if cursor else None) or {}
            out.extend(body.get("users") or [])
            cursor = (body.get("records") or {}).get("cursor")
            if not cursor:
                return out

    # --- calls ------------------------------------------------------------------------------------
    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[CallPage]:
        if object_name != "calls":
            raise FatalError(f"gong: pull supports 'calls' (users: GongConnector.users()), not {object_name!r}")
        state = dict(cursor or {})
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if state.get("window_from") and state.get("window_to"):  # a pass that stopped mid-way
            start = _stamp(state["window_from"])
            end = _stamp(state["window_to"])
            page_cursor = state.get("next")
        else:
            if since is not None:
                start = since
            elif state.get("through"):
                start = _stamp(state["through"]) - self.lookback
            else:
                start = now - dt.timedelta(days=self.backfill_days)
            end = until or now
            page_cursor = None
        window = {"window_from": _iso(start), "window_to": _iso(end)}
        body: dict[str, Any] = {
            "filter": {"fromDateTime": window["window_from"], "toDateTime": window["window_to"]},
            "contentSelector": {"context": "Basic", "exposedFields": {"parties": True, "content": CONTENT}},
        }
        while True:
            request = dict(body, cursor=page_cursor) if page_cursor else body
            answer = self.request("POST", "/v2/calls/extensive", body=request)
            calls: list[Call] = []
            bad: list[Quarantined] = []
            for raw in (answer or {}).get("calls") or []:
                try:
                    calls.append(self.to_call(raw))
                except (ModelError, KeyError, TypeError, ValueError) as exc:
                    meta = raw.get("metaData") if isinstance(raw, dict) else None
                    cid = str((meta or {}).get("id") or "")
                    reason = f"{exc.args[0]}: missing" if isinstance(exc, KeyError) else str(exc)[:200]
                    bad.append(Quarantined("call", cid, {"metaData": meta}, reason))
            page_cursor = ((answer or {}).get("records") or {}).get("cursor")
            if page_cursor:
                yield CallPage(calls, {**window, "next": page_cursor}, bad, api_calls=1)
                continue
            yield CallPage(calls, {"through": window["window_to"]}, bad, api_calls=1, done=True)
            return

    def to_call(self, raw: Mapping[str, Any]) -> Call:
        meta = raw["metaData"]
        started = parse_timestamp(meta.get("started") or meta.get("scheduled"), field_name="metaData.started")
        if started is None:
            raise ModelError("metaData.started: missing")
        parties = tuple(
            CallParty(email=(p.get("emailAddress") or "").strip().lower() or None, name=p.get("name"),
                      title=p.get("title"), affiliation=str(p.get("affiliation") or "Unknown"),
                      user_id=p.get("userId"))
            for p in raw.get("parties") or [])
        refs = tuple(CrmRef(str(ctx.get("system") or ""), str(obj.get("objectType") or ""), str(obj.get("objectId")))
                     for ctx in raw.get("context") or [] for obj in ctx.get("objects") or []
                     if obj.get("objectId"))
        content = raw.get("content") or {}
        trackers = {str(t["name"]): int(t.get("count") or 0) for t in content.get("trackers") or []}
        phrases = {str(t["name"]): tuple(str(p.get("phrase")) for p in t.get("phrases") or [] if p.get("phrase"))
                   for t in content.get("trackers") or [] if t.get("phrases")}
        topics = {str(t["name"]): int(t.get("duration") or 0) for t in content.get("topics") or []}
        highlights = {str(h.get("title") or ""): tuple(str(i.get("text")) for i in h.get("items") or [] if i.get("text"))
                      for h in content.get("highlights") or []}
        outcome = content.get("callOutcome") or {}
        return Call(connection=self.name, call_id=str(meta["id"]), started=started,
                    duration_s=int(meta.get("duration") or 0), title=meta.get("title"),
                    primary_user_id=meta.get("primaryUserId"), parties=parties, crm_refs=refs, trackers=trackers,
                    tracker_phrases=phrases, topics=topics, highlights=highlights, brief=content.get("brief"),
                    outcome=outcome.get("name") if isinstance(outcome, dict) else None)

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        if object_name == "users":
            return len(self.users())
        now = dt.datetime.now(dt.UTC)
        params = {"fromDateTime": _iso(since or now - dt.timedelta(days=self.backfill_days)),
                  "toDateTime": _iso(until or now)}
        body = self.request("GET", "/v2/calls", params=params)
        return int(((body or {}).get("records") or {}).get("totalRecords") or 0)

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        if object_name == "users":
            yield [str(u["id"]) for u in self.users()]
            return
        now = dt.datetime.now(dt.UTC)
        params: dict[str, Any] = {"fromDateTime": _iso(now - dt.timedelta(days=self.backfill_days)),
                                  "toDateTime": _iso(now)}
        while True:
            body = self.request("GET", "/v2/calls", params=params) or {}
            yield [str(c["id"]) for c in body.get("calls") or []]
            cursor = (body.get("records") or {}).get("cursor")
            if not cursor:
                return
            params = {**params, "cursor": cursor}

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return [PushResult(item.ref, False, error="gong: crmsync writes nothing to Gong") for item in items]

    def close(self) -> None:
        self.http.close()


def _stamp(value: Any) -> dt.datetime:
    parsed = parse_timestamp(value, field_name="cursor")
    if parsed is None:
        raise FatalError("gong: cursor holds no timestamp")
    return parsed
