"""A simulator of the Apollo.io REST API v1 on loopback (the parts a sequence integration uses).

As ``docs/api-facts.md`` records from Apollo's documentation:

- every call carries the key in the ``x-api-key`` header (401 without a valid one);
- ``POST /api/v1/contacts/search`` (JSON body: ``q_keywords``, ``sort_by_field`` =
  ``contact_updated_at`` | ``contact_created_at``, ``sort_ascending``, ``page``, ``per_page`` <= 100;
  at most 500 pages) answers ``{contacts, pagination: {page, per_page, total_entries, total_pages}}``;
  a contact lists its sequences in ``contact_campaign_statuses`` (``emailer_campaign_id``, ``status``
  active | paused | finished, ``send_email_from_email_account_id``, ``added_at``, ``finished_at``);
- ``POST /api/v1/contacts`` creates one (``run_dedupe: true`` answers the existing contact of that email);
- ``POST /api/v1/emailer_campaigns/search`` lists sequences; ``POST /api/v1/emailer_campaigns/{id}/
  add_contact_ids`` (``contact_ids[]``, ``emailer_campaign_id``, ``send_email_from_email_account_id``;
  query string or JSON) adds contacts, skipping those already in it (``skipped_contact_ids``);
  ``POST /api/v1/emailer_campaigns/remove_or_stop_contact_ids`` (``emailer_campaign_ids[]``,
  ``contact_ids[]``, ``mode`` = ``remove`` | ``mark_as_finished`` | ``stop``);
- ``GET /api/v1/email_accounts`` (the sending mailboxes); ``GET /api/v1/emailer_messages/search``
  (``emailer_campaign_ids[]``, ``page``, ``per_page``): the messages sequences sent, with ``status``;
- fixed-window limits per minute, hour and day, stated on every answer (``x-rate-limit-minute``,
  ``x-minute-requests-left``, ``x-minute-usage``, and the hourly and daily pairs); 429 when spent.

Ids are 24 hex digits; stamps ISO 8601 UTC with whole seconds. The user handle (create, edit,
delete, ``reply``) changes the data as a user or a prospect would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import RateLimiter, Simulator, SimulatorHooks, json_response
from crmsync.sandbox.world import World

SEQUENCES = ("Inbound - warm follow-up", "Outbound - cold intro", "Outbound - enterprise", "Nurture - quarterly")
MAX_PER_PAGE = 100
MAX_PAGES = 500
MINUTE_LIMIT, HOURLY_LIMIT, DAILY_LIMIT = 200, 6_000, 100_000


def stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(int(at), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


class ApolloError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApolloHooks(SimulatorHooks):
    name = "apollo"

    def __init__(self, sim: ApolloSimulator) -> None:
        self.sim = sim

    def route_of(self, method: str, path: str) -> str:
        import re

        return f"{method} " + re.sub(r"/[0-9a-f]{24}(?=/|$)", "/{id}", path)

    def authenticate(self, request: Request) -> str | None:
        key = request.headers.get("x-api-key")
        return "key:" + key[:4] if key and key == self.sim.api_key else None

    def unauthorized(self) -> Response:
        return json_response({"error": "Invalid access credentials.", "error_code": "UNAUTHORIZED"}, 401)

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return json_response({"error": "The maximum number of api calls allowed for this endpoint has been "
                                       "exceeded. Please try again later."}, 429,
                             headers={"Retry-After": str(max(1, int(retry_after)))})

    def server_error(self, status: int) -> Response:
        return json_response({"error": "Internal server error"}, status)

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        snap = limiter.snapshot()
        out: dict[str, str] = {}
        if snap["burst_limit"] is not None:
            limit, left = int(snap["burst_limit"]), int(snap["burst_remaining"] or 0)
            out.update({"x-rate-limit-minute": str(limit), "x-minute-requests-left": str(left),
                        "x-minute-usage": str(limit - left)})
        if snap["daily_limit"] is not None:
            out.update({"x-rate-limit-daily": str(snap["daily_limit"]),
                        "x-daily-requests-left": str(snap["daily_remaining"]),
                        "x-daily-usage": str(snap["daily_used"])})
        return out


class ApolloSimulator(Simulator):
    name = "apollo"

    def __init__(self, world: World, knobs: Any = None, *, contacts: int | None = None) -> None:
        super().__init__(knobs)
        if self.knobs.burst_limit is None:
            self.knobs.burst_limit, self.knobs.burst_window_s = MINUTE_LIMIT, 60.0
        if self.knobs.daily_limit is None:
            self.knobs.daily_limit = DAILY_LIMIT
        self.hooks = ApolloHooks(self)
        self.api_key = secrets.token_hex(11)
        self._ids = itertools.count(1)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        now = self.clock.time()
        for owner in world.owners:
            if owner.role != "cs":  # reps and managers have sending accounts
                aid = self._id()
                self.accounts[aid] = {"id": aid, "email": owner.email, "active": owner.active,
                                      "user_id": self._id(), "type": "gmail", "default": False}
        for name in SEQUENCES:
            cid = self._id()
            self.campaigns[cid] = {"id": cid, "name": name, "active": True, "archived": False,
                                   "num_steps": 3, "created_at": stamp(now)}
        for contact in world.contacts[: contacts if contacts is not None else 200]:
            self._new_contact({"first_name": contact.first_name, "last_name": contact.last_name,
                               "email": contact.email, "title": contact.title}, now)

    def _id(self) -> str:
        return f"{next(self._ids):024x}"

    def _new_contact(self, fields: dict[str, Any], at: float) -> dict[str, Any]:
        cid = self._id()
        row: dict[str, Any] = {"id": cid, "first_name": fields.get("first_name"), "last_name": fields.get("last_name"),
               "name": " ".join(str(v) for v in (fields.get("first_name"), fields.get("last_name")) if v),
               "email": fields.get("email"), "title": fields.get("title"),
               "organization_name": fields.get("organization_name"), "label_ids": [],
               "contact_campaign_statuses": [], "email_status": "verified",
               "created_at": stamp(at), "updated_at": stamp(at)}
        self.contacts[cid] = row
        return row

    def _touch(self, row: dict[str, Any]) -> None:
        row["updated_at"] = stamp(self.clock.time())

    # --- user handle ------------------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            if object_name != "contacts":
                raise ValueError(f"apollo sandbox creates contacts only, not {object_name!r}")
            return str(self._new_contact(fields, self.clock.time())["id"])

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            row = self.contacts[record_id]
            row.update(fields)
            self._touch(row)

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            self.deleted[record_id] = self.contacts.pop(record_id)

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            table = {"contacts": self.contacts, "emailer_campaigns": self.campaigns,
                     "email_accounts": self.accounts, "emailer_messages": self.messages}[object_name]
            return [orjson.loads(orjson.dumps(table[k])) for k in sorted(table)]

    def reply(self, contact_id: str, campaign_id: str) -> str:
        """The contact replies to a sequence email (Apollo then finishes the contact in it)."""
        with self.lock:
            now = self.clock.time()
            mid = self._id()
            self.messages[mid] = {"id": mid, "contact_id": contact_id, "emailer_campaign_id": campaign_id,
                                  "status": "replied", "replied_at": stamp(now), "created_at": stamp(now)}
            row = self.contacts[contact_id]
            for status in row["contact_campaign_statuses"]:
                if status["emailer_campaign_id"] == campaign_id and status["status"] == "active":
                    status.update({"status": "finished", "finished_at": stamp(now), "inactive_reason": "replied"})
            self._touch(row)
            return mid

    # --- routes -----------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        return [
            Route("/api/v1/contacts/search", self._search_contacts, methods=["POST"]),
            Route("/api/v1/contacts", self._create_contact, methods=["POST"]),
            Route("/api/v1/contacts/{cid}", self._get_contact, methods=["GET"]),
            Route("/api/v1/emailer_campaigns/search", self._search_campaigns, methods=["POST"]),
            Route("/api/v1/emailer_campaigns/remove_or_stop_contact_ids", self._remove, methods=["POST"]),
            Route("/api/v1/emailer_campaigns/{cid}/add_contact_ids", self._add, methods=["POST"]),
            Route("/api/v1/email_accounts", self._email_accounts, methods=["GET"]),
            Route("/api/v1/emailer_messages/search", self._search_messages, methods=["GET", "POST"]),
        ]

    async def _run(self, request: Request, fn: Any) -> Response:
        try:
            raw = await request.body()
            body = orjson.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ApolloError(422, "the request body must be a JSON object")
            params: dict[str, Any] = dict(body)
            for key in set(request.query_params.keys()):
                values = request.query_params.getlist(key)
                params[key.removesuffix("[]")] = values if key.endswith("[]") else values[-1]
            with self.lock:
                return json_response(fn(params, request.path_params))
        except orjson.JSONDecodeError:
            return json_response({"error": "invalid JSON"}, 400)
        except ApolloError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def _search_contacts(self, request: Request) -> Response:
        return await self._run(request, self._contacts_page)

    async def _create_contact(self, request: Request) -> Response:
        def create(p: dict[str, Any], _: Any) -> Any:
            email = str(p.get("email") or "").strip()
            if p.get("run_dedupe") and email:
                for row in self.contacts.values():
                    if str(row.get("email") or "").lower() == email.lower():
                        return {"contact": row}
            return {"contact": self._new_contact(p, self.clock.time())}
        return await self._run(request, create)

    async def _get_contact(self, request: Request) -> Response:
        def get(_: dict[str, Any], path: Any) -> Any:
            if path["cid"] not in self.contacts:
                raise ApolloError(404, "contact not found")
            return {"contact": self.contacts[path["cid"]]}
        return await self._run(request, get)

    async def _search_campaigns(self, request: Request) -> Response:
        def search(p: dict[str, Any], _: Any) -> Any:
            rows = [c for c in self.campaigns.values()
                    if not p.get("q_name") or str(p["q_name"]).lower() in c["name"].lower()]
            return self._paged("emailer_campaigns", rows, p)
        return await self._run(request, search)

    async def _email_accounts(self, request: Request) -> Response:
        return await self._run(request, lambda p, _: {"email_accounts": list(self.accounts.values())})

    async def _search_messages(self, request: Request) -> Response:
        def search(p: dict[str, Any], _: Any) -> Any:
            wanted = set(_as_list(p.get("emailer_campaign_ids")))
            rows = [m for m in self.messages.values() if not wanted or m["emailer_campaign_id"] in wanted]
            return self._paged("emailer_messages", rows, p)
        return await self._run(request, search)

    async def _add(self, request: Request) -> Response:
        def add(p: dict[str, Any], path: Any) -> Any:
            campaign = self.campaigns.get(path["cid"])
            if campaign is None:
                raise ApolloError(404, "emailer campaign not found")
            if str(p.get("emailer_campaign_id") or path["cid"]) != path["cid"]:
                raise ApolloError(422, "emailer_campaign_id does not match the path")
            account = str(p.get("send_email_from_email_account_id") or "")
            if account not in self.accounts:
                raise ApolloError(422, "send_email_from_email_account_id is not an email account of the team")
            ids = _as_list(p.get("contact_ids"))
            if not ids:
                raise ApolloError(422, "contact_ids is required")
            others_ok = str(p.get("sequence_active_in_other_campaigns", "false")).lower() == "true"
            added, skipped = [], {}
            now = stamp(self.clock.time())
            for cid in ids:
                row = self.contacts.get(cid)
                if row is None:
                    skipped[cid] = "contact_not_found"
                    continue
                statuses = row["contact_campaign_statuses"]
                if any(s["emailer_campaign_id"] == path["cid"] for s in statuses):
                    skipped[cid] = "contacts_already_exists_in_current_campaign"
                    continue
                if not others_ok and any(s["status"] == "active" for s in statuses):
                    skipped[cid] = "contacts_active_in_other_campaigns"
                    continue
                statuses.append({"id": self._id(), "emailer_campaign_id": path["cid"], "status": "active",
                                 "send_email_from_email_account_id": account, "added_at": now,
                                 "finished_at": None, "inactive_reason": None})
                self._touch(row)
                added.append(row)
            return {"contacts": added, "emailer_campaign": campaign, "skipped_contact_ids": skipped}
        return await self._run(request, add)

    async def _remove(self, request: Request) -> Response:
        def remove(p: dict[str, Any], _: Any) -> Any:
            mode = p.get("mode")
            if mode not in ("remove", "mark_as_finished", "stop"):
                raise ApolloError(422, "mode must be remove, mark_as_finished or stop")
            campaigns, ids = set(_as_list(p.get("emailer_campaign_ids"))), _as_list(p.get("contact_ids"))
            changed = []
            now = stamp(self.clock.time())
            for cid in ids:
                row = self.contacts.get(cid)
                if row is None:
                    continue
                keep = []
                for s in row["contact_campaign_statuses"]:
                    if s["emailer_campaign_id"] in campaigns:
                        if mode == "remove":
                            continue
                        s.update({"status": "finished" if mode == "mark_as_finished" else "paused",
                                  "finished_at": now if mode == "mark_as_finished" else s.get("finished_at")})
                    keep.append(s)
                row["contact_campaign_statuses"] = keep
                self._touch(row)
                changed.append(row)
            return {"contacts": changed}
        return await self._run(request, remove)

    def _contacts_page(self, p: dict[str, Any], _: Any) -> Any:
        field = str(p.get("sort_by_field") or "contact_created_at")
        if field not in ("contact_updated_at", "contact_created_at"):
            raise ApolloError(422, f"sort_by_field {field!r} is not supported")
        attr = field.removeprefix("contact_")
        rows = list(self.contacts.values())
        keywords = str(p.get("q_keywords") or "").strip().lower()
        if keywords:
            rows = [r for r in rows if keywords in " ".join(str(r.get(k) or "") for k in
                                                            ("name", "email", "title", "organization_name")).lower()]
        ascending = bool(p.get("sort_ascending", False))
        rows.sort(key=lambda r: (r[attr], r["id"]), reverse=not ascending)
        return self._paged("contacts", rows, p)

    def _paged(self, key: str, rows: list[dict[str, Any]], p: dict[str, Any]) -> dict[str, Any]:
        try:
            page, per_page = int(p.get("page") or 1), int(p.get("per_page") or 25)
        except (TypeError, ValueError):
            raise ApolloError(422, "page and per_page must be integers") from None
        if not 1 <= per_page <= MAX_PER_PAGE or not 1 <= page <= MAX_PAGES:
            raise ApolloError(422, f"per_page must be 1-{MAX_PER_PAGE} and page 1-{MAX_PAGES}")
        start = (page - 1) * per_page
        total_pages = (len(rows) + per_page - 1) // per_page
        return {key: rows[start:start + per_page], "breadcrumbs": [],
                "pagination": {"page": page, "per_page": per_page, "total_entries": len(rows),
                               "total_pages": total_pages}}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


