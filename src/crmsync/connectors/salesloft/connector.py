"""SalesloftConnector: people, cadences, cadence memberships, users and email activities.

Handed on in the engagement vocabulary shared with Outreach and Apollo: ``mailboxes`` (users, by
email), ``sequences`` (cadences), ``prospects`` (people, ``emails: [email_address]``),
``sequence_states`` (cadence memberships: ``prospectId``, ``sequenceId``, ``mailboxId``, ``state``,
``replyCount``), ``mailings`` (email activities).

Pulls are the cursor poller SalesLoft recommends instead of deep pages (a page above 100 costs up to
30 times more): ``updated_at[gte]=<floor>`` with ``sort_by=updated_at&sort_direction=ASC``, always
page 1, the floor moved to the newest stamp each page read; only a page full of one stamp asks for the
next page number of that stamp. The cursor rule is ``connectors.cursor`` (whole seconds here, 2 s
settle): versions read while their second was open are not remembered, and a pass that read open
seconds makes the next one start at their floor.

Pushes (``sequence_states``): ``create`` finds the person by email (creates it), looks up the
membership of that person and cadence and answers it if there is one (SalesLoft keeps one record per
person and cadence), else ``POST /v2/cadence_memberships`` with the routed owner as ``user_id``;
``update`` ``finish`` is ``DELETE /v2/cadence_memberships/{id}`` (off the cadence).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from crmsync.connectors.base import (
    AuthError,
    FatalError,
    PushItem,
    PushResult,
    Quarantined,
    RateLimitedError,
    RetriableError,
    Usage,
)
from crmsync.connectors.cursor import StampRule, lower, next_start, settle_seconds
from crmsync.connectors.engagement import EngagementPage, EngagementRecord, NativeShapes, push_sequence_states
from crmsync.connectors.exchange import send
from crmsync.connectors.json_http import error_text, json_object, rate_limited, refuse, seconds, with_retries
from crmsync.connectors.wire import encode_body
from crmsync.settings import ConnectionSettings

DEFAULT_BASE_URL = "https://api.salesloft.com"
PATHS = {"mailboxes": "/v2/users", "sequences": "/v2/cadences", "prospects": "/v2/people",
         "sequence_states": "/v2/cadence_memberships", "mailings": "/v2/activities/emails"}
PER_PAGE = 100


class NotFound(FatalError):
    pass


class SalesloftHttp:
    def __init__(self, base_url: str, token: str, *, verify: Any = True, timeout: float = 30.0,
                 max_attempts: int = 5, max_wait_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, verify=verify,
                                   headers={"authorization": f"Bearer {token}", "accept": "application/json",
                                            "user-agent": "crmsync/0.1"})
        self.usage = Usage()
        self.max_attempts, self.max_wait_s, self._sleep = max_attempts, max_wait_s, sleep

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], float]:
        # creating a person is not retried after a 5xx or a timeout (it may have happened): the caller
        # looks the person up again; adding to a cadence is idempotent (one membership per person and cadence)
        safe = not (method == "POST" and path == "/v2/people")
        return with_retries(lambda: self._once(method, path, params, body), attempts=self.max_attempts,
                            max_wait_s=self.max_wait_s, sleep=self._sleep,
                            retry_on=RetriableError if safe else RateLimitedError)

    def _once(self, method: str, path: str, params: Mapping[str, Any] | None,
              body: Mapping[str, Any] | None) -> tuple[dict[str, Any], float]:
        where = f"{method} {path.rsplit('/', 1)[0] + '/{id}' if path.rsplit('/', 1)[-1].isdigit() else path}"
        content = encode_body(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        response, read_at = send(self.client, method, path, where=where, params=params, content=content,
                                 headers=headers)
        h = response.headers
        self.usage.calls += 1
        self.usage.observed_at = dt.datetime.now(dt.UTC)
        self.usage.note_server_date(h.get("date"))
        left = h.get("x-ratelimit-remaining-minute")
        if left is not None and left.isdigit():
            self.usage.burst_remaining = int(left)
        if response.status_code == 429:
            rate_limited(where, seconds(h.get("retry-after")), max_wait_s=self.max_wait_s)
        refuse(where, response, detail=lambda r: error_text(r, "errors", "error"),
               auth_hint="(the token was refused)", named={404: NotFound})
        return json_object(where, response, member="data"), read_at


def _epoch(text: Any) -> int:
    parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a timezone")
    return int(parsed.timestamp())


def _safe_epoch(raw: Mapping[str, Any]) -> int | None:
    try:
        return _epoch(raw["updated_at"])
    except (KeyError, TypeError, ValueError):
        return None


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesloftConnector(NativeShapes):
    kind = "salesloft"
    push_batch_size = 20

    def __init__(self, conn: ConnectionSettings, *, http: SalesloftHttp | None = None) -> None:
        token = conn.secret("access_token") or conn.secret("api_key")
        if http is None and not token:
            raise AuthError(f"connection {conn.name}: credentials.access_token (or api_key) is required")
        self.name = conn.name
        self.http = http or SalesloftHttp(conn.base_url or DEFAULT_BASE_URL, str(token),
                                          verify=str(conn.ca_bundle) if conn.ca_bundle else True,
                                          max_wait_s=float(conn.options.get("max_wait_s", 60)))
        self.per_page = int(conn.options.get("per_page", PER_PAGE))
        self.stamp_rule = StampRule(unit_s=1.0, settle_s=settle_seconds(conn.options, 2.0))

    @property
    def usage(self) -> Usage:
        return self.http.usage

    def objects(self) -> Sequence[str]:
        return tuple(PATHS)

    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[EngagementPage]:
        if object_name not in PATHS:
            raise FatalError(f"salesloft: unknown object {object_name!r} (expected one of {', '.join(PATHS)})")
        state = dict(cursor or {})
        seen = {str(k): int(v) for k, v in (state.get("seen") or {}).items()}
        carried = state.get("open_floor")
        floor = next_start(state.get("watermark"), carried) if not state.get("in_pass") else state.get("position")
        open_floor = state.get("pass_open_floor") if state.get("in_pass") else None
        tie_page = int(state.get("tie_page") or 1) if state.get("in_pass") else 1
        in_pass: dict[str, int] = {}  # id -> stamp emitted by this pass (loop control on open stamps)
        while True:
            params: dict[str, Any] = {"sort_by": "updated_at", "sort_direction": "ASC", "per_page": self.per_page,
                                      "page": tie_page}
            if floor is not None:
                params["updated_at[gte]"] = _iso(floor)
            doc, read_at = self.http.request("GET", PATHS[object_name], params=params)
            rows: list[EngagementRecord] = []
            bad: list[Quarantined] = []
            newest: int | None = None
            raw_rows = doc.get("data") or []
            for raw in raw_rows:
                try:
                    at = _epoch(raw["updated_at"])
                except (KeyError, TypeError, ValueError) as exc:
                    bad.append(Quarantined(object_name, str(raw.get("id")), dict(raw), f"updated_at: {exc}"))
                    continue
                newest = at if newest is None else max(newest, at)
                rid = str(raw["id"])
                if seen.get(rid) == at or in_pass.get(rid) == at:
                    continue
                in_pass[rid] = at
                if self.stamp_rule.remember(at, read_at):
                    seen[rid] = at
                rows.append(self._record(object_name, raw, at))
            open_floor = lower(open_floor, self.stamp_rule.reached_open(newest, read_at))
            done = len(raw_rows) < self.per_page
            if not done and newest is not None and (floor is None or newest > floor):
                # keyset: the next page starts at the newest stamp read, past whole pages of it
                at_newest = sum(1 for r in raw_rows if str(r.get("updated_at")) and _safe_epoch(r) == newest)
                floor, tie_page = newest, at_newest // self.per_page + 1
            elif not done:
                tie_page += 1  # a full page of one stamp: the next page of that stamp
            if done:
                watermark = newest if newest is not None and (floor is None or newest > floor) else floor
                keep = lower(next_start(watermark, open_floor), carried)
                cur: dict[str, Any] = {"watermark": watermark, "open_floor": open_floor, "in_pass": False,
                                       "seen": {k: v for k, v in seen.items() if keep is None or v >= keep}}
            else:
                cur = {**state, "in_pass": True, "position": floor, "tie_page": tie_page,
                       "pass_open_floor": lower(open_floor, carried), "seen": seen}
            yield EngagementPage(rows, cur, bad, api_calls=1, done=done)
            if done:
                return

    def _record(self, object_name: str, raw: Mapping[str, Any], at: int) -> EngagementRecord:
        data = dict(raw)
        if object_name == "prospects":
            data["emails"] = [raw["email_address"]] if raw.get("email_address") else []
        elif object_name == "sequence_states":
            counts = raw.get("counts") or {}
            data.update({"prospectId": str((raw.get("person") or {}).get("id")),
                         "sequenceId": str((raw.get("cadence") or {}).get("id")),
                         "mailboxId": str((raw.get("user") or {}).get("id")),
                         "state": raw.get("current_state") if raw.get("currently_on_cadence") else "finished",
                         "replyCount": int(counts.get("replies") or 0)})
        elif object_name == "mailings":
            data.update({"prospectId": str((raw.get("person") or {}).get("id")),
                         "sequenceId": str((raw.get("cadence") or {}).get("id"))})
        return EngagementRecord(self.name, object_name, str(raw["id"]), dt.datetime.fromtimestamp(at, dt.UTC), data)

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        return sum(len(p.records) for p in self.pull(object_name, None))

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        for page in self.pull(object_name, None):
            yield [r.source_id for r in page.records]

    # --- writes -----------------------------------------------------------------------------------
    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        return push_sequence_states("salesloft", items, self._enrol, self._finish)

    def _enrol(self, item: PushItem) -> PushResult:
        f = item.fields
        email = str(f.get("email") or "").strip()
        cadence, user = str(f.get("sequence_id") or ""), str(f.get("mailbox_id") or "")
        if not email or not cadence.isdigit() or not user.isdigit():
            return PushResult(item.ref, False, error="enrolment needs email, sequence_id and mailbox_id")
        found = self._person_by_email(email)
        fresh = found is None
        if found is not None:
            person = found
        else:
            body = {"email_address": email, **{k: f.get(src) for k, src in (("first_name", "first_name"),
                    ("last_name", "last_name"), ("title", "title")) if f.get(src) is not None}}
            try:
                person = self.http.request("POST", "/v2/people", body=body)[0]["data"]["id"]
            except FatalError as exc:
                if exc.status != 422:
                    raise
                again = self._person_by_email(email)  # "has already been taken": an earlier try created it
                if again is None:
                    raise
                person, fresh = again, False
        if not fresh:
            doc, _ = self.http.request("GET", "/v2/cadence_memberships",
                                       params={"person_id": person, "cadence_id": cadence, "per_page": 5})
            if doc["data"]:
                return PushResult(item.ref, True, source_id=str(doc["data"][0]["id"]), created=False)
        doc, _ = self.http.request("POST", "/v2/cadence_memberships",
                                   params={"person_id": person, "cadence_id": cadence, "user_id": user})
        return PushResult(item.ref, True, source_id=str(doc["data"]["id"]), created=True)

    def _person_by_email(self, email: str) -> Any:
        doc, _ = self.http.request("GET", "/v2/people", params={"email_addresses[]": email, "per_page": 5})
        people = [p for p in doc["data"] if str(p.get("email_address") or "").lower() == email.lower()]
        return people[0]["id"] if people else None

    def _finish(self, item: PushItem) -> PushResult:
        if str(item.fields.get("action")) != "finish" or not str(item.source_id or "").isdigit():
            return PushResult(item.ref, False, error=f"salesloft: cannot {item.fields.get('action')!r} "
                                                     f"membership {item.source_id!r}")
        try:
            self.http.request("DELETE", f"/v2/cadence_memberships/{item.source_id}")
        except NotFound:
            return PushResult(item.ref, False, error=f"cadence membership {item.source_id} does not exist")
        return PushResult(item.ref, True, source_id=item.source_id)

    def close(self) -> None:
        self.http.close()
