"""GongSimulator: Gong's public API v2 (``/v2/users``, ``/v2/calls``, ``/v2/calls/extensive``).

What the real service does and this one copies (sources in docs/api-facts.md):

* Basic auth: ``Authorization: Basic base64(accessKey:accessKeySecret)``; anything else is 401
  (``/v2/users`` answers 403 "Access denied", as its spec says).
* 3 calls per second and 10,000 per day per company (the default knobs); over either, 429 with
  ``Retry-After`` in seconds.
* Lists are paged by an opaque ``records.cursor``; a page carries ``records`` =
  ``{totalRecords, currentPageSize, currentPageNumber, cursor?}``; the cursor is present only when
  more records follow, and the request must be repeated with every other input unchanged (a cursor
  sent with other filters is a 400 here).
* ``fromDateTime`` / ``toDateTime`` filter on the call's start, closed below and open above; a
  window holding no call is a **404** ("No calls found corresponding to the provided filters"),
  not an empty list; a malformed date is 400. Errors are ``{"requestId", "errors": [...]}``.
* ``/v2/calls/extensive`` returns ``metaData`` always and ``context`` / ``parties`` / ``content``
  (each content part separately: trackers, topics, highlights, brief, keyPoints, callOutcome,
  structure, pointsOfInterest, outline) only when the ``contentSelector`` asks for it. Context
  objects name the Salesforce Opportunity and Account ids of the call (Gong's CRM integration).

The user handle adds, edits and deletes calls (``create("calls", ...)``) the way recordings arrive
in Gong; ``truth("calls")`` / ``truth("users")`` is what Gong holds.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import itertools
import random
import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import Knobs, Simulator, SimulatorHooks, json_response
from crmsync.sandbox.gong.calls import GongCall, GongData, build_calls, iso, make_call, user_id
from crmsync.sandbox.salesforce.ids import make_id as sf_id
from crmsync.sandbox.world import World

DEFAULT_ACCESS_KEY = "GONGSANDBOXKEY01"
DEFAULT_ACCESS_SECRET = "gong-sandbox-secret-0123456789"  # noqa: S105 - the simulator's fixture credential
PAGE_SIZE = 100
CONTENT_PARTS = ("structure", "topics", "trackers", "pointsOfInterest", "brief", "outline", "highlights",
                 "callOutcome", "keyPoints")


def gong_knobs() -> Knobs:
    """Gong's documented default limits: 3 calls per second, 10,000 per day."""
    return Knobs(burst_limit=3, burst_window_s=1.0, daily_limit=10_000)


def _request_id() -> str:
    return uuid.uuid4().hex[:20]


def error(status: int, *messages: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"requestId": _request_id(), "errors": list(messages)}, status, headers)


class BadRequest(ValueError):
    pass


class GongHooks(SimulatorHooks):
    name = "gong"

    def __init__(self, key: str, secret: str) -> None:
        self.expected = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        self._path = ""

    def route_of(self, method: str, path: str) -> str:
        return f"{method} " + re.sub(r"/\d+(?=/|$)", "/{id}", path)

    def authenticate(self, request: Request) -> str | None:
        self._path = request.url.path
        header = request.headers.get("authorization", "")
        if header != self.expected:
            try:  # tolerate padding/spacing differences in a well-formed header, nothing else
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "basic" or base64.b64decode(token, validate=True) != \
                        base64.b64decode(self.expected.split(" ", 1)[1]):
                    return None
            except (binascii.Error, ValueError):
                return None
        return hashlib.sha256(header.encode()).hexdigest()[:8]

    def unauthorized(self) -> Response:
        if self._path.startswith("/v2/users"):
            return error(403, "Access denied")
        return error(401, "Access denied")

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return error(429, f"API request limit exceeded ({which})", headers={"Retry-After": str(max(1, int(retry_after + 0.999)))})

    def server_error(self, status: int) -> Response:
        return error(status, "Failed to complete the operation due to an unexpected error")


