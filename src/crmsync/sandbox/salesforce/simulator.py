"""``SalesforceSimulator``: the seeded World served as a Salesforce org over REST and Bulk 2.0."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import Knobs, Simulator
from crmsync.sandbox.salesforce.auth import (
    TOKEN_PATH,
    SalesforceHooks,
    SandboxCredentials,
    Sessions,
    token_endpoint,
)
from crmsync.sandbox.salesforce.bulk import BulkApi
from crmsync.sandbox.salesforce.data import STAGE_BY_LABEL, OrgData, WriteError
from crmsync.sandbox.salesforce.responses import sf_error, sf_json
from crmsync.sandbox.salesforce.rest import RestApi
from crmsync.sandbox.salesforce.world_rows import user_id
from crmsync.sandbox.world import STAGES, World

_VERSION = re.compile(r"^v\d{2}\.\d$")
HUMAN_USER = user_id(2)  # edits through the user handle are made by this (simulated) person


class SalesforceSimulator(Simulator):
    name = "salesforce"

    def __init__(self, world: World, knobs: Knobs | None = None, *,
                 credentials: SandboxCredentials | None = None) -> None:
        super().__init__(knobs)
        self.world = world
        self.credentials = credentials or SandboxCredentials()
        self.sessions = Sessions()
        self.hooks = SalesforceHooks(self.sessions, self.limiter)
        self.data = OrgData(world, self.clock)
        self.rest = RestApi(self)
        self.bulk = BulkApi(self)

    # --- test and operator controls ---------------------------------------------------------
    def expire_sessions(self) -> None:
        """Invalidate every session id (the next API call gets 401 INVALID_SESSION_ID)."""
        self.sessions.expire_all()

    def issue_session(self) -> str:
        """A valid session id without going through the token endpoint (for session_id logins)."""
        return self.sessions.issue()

    def expire_bulk_jobs(self) -> None:
        self.bulk.expire_all()

    @property
    def bulk_delay_s(self) -> float:
        return self.bulk.delay_s

    @bulk_delay_s.setter
    def bulk_delay_s(self, value: float) -> None:
        self.bulk.delay_s = value

    # --- the user handle --------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            return _handle(lambda: self.data.create(object_name, fields, by=HUMAN_USER))

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            _handle(lambda: self.data.update(object_name, record_id, fields, by=HUMAN_USER))

    def move_stage(self, deal_id: str, stage: str) -> None:
        by_key = {s.key: s.label for s in STAGES}
        label = by_key.get(stage, stage)
        if label.casefold() not in STAGE_BY_LABEL:
            raise ValueError(f"unknown stage {stage!r}")
        self.edit("Opportunity", deal_id, {"StageName": label})

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            _handle(lambda: self.data.delete(object_name, record_id, hard=hard))

    def merge(self, object_name: str, winner_id: str, loser_id: str) -> None:
        with self.lock:
            _handle(lambda: self.data.merge(object_name, winner_id, loser_id))

    def restore(self, object_name: str, record_id: str) -> None:
        """Undelete from the recycle bin (Salesforce ``undelete``; soft-deleted records only)."""
        with self.lock:
            _handle(lambda: self.data.undelete(object_name, record_id))

    def bulk_import(self, object_name: str, rows: list[dict[str, Any]], *, same_timestamp: bool = True) -> list[str]:
        """Insert many rows as a data-loader would; by default they all share ONE SystemModstamp."""
        with self.lock:
            stamp = self.data.now_stamp() if same_timestamp else None
            return [_handle(lambda r=row: self.data.create(object_name, r, stamp=stamp, by=HUMAN_USER))
                    for row in rows]

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            table = _handle(lambda: self.data.table(object_name))
            return [dict(row) for row in table.iter_rows() if include_deleted or not row.get("IsDeleted")]

    # --- HTTP -------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        async def token(request: Request) -> Response:
            return await token_endpoint(request, self.credentials, self.sessions)

        async def api(request: Request) -> Response:
            version = request.path_params["version"]
            if not _VERSION.match(version):
                return sf_error("NOT_FOUND", "The requested resource does not exist", 404)
            tail = [p for p in request.path_params["rest"].split("/") if p]
            try:
                return await self._dispatch(request, version, tail)
            except WriteError as exc:
                return sf_json(exc.as_rest(), exc.http_status)

        async def versions(request: Request) -> Response:
            return sf_json([{"label": "Winter '24", "url": "/services/data/v59.0", "version": "59.0"}])

        async def expire(request: Request) -> Response:
            self.expire_sessions()
            return sf_json({"expired": True})

        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        return [
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route("/_sandbox/salesforce/expire_sessions", expire, methods=["POST"]),
            Route("/services/data", versions, methods=["GET"]),
            Route("/services/data/", versions, methods=["GET"]),
            Route("/services/data/{version}/{rest:path}", api, methods=methods),
        ]

    async def _dispatch(self, request: Request, version: str, tail: list[str]) -> Response:
        head = tail[0] if tail else ""
        if head in ("query", "queryAll"):
            if request.method != "GET":
                return sf_error("METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed.", 405)
            return self.rest.query(request, version, tail[1:], include_deleted=head == "queryAll")
        if head == "sobjects":
            return await self.rest.sobjects(request, version, tail[1:])
        if head == "composite":
            return await self.rest.composite(request, version, tail[1:])
        if head == "jobs":
            return await self.bulk.handle(request, tail[1:], version)
        if head == "limits" and request.method == "GET":
            snap = self.limiter.snapshot()
            limit = snap["daily_limit"] or 100_000
            return sf_json({"DailyApiRequests": {"Max": limit, "Remaining": limit - int(snap["daily_used"] or 0)}})
        return sf_error("NOT_FOUND", "The requested resource does not exist", 404)


def _handle(action: Any) -> Any:
    """Run a handle action; not-found becomes KeyError and invalid input ValueError (control API)."""
    try:
        return action()
    except WriteError as exc:
        if exc.http_status == 404:
            raise KeyError(exc.message) from exc
        raise ValueError(f"{exc.code}: {exc.message}") from exc
