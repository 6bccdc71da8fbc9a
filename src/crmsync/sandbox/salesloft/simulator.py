"""A simulator of the SalesLoft API v2 on loopback (the parts a cadence integration uses).

As ``docs/api-facts.md`` records from SalesLoft's developer documentation:

- ``Authorization: Bearer <token>`` (an OAuth access token or an API key), base ``/v2``;
- lists answer ``{"metadata": {"paging": {per_page, current_page, next_page, prev_page}}, "data": [...]}``,
  take ``per_page`` (at most 100), ``page``, ``sort_by`` (``updated_at``, ``created_at``, ``id``),
  ``sort_direction`` (``ASC`` / ``DESC``) and ``updated_at[gt|gte|lt|lte]`` filters;
- ``GET /v2/people`` (``email_addresses[]``), ``POST /v2/people`` (``email_address`` must be unique: 422);
- ``GET /v2/cadences``; ``GET /v2/users``; ``GET /v2/activities/emails``;
- ``GET /v2/cadence_memberships`` (``person_id``, ``cadence_id``, ``currently_on_cadence``);
  ``POST /v2/cadence_memberships`` (``person_id``, ``cadence_id``, ``user_id``) adds a person to a
  cadence; one membership record per person and cadence (re-adding reuses it);
  ``DELETE /v2/cadence_memberships/{id}`` takes the person off the cadence;
- cost-based rate limit, 600 per minute per team; a ``page`` above 100 costs 3, above 150 8, above
  250 10, above 500 30; every answer carries ``x-ratelimit-endpoint-cost`` and
  ``x-ratelimit-remaining-minute``; 429 with ``Retry-After`` when spent.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import secrets
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import RateLimiter, Simulator, SimulatorHooks, json_response
from crmsync.sandbox.world import World

CADENCES = ("Inbound - warm follow-up", "Outbound - cold intro", "Outbound - enterprise", "Nurture - quarterly")
MAX_PER_PAGE = 100
MINUTE_COST = 600


def stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000000-00:00")


def parse(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def page_cost(page: int) -> int:
    return 30 if page > 500 else 10 if page > 250 else 8 if page > 150 else 3 if page > 100 else 1


class SalesloftError(Exception):
    def __init__(self, status: int, errors: dict[str, Any] | str) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


class SalesloftHooks(SimulatorHooks):
    name = "salesloft"

    def __init__(self, sim: SalesloftSimulator) -> None:
        self.sim = sim
        self.last_cost = 1

    def route_of(self, method: str, path: str) -> str:
        return f"{method} " + re.sub(r"/\d+(?=/|$)", "/{id}", path)

    def cost_of(self, method: str, path: str) -> int:
        return 1  # the page surcharge is charged by the route (it needs the query string)

    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        return "bearer:" + token[:4] if token and token == self.sim.token else None

    def unauthorized(self) -> Response:
        return json_response({"error": "Unauthorized"}, 401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return json_response({"error": "Rate limit exceeded"}, 429, headers={"Retry-After": str(max(1, int(retry_after)))})

    def server_error(self, status: int) -> Response:
        return json_response({"error": "Internal Server Error"}, status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        snap = limiter.snapshot()
        if snap["burst_limit"] is None:
            return {}
        return {"x-ratelimit-endpoint-cost": str(self.last_cost),
                "x-ratelimit-remaining-minute": str(snap["burst_remaining"])}


class SalesloftSimulator(Simulator):
    name = "salesloft"

    def __init__(self, world: World, knobs: Any = None, *, people: int | None = None) -> None:
        super().__init__(knobs)
        if self.knobs.burst_limit is None:
            self.knobs.burst_limit, self.knobs.burst_window_s = MINUTE_COST, 60.0
        self.sl_hooks = SalesloftHooks(self)
        self.hooks = self.sl_hooks
        self.token = secrets.token_urlsafe(18)
        self._ids = itertools.count(1)
        self.tables: dict[str, dict[int, dict[str, Any]]] = {
            "people": {}, "cadences": {}, "cadence_memberships": {}, "users": {}, "emails": {}}
        now = stamp(self.clock.time())
        for owner in world.owners:
            if owner.role != "cs":
                self._add("users", {"email": owner.email, "name": f"{owner.first_name} {owner.last_name}",
                                    "active": owner.active}, now)
        for name in CADENCES:
            self._add("cadences", {"name": name, "archived_at": None, "team_cadence": True, "shared": True,
                                   "remove_replied_enabled": True}, now)
        for contact in world.contacts[: people if people is not None else 200]:
            self._add("people", {"first_name": contact.first_name, "last_name": contact.last_name,
                                 "email_address": contact.email, "title": contact.title,
                                 "do_not_contact": False}, now)

    def _add(self, table: str, row: dict[str, Any], at: str) -> dict[str, Any]:
        rid = next(self._ids)
        full = {"id": rid, **row, "created_at": at, "updated_at": at}
        self.tables[table][rid] = full
        return full

    def _touch(self, row: dict[str, Any]) -> None:
        row["updated_at"] = stamp(self.clock.time())

    # --- user handle ------------------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            return str(self._add(object_name, dict(fields), stamp(self.clock.time()))["id"])

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            row = self.tables[object_name][int(record_id)]
            row.update(fields)
            self._touch(row)

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            del self.tables[object_name][int(record_id)]

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            table = self.tables[object_name]
            return [orjson.loads(orjson.dumps(table[k])) for k in sorted(table)]

    def reply(self, membership_id: int) -> int:
        """The person replies to a cadence email (``remove_replied_enabled``: taken off the cadence)."""
        with self.lock:
            now = stamp(self.clock.time())
            m = self.tables["cadence_memberships"][membership_id]
            m["counts"]["replies"] += 1
            m.update({"currently_on_cadence": False, "current_state": "removed"})
            self._touch(m)
            return int(self._add("emails", {"status": "sent", "counts": {"replies": 1, "views": 1},
                                            "person": {"id": m["person"]["id"]}, "cadence": m["cadence"],
                                            "replied_at": now}, now)["id"])

    # --- routes -----------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        return [
            Route("/v2/people", self._people, methods=["GET", "POST"]),
            Route("/v2/cadences", self._list("cadences"), methods=["GET"]),
            Route("/v2/users", self._list("users"), methods=["GET"]),
            Route("/v2/activities/emails", self._list("emails"), methods=["GET"]),
            Route("/v2/cadence_memberships", self._memberships, methods=["GET", "POST"]),
            Route("/v2/cadence_memberships/{mid:int}", self._membership, methods=["GET", "DELETE"]),
        ]

    async def _guard(self, fn: Callable[[], Any]) -> Response:
        try:
            with self.lock:
                return json_response(fn())
        except SalesloftError as exc:
            return json_response({"errors": exc.errors} if isinstance(exc.errors, dict) else {"error": exc.errors},
                                 exc.status)

    def _list(self, table: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return await self._guard(lambda: self._page(table, request, lambda r: True))
        return endpoint

    async def _people(self, request: Request) -> Response:
        if request.method == "POST":
            body = orjson.loads(await request.body() or b"{}")

            def create() -> Any:
                email = str(body.get("email_address") or "").strip()
                if not email:
                    raise SalesloftError(422, {"email_address": ["can't be blank"]})
                if any(str(p["email_address"]).lower() == email.lower() for p in self.tables["people"].values()):
                    raise SalesloftError(422, {"email_address": ["has already been taken"]})
                fields = {k: body.get(k) for k in ("first_name", "last_name", "title") if body.get(k) is not None}
                return {"data": self._add("people", {**fields, "email_address": email, "do_not_contact": False},
                                          stamp(self.clock.time()))}
            return await self._guard(create)
        emails = {e.lower() for e in request.query_params.getlist("email_addresses[]")}
        return await self._guard(lambda: self._page(
            "people", request, lambda r: not emails or str(r["email_address"]).lower() in emails))

    async def _memberships(self, request: Request) -> Response:
        q = request.query_params
        if request.method == "POST":
            def add() -> Any:
                try:
                    person, cadence = int(q["person_id"]), int(q["cadence_id"])
                    user = int(q["user_id"]) if q.get("user_id") else None
                except (KeyError, ValueError):
                    raise SalesloftError(422, {"base": ["person_id and cadence_id are required"]}) from None
                if person not in self.tables["people"] or cadence not in self.tables["cadences"]:
                    raise SalesloftError(404, "Not Found")
                if user is not None and user not in self.tables["users"]:
                    raise SalesloftError(422, {"user_id": ["is not a user of the team"]})
                if self.tables["people"][person].get("do_not_contact"):
                    raise SalesloftError(422, {"base": ["person is marked do not contact"]})
                now = stamp(self.clock.time())
                for m in self.tables["cadence_memberships"].values():
                    if m["person"]["id"] == person and m["cadence"]["id"] == cadence:
                        if not m["currently_on_cadence"]:  # one record per person and cadence: re-added
                            m.update({"currently_on_cadence": True, "current_state": "active", "added_at": now})
                            self._touch(m)
                        return {"data": m}
                return {"data": self._add("cadence_memberships", {
                    "added_at": now, "person_deleted": False, "currently_on_cadence": True,
                    "current_state": "active", "cadence": {"id": cadence}, "person": {"id": person},
                    "user": {"id": user}, "latest_action": None,
                    "counts": {"views": 0, "clicks": 0, "replies": 0, "calls": 0, "bounces": 0}}, now)}
            return await self._guard(add)

        def match(r: dict[str, Any]) -> bool:
            if q.get("person_id") and str(r["person"]["id"]) != q["person_id"]:
                return False
            if q.get("cadence_id") and str(r["cadence"]["id"]) != q["cadence_id"]:
                return False
            return not (q.get("currently_on_cadence") and str(r["currently_on_cadence"]).lower() != q["currently_on_cadence"])
        return await self._guard(lambda: self._page("cadence_memberships", request, match))

    async def _membership(self, request: Request) -> Response:
        mid = int(request.path_params["mid"])

        def run() -> Any:
            m = self.tables["cadence_memberships"].get(mid)
            if m is None:
                raise SalesloftError(404, "Not Found")
            if request.method == "DELETE":
                m.update({"currently_on_cadence": False, "current_state": "removed"})
                self._touch(m)
            return {"data": m}
        return await self._guard(run)

    def _page(self, table: str, request: Request, keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        q = request.query_params
        try:
            per_page, page = int(q.get("per_page", 25)), int(q.get("page", 1))
        except ValueError:
            raise SalesloftError(422, {"base": ["per_page and page must be integers"]}) from None
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            raise SalesloftError(422, {"per_page": [f"must be between 1 and {MAX_PER_PAGE}"]})
        surcharge = page_cost(page) - 1
        self.sl_hooks.last_cost = page_cost(page)
        if surcharge and self.limiter.acquire(surcharge) is not None:
            raise SalesloftError(429, "Rate limit exceeded")
        rows = [r for r in self.tables[table].values() if keep(r)]
        for op in ("gt", "gte", "lt", "lte"):
            raw = q.get(f"updated_at[{op}]")
            if raw:
                rows = [r for r in rows if _compare(op, parse(r["updated_at"]), parse(raw))]
        field = q.get("sort_by", "updated_at")
        if field not in ("updated_at", "created_at", "id"):
            raise SalesloftError(422, {"sort_by": ["is not a sortable field"]})
        rows.sort(key=lambda r: (r["id"] if field == "id" else parse(r[field]), r["id"]),
                  reverse=q.get("sort_direction", "DESC").upper() == "DESC")
        start = (page - 1) * per_page
        chunk = rows[start:start + per_page]
        more = start + per_page < len(rows)
        return {"metadata": {"filtering": {}, "sorting": {"sort_by": field},
                             "paging": {"per_page": per_page, "current_page": page,
                                        "next_page": page + 1 if more else None,
                                        "prev_page": page - 1 if page > 1 else None}},
                "data": chunk}


def _compare(op: str, value: float, bound: float) -> bool:
    return {"gt": value > bound, "gte": value >= bound, "lt": value < bound, "lte": value <= bound}[op]
