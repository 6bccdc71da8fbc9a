"""HTTP routes of the Pipedrive simulator: API v2 plus the v1 endpoints that have no v2 yet.

Every answer uses Pipedrive's envelope ``{"success": true, "data": ..., "additional_data": ...}``;
errors ``{"success": false, "error": ..., "error_info": ..., "data": null, "additional_data": null}``.
List endpoints are cursor-paged (``limit`` default 100, max 500, ``next_cursor`` null at the end).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import exact_json, json_response
from crmsync.sandbox.pipedrive import cursor as cursors
from crmsync.sandbox.pipedrive.field_lists import note_fields, person_fields, product_fields
from crmsync.sandbox.pipedrive.fields import activity_fields, deal_fields, organization_fields
from crmsync.sandbox.pipedrive.hooks import error_response
from crmsync.sandbox.pipedrive.recents import Recents, RecentsError
from crmsync.sandbox.pipedrive.rows import Row, render
from crmsync.sandbox.pipedrive.table import Query, Table

if TYPE_CHECKING:
    from crmsync.sandbox.pipedrive.simulator import PipedriveSimulator

Handler = Callable[[Request], Awaitable[Response]]
MAX_LIMIT = 500
DEAL_STATUSES = ("open", "won", "lost", "deleted")


class BadRequest(ValueError):
    pass


class NotFound(LookupError):
    pass


def ok(data: Any, additional: dict[str, Any] | None = None, status: int = 200) -> Response:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional is not None:
        body["additional_data"] = additional
    return json_response(body, status)


def _int(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer") from exc


def _csv_ints(params: Any, name: str, maximum: int = 100) -> set[int] | None:
    raw = ",".join(params.getlist(name)) if hasattr(params, "getlist") else params.get(name)
    if raw is None or raw == "":
        return None
    try:  # the spec's array form repeats the parameter; Pipedrive also takes a comma list
        values = {int(v) for v in raw.split(",") if v.strip()}
    except ValueError as exc:
        raise BadRequest(f"{name} must be a comma separated list of integers") from exc
    if len(values) > maximum:
        raise BadRequest(f"{name} accepts at most {maximum} values")
    return values


def _time(params: Any, name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return cursors.parse_rfc3339(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an RFC3339 date-time, e.g. 2025-01-01T10:20:00Z") from exc


def _bool(params: Any, name: str) -> bool | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false")


def paging(params: Any, sorts: tuple[str, ...] = ("id", "update_time", "add_time")) -> Query:
    limit = _int(params, "limit") or 100
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    sort_by = params.get("sort_by") or "id"
    if sort_by not in sorts:
        raise BadRequest(f"sort_by must be one of {', '.join(sorts)}")
    direction = params.get("sort_direction") or "asc"
    if direction not in ("asc", "desc"):
        raise BadRequest("sort_direction must be asc or desc")
    after = None
    if params.get("cursor"):
        try:
            after = cursors.decode(params["cursor"], sort_by, direction)
        except cursors.CursorError as exc:
            raise BadRequest(str(exc)) from exc
    return Query(sort_by=sort_by, direction=direction, after=after, limit=limit,
                 since=_time(params, "updated_since"), until=_time(params, "updated_until"),
                 ids=_csv_ints(params, "ids"))


def listing(rows: list[Row], q: Query, last: int | None, *, custom_keys: set[str] | None = None) -> Response:
    next_cursor = cursors.encode(q.sort_by, q.direction, last) if last is not None else None
    return ok([render(r, custom_keys=custom_keys) for r in rows], {"next_cursor": next_cursor})


def page_list(rows: list[Row], params: Any, sorts: tuple[str, ...] = ("id", "update_time", "add_time")) -> Response:
    """Cursor paging over a small in-memory list (stages, pipelines, deal products)."""
    q = paging(params, sorts)
    keyed = sorted((cursors.sort_key(q.sort_by, int(r.get(q.sort_by, 0) or 0), int(r["id"])), r) for r in rows
                   if (q.since is None or int(r["update_time"]) >= q.since)
                   and (q.until is None or int(r["update_time"]) < q.until))
    if q.direction == "desc":
        keyed.reverse()
    if q.after is not None:
        keyed = [(k, r) for k, r in keyed if (k > q.after if q.direction == "asc" else k < q.after)]
    chunk = keyed[:q.limit]
    last = chunk[-1][0] if len(keyed) > q.limit else None
    return listing([r for _, r in chunk], q, last)


def _equals(filters: dict[str, Any]) -> Callable[[Row], bool] | None:
    active = {k: v for k, v in filters.items() if v is not None}
    if not active:
        return None
    return lambda row: all(row.get(k) == v for k, v in active.items())


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = exact_json(raw)
    except ValueError as exc:
        raise BadRequest("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    return body


def api_routes(sim: PipedriveSimulator) -> list[Route]:
    def guarded(fn: Callable[[Request], Awaitable[Response]], noun: str) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                body = await _json_body(request) if request.method in ("POST", "PATCH", "PUT") else {}
                request.state.body = body
                with sim.lock:
                    return await fn(request)
            except BadRequest as exc:
                return error_response(400, str(exc))
            except (NotFound, KeyError):
                return error_response(404, f"{noun} not found")
            except ValueError as exc:
                return error_response(400, str(exc))
        return handler

    def path_id(request: Request, name: str = "id") -> int:
        return int(request.path_params[name])

    # --- deals ------------------------------------------------------------------------------------
    def deal_query(params: Any, *, archived: bool) -> Query:
        q = paging(params)
        statuses = [s for s in (params.get("status") or "").split(",") if s]
        bad = [s for s in statuses if s not in DEAL_STATUSES]
        if bad:
            raise BadRequest(f"status must be one of {', '.join(DEAL_STATUSES)}")
        live = {s for s in statuses if s != "deleted"}
        q.deleted = "include" if ("deleted" in statuses and live) else "only" if "deleted" in statuses else "exclude"
        filters = {"owner_id": _int(params, "owner_id"), "person_id": _int(params, "person_id"),
                   "org_id": _int(params, "org_id"), "pipeline_id": _int(params, "pipeline_id"),
                   "stage_id": _int(params, "stage_id")}
        base = _equals(filters)

        def match(row: Row) -> bool:
            if bool(row.get("is_archived")) != archived:
                return False
            if live and not row.get("is_deleted") and row.get("status") not in live:
                return False
            return base is None or base(row)

        q.match = match
        return q

    def custom_keys(params: Any) -> set[str] | None:
        raw = params.get("custom_fields")
        if not raw:
            return None
        keys = {k for k in raw.split(",") if k}
        if len(keys) > 15:
            raise BadRequest("custom_fields accepts at most 15 keys")
        return keys

    def with_counts(rows: list[Row], params: Any) -> list[Row]:
        include = set((params.get("include_fields") or "").split(","))
        if "products_count" not in include:
            return rows
        return [{**r, "products_count": len(sim.products_of(int(r["id"])))} for r in rows]

    async def deals_list(request: Request, *, archived: bool = False) -> Response:
        params = request.query_params
        sim.deals.purge_expired(sim.now_epoch())
        q = deal_query(params, archived=archived)
        rows, last = sim.deals.page(q)
        return listing(with_counts(rows, params), q, last, custom_keys=custom_keys(params))

    async def deals_get(request: Request) -> Response:
        if request.method == "POST":
            return ok(render(sim.add_deal(request.state.body)))
        return await deals_list(request)

    async def deals_archived(request: Request) -> Response:
        return await deals_list(request, archived=True)

    async def deal_one(request: Request) -> Response:
        deal_id = path_id(request)
        if request.method == "PATCH":
            return ok(render(sim.patch_deal(deal_id, request.state.body)))
        if request.method == "DELETE":
            sim.delete_deal(deal_id)
            return ok({"id": deal_id})
        row = sim.deal(deal_id)
        if row is None or deal_id in sim.deals.deleted:
            raise NotFound(deal_id)
        return ok(render(with_counts([row], request.query_params)[0], custom_keys=custom_keys(request.query_params)))

    async def deal_changelog(request: Request) -> Response:
        deal_id = path_id(request)
        if sim.deal(deal_id) is None:
            raise NotFound(deal_id)
        try:
            data, following = sim.changelog.page(deal_id, request.query_params.get("cursor"),
                                                 _int(request.query_params, "limit"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        return ok(data, {"next_cursor": following})

    async def deal_followers(request: Request) -> Response:
        """Users following a deal: its owner (and creator), followed since the deal was added."""
        deal_id = path_id(request)
        row = sim.deal(deal_id)
        if row is None or deal_id in sim.deals.deleted:
            raise NotFound(deal_id)
        q = paging(request.query_params, ("id",))
        added = cursors.to_rfc3339(int(row["add_time"]))
        users = sorted({int(u) for u in (row.get("owner_id"), row.get("creator_user_id")) if u is not None})
        after = [u for u in users if q.after is None or u > q.after]
        chunk = after[:q.limit]
        following = cursors.encode("id", "asc", chunk[-1]) if len(after) > q.limit else None
        return ok([{"user_id": u, "add_time": added} for u in chunk], {"next_cursor": following})

    # --- deal products ----------------------------------------------------------------------------
    async def deal_products_batch(request: Request) -> Response:
        deal_ids = _csv_ints(request.query_params, "deal_ids")
        if not deal_ids:
            raise BadRequest("deal_ids is required")
        rows = [r for d in sorted(deal_ids) if sim.deals.exists(d) and d not in sim.deals.deleted
                for r in sim.products_of(d)]
        return page_list(rows, request.query_params)

    async def deal_products(request: Request) -> Response:
        deal_id = path_id(request)
        if sim.deal(deal_id) is None:
            raise NotFound(deal_id)
        if request.method == "POST":
            return ok(render(sim.add_deal_product(deal_id, request.state.body)), status=201)
        return page_list(sim.products_of(deal_id), request.query_params)

    async def deal_product_one(request: Request) -> Response:
        deal_id, attachment_id = path_id(request), path_id(request, "product_attachment_id")
        if request.method == "PATCH":
            return ok(render(sim.patch_deal_product(deal_id, attachment_id, request.state.body)))
        sim.delete_deal_product(deal_id, attachment_id)
        return ok({"id": attachment_id})

    # --- generic tables -------------------------------------------------------------------------
    def table_list(table: Table, filter_names: tuple[str, ...]) -> Handler:
        async def handler(request: Request) -> Response:
            params = request.query_params
            q = paging(params)
            filters: dict[str, Any] = {name: _int(params, name) for name in filter_names if name != "done"}
            if "done" in filter_names:
                filters["done"] = _bool(params, "done")
            q.match = _equals(filters)
            rows, last = table.page(q)
            return listing(rows, q, last, custom_keys=custom_keys(params))
        return handler

    def table_one(table: Table) -> Handler:
        async def handler(request: Request) -> Response:
            record_id = path_id(request)
            row = table.get(record_id)
            if row is None or record_id in table.deleted:
                raise NotFound(record_id)
            return ok(render(row))
        return handler

    async def activities(request: Request) -> Response:
        if request.method == "POST":
            return ok(render(sim.add_activity(request.state.body)))
        return await activities_list(request)

    activities_list = table_list(sim.activities, ("owner_id", "deal_id", "person_id", "org_id", "done"))
    activity_get = table_one(sim.activities)

    async def activity_one(request: Request) -> Response:
        activity_id = path_id(request)
        if request.method == "PATCH":
            return ok(render(sim.patch_activity(activity_id, request.state.body)))
        if request.method == "DELETE":
            if not sim.activities.exists(activity_id) or activity_id in sim.activities.deleted:
                raise NotFound(activity_id)
            sim.activities.soft_delete(activity_id, sim.now_epoch(), {"is_deleted": True})
            return ok({"id": activity_id})
        return await activity_get(request)

    async def stages(request: Request) -> Response:
        pipeline_id = _int(request.query_params, "pipeline_id")
        rows = [s for s in sim.stages if pipeline_id is None or s["pipeline_id"] == pipeline_id]
        return page_list(rows, request.query_params, ("id", "update_time", "order_nr"))

    async def stage_one(request: Request) -> Response:
        for row in sim.stages:
            if row["id"] == path_id(request):
                return ok(render(row))
        raise NotFound(path_id(request))

    async def pipelines(request: Request) -> Response:
        return page_list(sim.pipelines, request.query_params, ("id", "update_time", "add_time"))

    async def pipeline_one(request: Request) -> Response:
        for row in sim.pipelines:
            if row["id"] == path_id(request):
                return ok(render(row))
        raise NotFound(path_id(request))

    # --- v1 -----------------------------------------------------------------------------------------
    async def users(request: Request) -> Response:
        return ok(list(sim.users.values()))

    async def user_me(request: Request) -> Response:
        return ok(sim.users[min(sim.users)])

    async def user_one(request: Request) -> Response:
        user = sim.users.get(path_id(request))
        if user is None:
            return error_response(404, "User not found or not accessible.")
        return ok(user)

    def v1_fields(source: Callable[[], list[dict[str, Any]]]) -> Handler:
        async def handler(request: Request) -> Response:
            rows = source()
            start = _int(request.query_params, "start") or 0
            limit = _int(request.query_params, "limit") or MAX_LIMIT
            chunk = rows[start:start + limit]
            more = start + limit < len(rows)
            pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
            if more:
                pagination["next_start"] = start + limit
            return ok(chunk, {"pagination": pagination})
        return handler

    async def notes(request: Request) -> Response:
        if request.method == "POST":
            return ok(sim.notes.render(sim.notes.add(request.state.body)))
        params = request.query_params
        filters: dict[str, Any] = {name: _int(params, name) for name in
                                   ("deal_id", "person_id", "org_id", "project_id", "task_id", "user_id")}
        filters["lead_id"] = params.get("lead_id") or None
        rows, additional = sim.notes.listing(filters, updated_since=_time(params, "updated_since"),
                                             start=_int(params, "start") or 0,
                                             limit=_int(params, "limit") or 100)
        return ok([sim.notes.render(r) for r in rows], additional)

    async def note_one(request: Request) -> Response:
        note_id = path_id(request)
        if request.method == "PUT":
            return ok(sim.notes.render(sim.notes.update(note_id, request.state.body)))
        if request.method == "DELETE":
            sim.notes.delete(note_id)
            return ok(True)
        row = sim.notes.get(note_id)
        if row is None:
            raise NotFound(note_id)
        return ok(sim.notes.render(row))

    recents = Recents(sim)

    async def recents_list(request: Request) -> Response:
        try:
            data, additional = recents.page(request.query_params)
        except RecentsError as exc:
            raise BadRequest(str(exc)) from None
        return ok(data, additional)

    async def deals_summary(request: Request) -> Response:
        status = request.query_params.get("status")
        if status not in (None, "", "open", "won", "lost"):
            raise BadRequest("status must be open, won or lost")
        count, total = sim.deal_summary(status or None)
        value = total if total != total.to_integral_value() else int(total)
        return ok({
            "values_total": {"EUR": {"value": value, "count": count, "value_converted": value,
                                     "value_formatted": f"€{total:,.2f}", "value_converted_formatted": f"€{total:,.2f}"}},
            "weighted_values_total": {}, "total_count": count, "total_currency_converted_value": value,
            "total_weighted_currency_converted_value": 0,
            "total_currency_converted_value_formatted": f"€{total:,.2f}",
            "total_weighted_currency_converted_value_formatted": "€0.00",
        })

    v2 = "/api/v2"
    routes = [
        Route(v2 + "/deals", guarded(deals_get, "Deal"), methods=["GET", "POST"]),
        Route(v2 + "/deals/archived", guarded(deals_archived, "Deal"), methods=["GET"]),
        Route(v2 + "/deals/products", guarded(deal_products_batch, "Deal"), methods=["GET"]),
        Route(v2 + "/deals/{id:int}", guarded(deal_one, "Deal"), methods=["GET", "PATCH", "DELETE"]),
        Route(v2 + "/deals/{id:int}/products", guarded(deal_products, "Deal"), methods=["GET", "POST"]),
        Route(v2 + "/deals/{id:int}/followers", guarded(deal_followers, "Deal"), methods=["GET"]),
        Route(v2 + "/deals/{id:int}/products/{product_attachment_id:int}", guarded(deal_product_one, "Product attachment"),
              methods=["PATCH", "DELETE"]),
        Route(v2 + "/stages", guarded(stages, "Stage"), methods=["GET"]),
        Route(v2 + "/stages/{id:int}", guarded(stage_one, "Stage"), methods=["GET"]),
        Route(v2 + "/pipelines", guarded(pipelines, "Pipeline"), methods=["GET"]),
        Route(v2 + "/pipelines/{id:int}", guarded(pipeline_one, "Pipeline"), methods=["GET"]),
        Route(v2 + "/activities", guarded(activities, "Activity"), methods=["GET", "POST"]),
        Route(v2 + "/activities/{id:int}", guarded(activity_one, "Activity"), methods=["GET", "PATCH", "DELETE"]),
        Route(v2 + "/organizations", guarded(table_list(sim.organizations, ("owner_id",)), "Organization"),
              methods=["GET"]),
        Route(v2 + "/organizations/{id:int}", guarded(table_one(sim.organizations), "Organization"), methods=["GET"]),
        Route(v2 + "/persons", guarded(table_list(sim.persons, ("owner_id", "org_id")), "Person"), methods=["GET"]),
        Route(v2 + "/persons/{id:int}", guarded(table_one(sim.persons), "Person"), methods=["GET"]),
        Route(v2 + "/products", guarded(table_list(sim.products, ("owner_id",)), "Product"), methods=["GET"]),
        Route(v2 + "/products/{id:int}", guarded(table_one(sim.products), "Product"), methods=["GET"]),
    ]
    for v1 in ("/v1", "/api/v1"):
        routes += [
            Route(v1 + "/users", guarded(users, "User"), methods=["GET"]),
            Route(v1 + "/users/me", guarded(user_me, "User"), methods=["GET"]),
            Route(v1 + "/users/{id:int}", guarded(user_one, "User"), methods=["GET"]),
            Route(v1 + "/dealFields", guarded(v1_fields(deal_fields), "Field"), methods=["GET"]),
            Route(v1 + "/activityFields", guarded(v1_fields(activity_fields), "Field"), methods=["GET"]),
            Route(v1 + "/organizationFields", guarded(v1_fields(organization_fields), "Field"), methods=["GET"]),
            Route(v1 + "/deals/summary", guarded(deals_summary, "Deal"), methods=["GET"]),
            Route(v1 + "/recents", guarded(recents_list, "Item"), methods=["GET"]),
            Route(v1 + "/personFields", guarded(v1_fields(person_fields), "Field"), methods=["GET"]),
            Route(v1 + "/productFields", guarded(v1_fields(product_fields), "Field"), methods=["GET"]),
            Route(v1 + "/noteFields", guarded(v1_fields(note_fields), "Field"), methods=["GET"]),
            Route(v1 + "/deals/{id:int}/changelog", guarded(deal_changelog, "Deal"), methods=["GET"]),
            Route(v1 + "/notes", guarded(notes, "Note"), methods=["GET", "POST"]),
            Route(v1 + "/notes/{id:int}", guarded(note_one, "Note"), methods=["GET", "PUT", "DELETE"]),
        ]
    return routes