class GongSimulator(Simulator):
    name = "gong"

    def __init__(self, world: World, knobs: Knobs | None = None, *, access_key: str = DEFAULT_ACCESS_KEY,
                 access_secret: str = DEFAULT_ACCESS_SECRET, page_size: int = PAGE_SIZE) -> None:
        super().__init__(knobs or gong_knobs())
        self.world = world
        self.access_key = access_key
        self.access_secret = access_secret
        self.hooks = GongHooks(access_key, access_secret)
        self.page_size = page_size
        data: GongData = build_calls(world)
        self.users = data.users
        self.planted = data.planted
        self._calls: dict[str, GongCall] = {c.id: c for c in data.calls}
        self._order: list[str] | None = None
        self._numbers = itertools.count(len(data.calls) + 1)
        self._rng = random.Random(f"gong-handle:{world.seed}")

    # --- data ----------------------------------------------------------------------------------
    def ordered(self) -> list[GongCall]:
        if self._order is None:
            self._order = sorted(self._calls, key=lambda cid: (self._calls[cid].started, int(cid)))
        return [self._calls[cid] for cid in self._order]

    def context_of(self, call: GongCall, extended: bool) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        if call.deal_id is not None:
            deal = self.world.deals[call.deal_id - 1]
            fields = [{"name": "Name", "value": deal.name}, {"name": "Amount", "value": float(deal.amount)}] \
                if extended else []
            objects.append({"objectType": "Opportunity", "objectId": sf_id("006", call.deal_id), "fields": fields,
                            "timing": "Now"})
        if call.account_id is not None:
            account = self.world.accounts[call.account_id - 1]
            fields = [{"name": "Name", "value": account.name}, {"name": "Website", "value": account.domain}] \
                if extended else []
            objects.append({"objectType": "Account", "objectId": sf_id("001", call.account_id), "fields": fields,
                            "timing": "Now"})
        return [{"system": "Salesforce", "objects": objects}] if objects else []

    # --- the user handle -------------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        """A new recording: ``started`` (ISO), ``host_email``, ``attendees`` (emails), optional
        ``deal_id`` / ``account_id`` (world numbers), ``competitor``, ``pricing``, ``next_steps``."""
        if object_name != "calls":
            raise KeyError(object_name)
        with self.lock:
            host = next((o for o in self.world.owners if o.email == fields["host_email"]), None)
            if host is None:
                raise ValueError(f"no Gong user with email {fields['host_email']!r}")
            by_email = {c.email: c for c in self.world.contacts}
            attendees = [by_email[e] for e in fields.get("attendees", []) if e in by_email]
            started = dt.datetime.fromisoformat(str(fields["started"]).replace("Z", "+00:00")).astimezone(dt.UTC)
            call = make_call(next(self._numbers), fields.get("deal_id"), fields.get("account_id"), started, host,
                             attendees, str(fields.get("title") or "Call"), self._rng,
                             competitor=bool(fields.get("competitor")), pricing=bool(fields.get("pricing")),
                             next_steps=bool(fields.get("next_steps")))
            self._calls[call.id] = call
            self._order = None
            return call.id

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        """Change a call's metadata (``title``, ``duration``...) or its ``content`` parts."""
        if object_name != "calls":
            raise KeyError(object_name)
        with self.lock:
            call = self._calls[record_id]
            for key, value in fields.items():
                if key in CONTENT_PARTS:
                    call.content[key] = value
                elif key in call.meta and key != "id":
                    call.meta[key] = value
                else:
                    raise ValueError(f"unknown call field {key!r}")

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        if object_name != "calls":
            raise KeyError(object_name)
        with self.lock:
            del self._calls[record_id]
            self._order = None

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            if object_name == "users":
                return [dict(u) for u in self.users]
            if object_name == "calls":
                return [{"metaData": dict(c.meta), "parties": [dict(p) for p in c.parties],
                         "content": dict(c.content), "deal_id": c.deal_id} for c in self.ordered()]
        raise KeyError(object_name)

    # --- HTTP --------------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        return build_routes(self)


def _parse_time(value: Any, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name}: expected an ISO-8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: '{value[:40]}' is not an ISO-8601 date-time") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name}: a time zone is required (e.g. 2018-02-18T08:00:00Z)")
    return parsed.astimezone(dt.UTC)


