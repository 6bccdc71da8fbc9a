"""A simulator of the Outreach API v2 (JSON:API 1.0) on loopback.

What it serves, as ``docs/api-facts.md`` records it from Outreach's documentation:

- resources ``prospects``, ``accounts``, ``sequences``, ``sequenceStates``, ``mailboxes``, ``mailings``,
  ``calls``, ``users`` under ``/api/v2``; each a resource object ``{type, id, attributes, relationships}``;
- requests with a body must say ``Content-Type: application/vnd.api+json`` (else 415); errors are
  ``{"errors": [{"id", "title", "detail"}]}``;
- lists: ``page[size]`` (default 50, at most 1000), ``sort`` (``updatedAt``, ``-updatedAt``, ``id``),
  ``filter[updatedAt]=A..B`` (``inf`` / ``neginf`` open ends), ``filter[<attr>]=value`` and
  ``filter[<relationship>][id]=N``; the next page is ``links.next`` (cursor based: an opaque
  ``page[after]`` the client follows as given), absent on the last page;
- ``POST /api/v2/sequenceStates`` enrols a prospect: relationships ``prospect``, ``sequence`` and
  ``mailbox`` are required; a prospect already active in that sequence is refused (422);
  ``POST /api/v2/sequenceStates/{id}/actions/{pause|resume|finish}`` changes its ``state``;
- OAuth2: ``POST /oauth/token`` (``refresh_token`` or ``client_credentials`` grant) answers a bearer
  ``access_token`` with ``expires_in``; every API call needs ``Authorization: Bearer``;
- rate limit 10,000 requests per hour per user: ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (epoch seconds) on every answer, 429 when spent.

Timestamps are ISO 8601 UTC with whole seconds (``2026-12-03T10:00:00.000Z``). The user handle
(create, edit, delete; ``reply``, ``open_mailing``, ``bounce``, ``log_call``, ``opt_out``) changes the
data as a rep or a prospect would, stamping ``updatedAt`` on the simulated clock.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import RateLimiter, Simulator, SimulatorHooks, json_response
from crmsync.sandbox.world import World

JSONAPI = "application/vnd.api+json"
TYPES = {  # path segment -> JSON:API type
    "prospects": "prospect", "accounts": "account", "sequences": "sequence", "sequenceStates": "sequenceState",
    "mailboxes": "mailbox", "mailings": "mailing", "calls": "call", "users": "user",
}
RELATIONSHIPS = {  # type -> relationship name -> related type
    "prospect": {"account": "account", "owner": "user"},
    "account": {"owner": "user"},
    "sequence": {"owner": "user"},
    "sequenceState": {"prospect": "prospect", "sequence": "sequence", "mailbox": "mailbox", "account": "account"},
    "mailbox": {"user": "user"},
    "mailing": {"prospect": "prospect", "sequence": "sequence", "sequenceState": "sequenceState", "mailbox": "mailbox"},
    "call": {"prospect": "prospect", "sequence": "sequence", "sequenceState": "sequenceState", "user": "user"},
    "user": {},
}
SEQUENCES = (  # name, sequenceType, tags
    ("Inbound - warm follow-up", "interval", ["inbound", "warm"]),
    ("Outbound - cold intro", "interval", ["outbound", "cold"]),
    ("Outbound - enterprise", "interval", ["outbound", "enterprise"]),
    ("Nurture - quarterly", "interval", ["nurture"]),
)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
HOURLY_LIMIT = 10_000
ACTIONS = {"pause": "paused", "resume": "active", "finish": "finished"}


def stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_stamp(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error_id = error_id
        self.title = title
        self.detail = detail


def error_body(error_id: str, title: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"id": error_id, "title": title, "detail": detail}]}


class OutreachHooks(SimulatorHooks):
    name = "outreach"

    def __init__(self, sim: OutreachSimulator) -> None:
        self.sim = sim

    def route_of(self, method: str, path: str) -> str:
        return f"{method} " + re.sub(r"/\d+(?=/|$)", "/{id}", path)

    def is_public(self, path: str) -> bool:
        return path.startswith("/_sandbox") or path == "/oauth/token"

    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ")
        expires = self.sim.tokens.get(token)
        if expires is None or expires < time.time():
            return None
        return "bearer:" + token[:4]

    def unauthorized(self) -> Response:
        return json_response(error_body("unauthorized", "Unauthorized", "The access token is invalid or expired."),
                             401, headers={"content-type": JSONAPI})

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return json_response(error_body("rateLimitExceeded", "Rate Limit Exceeded",
                                        "You have exceeded your permitted rate limit; please retry later."),
                             429, headers={"Retry-After": str(max(1, int(retry_after)))})

    def server_error(self, status: int) -> Response:
        return json_response(error_body("internalServerError", "Internal Server Error", "Something went wrong."),
                             status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        snap = limiter.snapshot()
        limit = snap["burst_limit"]
        if limit is None:
            return {}
        reset = int(time.time() + float(snap["burst_reset_s"] or limiter.knobs.burst_window_s)) + 1
        return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(snap["burst_remaining"]),
                "X-RateLimit-Reset": str(reset)}


class OutreachSimulator(Simulator):
    name = "outreach"

    def __init__(self, world: World, knobs: Any = None, *, prospects: int | None = None) -> None:
        super().__init__(knobs)
        if self.knobs.burst_limit is None:  # 10,000 requests per hour per user
            self.knobs.burst_limit = HOURLY_LIMIT
            self.knobs.burst_window_s = 3600.0
        self.hooks = OutreachHooks(self)
        self.world = world
        self.client_id = "crmsync-sandbox-outreach"
        self.client_secret = secrets.token_urlsafe(16)
        self.refresh_token = secrets.token_urlsafe(16)
        self.tokens: dict[str, float] = {}
        self.token_ttl_s = 7200.0
        self.rows: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in TYPES.values()}
        self.deleted: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in TYPES.values()}
        self._ids = itertools.count(1)
        self._seed(world, prospects)

    # --- data -------------------------------------------------------------------------------------
    def _seed(self, world: World, prospects: int | None) -> None:
        now = self.clock.time()
        self.user_of_owner: dict[int, int] = {}
        self.mailbox_of_email: dict[str, int] = {}
        for owner in world.owners:
            if owner.role == "cs":  # reps and their managers send sequences; customer success does not
                continue
            uid = self._insert("user", {"firstName": owner.first_name, "lastName": owner.last_name,
                                        "email": owner.email, "locked": not owner.active}, {}, now)
            self.user_of_owner[owner.id] = uid
            mid = self._insert("mailbox", {"email": owner.email, "sendDisabled": not owner.active,
                                           "userId": uid}, {"user": uid}, now)
            self.mailbox_of_email[owner.email.lower()] = mid
        for name, kind, tags in SEQUENCES:
            self._insert("sequence", {"name": name, "sequenceType": kind, "tags": list(tags), "enabled": True,
                                      "primaryReplyAction": "nothing", "shareType": "shared"}, {}, now)
        accounts: dict[int, int] = {}
        for contact in world.contacts[: prospects if prospects is not None else 200]:
            acc = world.accounts[contact.account_id - 1] if 0 < contact.account_id <= len(world.accounts) else None
            rel: dict[str, int] = {}
            if acc is not None:
                if acc.id not in accounts:
                    accounts[acc.id] = self._insert("account", {"name": acc.name, "domain": acc.domain}, {}, now)
                rel["account"] = accounts[acc.id]
            self._insert("prospect", {"firstName": contact.first_name, "lastName": contact.last_name,
                                      "emails": [contact.email], "title": contact.title, "optedOut": False,
                                      "tags": []}, rel, now)

    def _insert(self, type_: str, attributes: dict[str, Any], rel: Mapping[str, int | None], at: float) -> int:
        rid = next(self._ids)
        self.rows[type_][rid] = {"attributes": {**attributes, "createdAt": stamp(at), "updatedAt": stamp(at)},
                                 "relationships": dict(rel)}
        return rid

    def _touch(self, type_: str, rid: int, changes: dict[str, Any]) -> None:
        row = self.rows[type_][rid]
        row["attributes"].update(changes)
        row["attributes"]["updatedAt"] = stamp(self.clock.time())

    def resource(self, type_: str, rid: int) -> dict[str, Any]:
        row = self.rows[type_][rid]
        rels = {}
        for name, related in RELATIONSHIPS[type_].items():
            target = row["relationships"].get(name)
            rels[name] = {"data": None if target is None else {"type": related, "id": target}}
        return {"type": type_, "id": rid, "attributes": dict(row["attributes"]), "relationships": rels,
                "links": {"self": f"/api/v2/{_segment(type_)}/{rid}"}}

    # --- the user handle --------------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        type_ = TYPES.get(object_name, object_name)
        rel = {k: fields.pop(k) for k in list(fields) if k in RELATIONSHIPS[type_]}
        with self.lock:
            return str(self._insert(type_, fields, rel, self.clock.time()))

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        type_ = TYPES.get(object_name, object_name)
        with self.lock:
            rel = {k: fields.pop(k) for k in list(fields) if k in RELATIONSHIPS[type_]}
            self.rows[type_][int(record_id)]["relationships"].update(rel)
            self._touch(type_, int(record_id), fields)

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        type_ = TYPES.get(object_name, object_name)
        with self.lock:
            self.deleted[type_][int(record_id)] = self.rows[type_].pop(int(record_id))

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        type_ = TYPES.get(object_name, object_name)
        with self.lock:
            return [self.resource(type_, rid) for rid in sorted(self.rows[type_])]

    def states_of(self, prospect_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [self.resource("sequenceState", rid) for rid, row in sorted(self.rows["sequenceState"].items())
                    if row["relationships"].get("prospect") == prospect_id]

    def _mailing(self, state_id: int, **attributes: Any) -> int:
        state = self.rows["sequenceState"][state_id]
        rel = {k: state["relationships"].get(k) for k in ("prospect", "sequence", "mailbox")}
        rel["sequenceState"] = state_id
        return self._insert("mailing", {"mailingType": "sequence", "state": "delivered",
                                        "deliveredAt": stamp(self.clock.time()), "openedAt": None,
                                        "repliedAt": None, "bouncedAt": None, "openCount": 0, **attributes},
                            rel, self.clock.time())

    def open_mailing(self, state_id: int) -> int:
        """The prospect opens a mailing of this sequence state."""
        with self.lock:
            now = stamp(self.clock.time())
            mid = self._mailing(state_id, openedAt=now, openCount=1)
            count = int(self.rows["sequenceState"][state_id]["attributes"].get("openCount") or 0)
            self._touch("sequenceState", state_id, {"openCount": count + 1})
            return mid

    def reply(self, state_id: int) -> int:
        """The prospect replies (the sequences here have ``primaryReplyAction: nothing``: the state stays)."""
        with self.lock:
            now = stamp(self.clock.time())
            mid = self._mailing(state_id, openedAt=now, repliedAt=now, state="replied", openCount=1)
            count = int(self.rows["sequenceState"][state_id]["attributes"].get("replyCount") or 0)
            self._touch("sequenceState", state_id, {"repliedAt": now, "replyCount": count + 1})
            return mid

    def bounce(self, state_id: int) -> int:
        with self.lock:
            now = stamp(self.clock.time())
            mid = self._mailing(state_id, bouncedAt=now, state="bounced")
            count = int(self.rows["sequenceState"][state_id]["attributes"].get("bounceCount") or 0)
            self._touch("sequenceState", state_id, {"bounceCount": count + 1})
            return mid

    def log_call(self, state_id: int, outcome: str = "Answered") -> int:
        with self.lock:
            state = self.rows["sequenceState"][state_id]
            rel = {k: state["relationships"].get(k) for k in ("prospect", "sequence")}
            rel["sequenceState"] = state_id
            return self._insert("call", {"outcome": outcome, "direction": "outbound",
                                         "answeredAt": stamp(self.clock.time())}, rel, self.clock.time())

    def opt_out(self, prospect_id: int) -> None:
        with self.lock:
            self._touch("prospect", prospect_id, {"optedOut": True, "optedOutAt": stamp(self.clock.time())})

    # --- routes -----------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        return [
            Route("/oauth/token", self._token, methods=["POST"]),
            Route("/api/v2/sequenceStates/{rid:int}/actions/{action}", self._action, methods=["POST"]),
            Route("/api/v2/{segment}", self._collection, methods=["GET", "POST"]),
            Route("/api/v2/{segment}/{rid:int}", self._member, methods=["GET", "PATCH", "DELETE"]),
        ]

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        grant = form.get("grant_type")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"}, 401)
        if grant == "refresh_token" and form.get("refresh_token") != self.refresh_token:
            return json_response({"error": "invalid_grant"}, 400)
        if grant not in ("refresh_token", "client_credentials"):
            return json_response({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + self.token_ttl_s
        return json_response({"access_token": token, "token_type": "bearer", "expires_in": int(self.token_ttl_s),
                              "refresh_token": self.refresh_token})

    def issue_token(self) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = time.time() + self.token_ttl_s
        return token

    async def _guarded(self, fn: Callable[[], Response]) -> Response:
        try:
            with self.lock:
                return fn()
        except ApiError as exc:
            return json_response(error_body(exc.error_id, exc.title, exc.detail), exc.status,
                                 headers={"content-type": JSONAPI})

    async def _collection(self, request: Request) -> Response:
        type_ = _type_of(request.path_params["segment"])
        if type_ is None:
            return json_response(error_body("resourceNotFound", "Resource Not Found", "Unknown resource."), 404)
        if request.method == "POST":
            body = await _body(request)
            return await self._guarded(lambda: self._create(type_, body))
        params = request.query_params
        return await self._guarded(lambda: self._list(type_, params, str(request.url.path)))

    async def _member(self, request: Request) -> Response:
        type_ = _type_of(request.path_params["segment"])
        rid = int(request.path_params["rid"])
        if type_ is None:
            return json_response(error_body("resourceNotFound", "Resource Not Found", "Unknown resource."), 404)
        body = await _body(request) if request.method == "PATCH" else None

        def run() -> Response:
            if rid not in self.rows[type_]:
                raise ApiError(404, "resourceNotFound", "Resource Not Found",
                               f"Could not find '{type_}' with ID '{rid}'.")
            if request.method == "DELETE":
                self.deleted[type_][rid] = self.rows[type_].pop(rid)
                return Response(status_code=204)
            if request.method == "PATCH":
                data = _data(body, type_)
                rel = _relationships(data, type_)
                self.rows[type_][rid]["relationships"].update(rel)
                self._touch(type_, rid, _attributes(data, type_))
            return _doc({"data": self.resource(type_, rid)})

        return await self._guarded(run)

    async def _action(self, request: Request) -> Response:
        rid = int(request.path_params["rid"])
        action = request.path_params["action"]

        def run() -> Response:
            if rid not in self.rows["sequenceState"]:
                raise ApiError(404, "resourceNotFound", "Resource Not Found",
                               f"Could not find 'sequenceState' with ID '{rid}'.")
            if action not in ACTIONS:
                raise ApiError(404, "actionNotFound", "Action Not Found", f"Unknown action '{action}'.")
            row = self.rows["sequenceState"][rid]["attributes"]
            if row["state"] == "finished" and action != "finish":
                raise ApiError(422, "validationError", "Validation Error", "The sequence state is finished.")
            if row["state"] != ACTIONS[action]:
                self._touch("sequenceState", rid, {"state": ACTIONS[action],
                                                   "stateChangedAt": stamp(self.clock.time())})
            return _doc({"data": self.resource("sequenceState", rid)})

        return await self._guarded(run)

    def _create(self, type_: str, body: Any) -> Response:
        data = _data(body, type_)
        attributes = _attributes(data, type_)
        rel = _relationships(data, type_)
        for name, target in rel.items():
            related = RELATIONSHIPS[type_][name]
            if target is not None and target not in self.rows[related]:
                raise ApiError(422, "validationError", "Validation Error",
                               f"{name}: could not find '{related}' with ID '{target}'.")
        now = self.clock.time()
        if type_ == "sequenceState":
            for name in ("prospect", "sequence", "mailbox"):
                if rel.get(name) is None:
                    raise ApiError(422, "validationError", "Validation Error", f"{name} can't be blank.")
            prospect_id = int(rel["prospect"] or 0)
            prospect = self.rows["prospect"][prospect_id]["attributes"]
            if prospect.get("optedOut"):
                raise ApiError(422, "validationError", "Validation Error", "The prospect has opted out.")
            for row in self.rows["sequenceState"].values():
                same = all(row["relationships"].get(k) == rel[k] for k in ("prospect", "sequence"))
                if same and row["attributes"]["state"] in ("active", "paused", "pending"):
                    raise ApiError(422, "validationError", "Validation Error",
                                   "The prospect is already active in this sequence.")
            account = self.rows["prospect"][prospect_id]["relationships"].get("account")
            rel["account"] = account
            attributes = {"state": "active", "stateChangedAt": stamp(now), "activeAt": stamp(now),
                          "openCount": 0, "replyCount": 0, "bounceCount": 0, "repliedAt": None}
        if type_ == "prospect":
            attributes.setdefault("optedOut", False)
            attributes.setdefault("emails", [])
        rid = self._insert(type_, attributes, rel, now)
        return _doc({"data": self.resource(type_, rid)}, 201)

    def _list(self, type_: str, params: Any, path: str) -> Response:
        size = _int_param(params.get("page[size]"), DEFAULT_PAGE_SIZE, "page[size]")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ApiError(400, "paginationError", "Pagination Error",
                           f"page[size] must be between 1 and {MAX_PAGE_SIZE}.")
        sort = params.get("sort", "id")
        if sort not in ("id", "-id", "updatedAt", "-updatedAt", "createdAt"):
            raise ApiError(400, "sortError", "Sort Error", f"Cannot sort by '{sort}'.")
        rows = [(rid, row) for rid, row in self.rows[type_].items() if _matches(rid, row, params)]
        field = sort.lstrip("-")

        def key(item: tuple[int, dict[str, Any]]) -> tuple[float, int]:
            rid, row = item
            return (0.0 if field == "id" else parse_stamp(row["attributes"][field]), rid)

        rows.sort(key=key, reverse=sort.startswith("-"))
        after = params.get("page[after]")
        if after:
            try:
                floor = tuple(orjson.loads(base64.urlsafe_b64decode(after.encode())))
            except (ValueError, TypeError):
                raise ApiError(400, "paginationError", "Pagination Error", "Invalid page[after] cursor.") from None
            if sort.startswith("-"):
                rows = [r for r in rows if key(r) < floor]
            else:
                rows = [r for r in rows if key(r) > floor]
        page = rows[:size]
        doc: dict[str, Any] = {"data": [self.resource(type_, rid) for rid, _ in page], "links": {}}
        if len(rows) > size:
            token = base64.urlsafe_b64encode(orjson.dumps(list(key(page[-1])))).decode()
            query = [(k, v) for k, v in params.multi_items() if k != "page[after]"] + [("page[after]", token)]
            from urllib.parse import urlencode

            doc["links"]["next"] = f"https://api.outreach.io{path}?{urlencode(query)}"
        if params.get("count", "true") != "false":
            doc["meta"] = {"count": len(rows)}
        return _doc(doc)


def _segment(type_: str) -> str:
    return next(seg for seg, t in TYPES.items() if t == type_)


def _type_of(segment: str) -> str | None:
    return TYPES.get(segment)


def _doc(doc: dict[str, Any], status: int = 200) -> Response:
    return json_response(doc, status, headers={"content-type": JSONAPI})


async def _body(request: Request) -> Any:
    if request.headers.get("content-type", "").split(";")[0].strip() != JSONAPI:
        raise_415 = error_body("unsupportedMediaType", "Unsupported Media Type",
                               f"Expected Content-Type header to be '{JSONAPI}'.")
        return _Unsupported(raise_415)
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _Unsupported(error_body("badRequest", "Bad Request", "The request body is not valid JSON."), 400)


class _Unsupported:
    def __init__(self, body: dict[str, Any], status: int = 415) -> None:
        self.body = body
        self.status = status


def _data(body: Any, type_: str) -> dict[str, Any]:
    if isinstance(body, _Unsupported):
        err = body.body["errors"][0]
        raise ApiError(body.status, err["id"], err["title"], err["detail"])
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or data.get("type") != type_:
        raise ApiError(422, "validationError", "Validation Error", f"Expected a '{type_}' resource object in data.")
    return data


def _attributes(data: dict[str, Any], type_: str) -> dict[str, Any]:
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise ApiError(422, "validationError", "Validation Error", "attributes must be an object.")
    return {k: v for k, v in attributes.items() if k not in ("createdAt", "updatedAt")}


def _relationships(data: dict[str, Any], type_: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name, value in (data.get("relationships") or {}).items():
        if name not in RELATIONSHIPS[type_]:
            raise ApiError(422, "validationError", "Validation Error", f"Unknown relationship '{name}'.")
        target = value.get("data") if isinstance(value, dict) else None
        if target is None:
            out[name] = None
            continue
        if not isinstance(target, dict) or target.get("type") != RELATIONSHIPS[type_][name]:
            raise ApiError(422, "validationError", "Validation Error", f"{name}: expected a resource identifier.")
        try:
            out[name] = int(target["id"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(422, "validationError", "Validation Error", f"{name}: invalid id.") from None
    return out


def _int_param(raw: str | None, default: int, name: str) -> int:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, "paginationError", "Pagination Error", f"{name} must be an integer.") from None


_FILTER = re.compile(r"^filter\[(\w+)\](?:\[(\w+)\])?$")


def _matches(rid: int, row: dict[str, Any], params: Any) -> bool:
    for key, value in params.multi_items():
        m = _FILTER.match(key)
        if m is None:
            continue
        name, sub = m.group(1), m.group(2)
        if sub == "id":
            wanted = {int(v) for v in value.split(",") if v.strip().isdigit()}
            if row["relationships"].get(name) not in wanted:
                return False
            continue
        if name == "id":
            if str(rid) not in value.split(","):
                return False
            continue
        current = row["attributes"].get(name)
        if name in ("updatedAt", "createdAt") and ".." in value:
            low, high = value.split("..", 1)
            at = parse_stamp(current)
            if low not in ("", "neginf") and at < parse_stamp(low):
                return False
            if high not in ("", "inf") and at > parse_stamp(high):
                return False
            continue
        if isinstance(current, list):
            if not any(str(v).lower() == value.lower() for v in current):
                return False
        elif isinstance(current, bool):
            if str(current).lower() != value.lower():
                return False
        elif str(current) != value:
            return False
    return True