def _encode_cursor(offset: int, fingerprint: str) -> str:
    raw = orjson.dumps({"o": offset, "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, fingerprint: str) -> int:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, seen = int(data["o"]), str(data["f"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest("cursor: invalid cursor") from None
    if seen != fingerprint:
        raise BadRequest("cursor: the request must repeat the inputs of the call that returned the cursor")
    return offset


def _records(total: int, offset: int, size: int, page_size: int, fingerprint: str) -> dict[str, Any]:
    records: dict[str, Any] = {"totalRecords": total, "currentPageSize": size,
                               "currentPageNumber": offset // page_size}
    if offset + size < total:
        records["cursor"] = _encode_cursor(offset + size, fingerprint)
    return records


def build_routes(sim: GongSimulator) -> list[Route]:
    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except BadRequest as exc:
                return error(400, str(exc))
        return endpoint

    async def users(request: Request) -> Response:
        fingerprint = hashlib.sha256(b"users" + request.query_params.get("includeAvatars", "").encode()).hexdigest()[:12]
        cursor = request.query_params.get("cursor")
        offset = _decode_cursor(cursor, fingerprint) if cursor else 0
        with sim.lock:
            rows = sim.users[offset:offset + sim.page_size]
            total = len(sim.users)
        return json_response({"requestId": _request_id(),
                              "records": _records(total, offset, len(rows), sim.page_size, fingerprint),
                              "users": rows})

    async def user(request: Request) -> Response:
        with sim.lock:
            for u in sim.users:
                if u["id"] == request.path_params["user_id"]:
                    return json_response({"requestId": _request_id(), "user": u})
        return error(404, "User not found")

    def select(start: dt.datetime | None, end: dt.datetime | None, ids: list[str] | None,
               hosts: list[str] | None, workspace: str | None) -> list[GongCall]:
        if start is not None and end is not None and end <= start:
            raise BadRequest("toDateTime must be after fromDateTime")
        out = []
        for call in sim.ordered():
            if start is not None and call.started < start:
                continue
            if end is not None and call.started >= end:
                continue
            if ids is not None and call.id not in ids:
                continue
            if hosts is not None and call.meta["primaryUserId"] not in hosts:
                continue
            if workspace and call.meta["workspaceId"] != workspace:
                continue
            out.append(call)
        return out

    async def calls(request: Request) -> Response:
        q = request.query_params
        start = _parse_time(q.get("fromDateTime"), "fromDateTime")
        end = _parse_time(q.get("toDateTime"), "toDateTime")
        fingerprint = hashlib.sha256(
            f"calls|{q.get('fromDateTime')}|{q.get('toDateTime')}|{q.get('workspaceId')}".encode()).hexdigest()[:12]
        cursor = q.get("cursor")
        offset = _decode_cursor(cursor, fingerprint) if cursor else 0
        with sim.lock:
            chosen = select(start, end, None, None, q.get("workspaceId"))
            if not chosen:
                return error(404, "No calls found corresponding to the provided filters")
            page = chosen[offset:offset + sim.page_size]
            body = {"requestId": _request_id(),
                    "records": _records(len(chosen), offset, len(page), sim.page_size, fingerprint),
                    "calls": [dict(c.meta) for c in page]}
        return json_response(body)

    async def extensive(request: Request) -> Response:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            raise BadRequest("malformed JSON body") from None
        if not isinstance(body, dict):
            raise BadRequest("expected a JSON object")
        flt = body.get("filter")
        if not isinstance(flt, dict):
            raise BadRequest("filter: required")
        selector = body.get("contentSelector") or {}
        if not isinstance(selector, dict):
            raise BadRequest("contentSelector: expected an object")
        context = selector.get("context") or "None"
        if context not in ("None", "Basic", "Extended"):
            raise BadRequest(f"contentSelector.context: unknown value {str(context)[:20]!r}")
        exposed = selector.get("exposedFields") or {}
        content_sel = exposed.get("content") or {}
        ids = flt.get("callIds")
        hosts = flt.get("primaryUserIds")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise BadRequest("filter.callIds: expected a list of strings")
        start = _parse_time(flt.get("fromDateTime"), "filter.fromDateTime")
        end = _parse_time(flt.get("toDateTime"), "filter.toDateTime")
        fingerprint = hashlib.sha256(orjson.dumps({"filter": flt, "contentSelector": selector},
                                                  option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
        cursor = body.get("cursor")
        offset = _decode_cursor(str(cursor), fingerprint) if cursor else 0
        with sim.lock:
            chosen = select(start, end, ids, hosts, flt.get("workspaceId"))
            if not chosen:
                return error(404, "No calls found corresponding to the provided filters")
            page = chosen[offset:offset + sim.page_size]
            out = []
            for call in page:
                item: dict[str, Any] = {"metaData": dict(call.meta)}
                if context != "None":
                    item["context"] = sim.context_of(call, context == "Extended")
                if exposed.get("parties"):
                    item["parties"] = [dict(p) for p in call.parties]
                wanted = {k: call.content.get(k) for k in CONTENT_PARTS if content_sel.get(k)}
                if wanted:
                    item["content"] = wanted
                if exposed.get("interaction"):
                    item["interaction"] = {"interactionStats": [{"name": "Talk Ratio", "value": 0.46}]}
                out.append(item)
            response = {"requestId": _request_id(),
                        "records": _records(len(chosen), offset, len(page), sim.page_size, fingerprint),
                        "calls": out}
        return json_response(response)

    g = guarded
    return [
        Route("/v2/users", g(users), methods=["GET"]),
        Route("/v2/users/{user_id}", g(user), methods=["GET"]),
        Route("/v2/calls", g(calls), methods=["GET"]),
        Route("/v2/calls/extensive", g(extensive), methods=["POST"]),
    ]


__all__ = ["DEFAULT_ACCESS_KEY", "DEFAULT_ACCESS_SECRET", "GongSimulator", "gong_knobs", "iso", "user_id"]
