"""HTTP routes of the HubSpot simulator (CRM v3 objects, search, pipelines, owners, v4 associations)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import exact_json, json_response
from crmsync.sandbox.hubspot.associations import TYPE_IDS, default_types, spec
from crmsync.sandbox.hubspot.hooks import error_body
from crmsync.sandbox.hubspot.schema import OBJECT_TYPES, iso_ms, object_name
from crmsync.sandbox.hubspot.search import SearchError, run_search
from crmsync.sandbox.hubspot.simulator import ApiError
from crmsync.sandbox.hubspot.stage_log import HISTORY_BATCH_MAX
from crmsync.sandbox.hubspot.table import Row

if TYPE_CHECKING:
    from crmsync.sandbox.hubspot.simulator import HubSpotSimulator

MAX_BATCH = 100
# v3/v4 associations batch read: at most 1,000 ids per request (HubSpot changelog "Bug Fix: Batch
# Read Limit for HubSpot Associations API", effective 2025-02-10); other batch calls keep 100
MAX_ASSOC_READ = 1_000
MAX_LIST_LIMIT = 100
Handler = Callable[[Request], Awaitable[Response]]


def _error(exc: ApiError) -> Response:
    extra: dict[str, Any] = {}
    if exc.context:
        extra["context"] = exc.context
    if exc.sub_category:
        extra["subCategory"] = exc.sub_category
    if exc.property_name:
        extra["errors"] = [{"message": exc.message, "code": exc.sub_category or "INVALID",
                            "context": {"propertyName": [exc.property_name]}}]
    return json_response(error_body(exc.category, exc.message, **extra), exc.status)


def _standard_error(category: str, message: str, context: dict[str, list[str]]) -> dict[str, Any]:
    return {"status": "error", "category": category, "message": message, "context": context, "links": {},
            "errors": []}


def endpoint(sim: HubSpotSimulator) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            try:
                body = await request.body()
                request.state.json = exact_json(body) if body else None
            except ValueError:
                return _error(ApiError(400, "VALIDATION_ERROR", "Invalid input JSON on line 1"))
            try:
                with sim.lock:
                    return await fn(request)
            except ApiError as exc:
                return _error(exc)
            except SearchError as exc:
                return _error(ApiError(400, "VALIDATION_ERROR", str(exc)))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                return _error(ApiError(400, "VALIDATION_ERROR", f"Invalid input: {type(exc).__name__} {exc}"))
        return handler
    return wrap


def _object(request: Request, key: str = "object_type") -> str:
    segment = request.path_params[key]
    name = object_name(segment)
    if name is None:
        raise ApiError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {segment}")
    return name


def _list_param(request: Request, key: str) -> list[str]:
    return [p for value in request.query_params.getlist(key) for p in value.split(",") if p]


def _flag(request: Request, key: str) -> bool:
    return request.query_params.get(key, "false").lower() == "true"


def _int_param(request: Request, key: str, default: int) -> int:
    try:
        return int(request.query_params.get(key, default))
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", f"{key} must be an integer") from None


def _batch(results: list[Any], errors: list[dict[str, Any]], started: int, ok: int,
           completed: int | None = None) -> Response:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso_ms(started),
                            "completedAt": iso_ms(started if completed is None else completed)}
    if errors:
        body["errors"] = errors
        body["numErrors"] = len(errors)
        return json_response(body, 207)
    return json_response(body, ok)


def _inputs(request: Request, limit: int = MAX_BATCH) -> list[dict[str, Any]]:
    body = request.state.json or {}
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise ApiError(400, "VALIDATION_ERROR", "inputs is required")
    if len(inputs) > limit:
        raise ApiError(400, "VALIDATION_ERROR", f"Batch input limit is {limit}; {len(inputs)} were sent",
                       context={"limit": [str(limit)]})
    return inputs


def build_routes(sim: HubSpotSimulator) -> list[Route]:
    api = endpoint(sim)

    def not_found(name: str, record_id: str) -> ApiError:
        return ApiError(404, "OBJECT_NOT_FOUND", "resource not found",
                        context={"id": [record_id], "type": [OBJECT_TYPES[name][1].upper()]})

    # --- objects ------------------------------------------------------------------------------
    @api
    async def list_or_create(request: Request) -> Response:
        name = _object(request)
        table = sim.table(name)
        if request.method == "POST":
            body = request.state.json or {}
            row = sim.create_record(name, body.get("properties") or {},
                                    associations=body.get("associations") or [])
            return json_response(sim.render(name, row, list((body.get("properties") or {}).keys()) or None), 201)
        limit = _int_param(request, "limit", 10)
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise ApiError(400, "VALIDATION_ERROR", f"limit must be between 1 and {MAX_LIST_LIMIT}")
        after = request.query_params.get("after") or "0"
        if not after.isdigit():
            raise ApiError(400, "VALIDATION_ERROR", "Invalid after token")
        archived = _flag(request, "archived")
        history = _list_param(request, "propertiesWithHistory")
        if history and limit > HISTORY_BATCH_MAX:  # "will reduce the maximum number of objects" (spec)
            raise ApiError(400, "VALIDATION_ERROR", "The maximum number of objects supported in a request for "
                           f"property histories is {HISTORY_BATCH_MAX}. Please reduce the limit and try again.")
        ids, more = table.page_ids(int(after), limit, archived=archived)
        props = _list_param(request, "properties")
        assoc = _list_param(request, "associations")
        page: dict[str, Any] = {"results": [sim.render(name, table.rows[i], props or None, associations=assoc,
                                                       with_history=history) for i in ids]}
        if more and ids:
            nxt = str(ids[-1] + 1)
            page["paging"] = {"next": {"after": nxt, "link": f"{request.url.path}?limit={limit}&after={nxt}"}}
        return json_response(page)

    @api
    async def one(request: Request) -> Response:
        name = _object(request)
        record_id = request.path_params["record_id"]
        archived = _flag(request, "archived")
        row = sim.lookup(name, record_id, request.query_params.get("idProperty"),
                         archived=archived and request.method == "GET")
        if row is None:
            raise not_found(name, record_id)
        if request.method == "GET":
            return json_response(sim.render(name, row, _list_param(request, "properties") or None,
                                            associations=_list_param(request, "associations")))
        if request.method == "PATCH":
            properties = (request.state.json or {}).get("properties") or {}
            sim.update_record(name, row, properties)
            return json_response(sim.render(name, row, list(properties) or None))
        sim.archive_record(name, row)
        return Response(status_code=204)

    @api
    async def merge(request: Request) -> Response:
        name = _object(request)
        body = request.state.json or {}
        winner = sim.lookup(name, str(body.get("primaryObjectId")))
        loser = sim.lookup(name, str(body.get("objectIdToMerge")))
        if winner is None or loser is None or winner.id == loser.id:
            raise ApiError(400, "VALIDATION_ERROR", "primaryObjectId and objectIdToMerge must be two live records")
        return json_response(sim.render(name, sim.merge_records(name, winner, loser), None))

    @api
    async def search(request: Request) -> Response:
        name = _object(request)
        body = request.state.json or {}
        total, page = run_search(sim.table(name), name, body,
                                 lambda row, ms, props: sim.full_props(name, row, ms, props))
        requested = [p for item in body.get("properties") or [] for p in str(item).split(",") if p]
        result: dict[str, Any] = {"total": total, "results": [
            sim.render(name, row, requested or None, version=(ms, props)) for row, ms, props in page]}
        after = int(body.get("after") or 0)
        if after + len(page) < total and page:
            result["paging"] = {"next": {"after": str(after + len(page))}}
        return json_response(result)

    @api
    async def batch(request: Request) -> Response:
        name = _object(request)
        op = request.path_params["op"]
        inputs = _inputs(request)
        started = sim.now_ms()
        body = request.state.json or {}
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        label = OBJECT_TYPES[name][1].upper()
        if op == "read":
            archived = _flag(request, "archived")
            props = [p for item in body.get("properties") or [] for p in str(item).split(",") if p]
            history = [p for item in body.get("propertiesWithHistory") or [] for p in str(item).split(",") if p]
            if history and len(inputs) > HISTORY_BATCH_MAX:
                raise ApiError(400, "VALIDATION_ERROR", "The maximum number of inputs supported in a batch request "
                               f"for property histories is {HISTORY_BATCH_MAX}. Please reduce the number of items "
                               "and try again.")
            id_property = body.get("idProperty")
            missing = []
            for item in inputs:
                row = sim.lookup(name, str(item.get("id")), id_property, archived=archived)
                if row is None:
                    missing.append(str(item.get("id")))
                else:
                    results.append(sim.render(name, row, props or None, with_history=history))
            if missing:
                errors.append(_standard_error("OBJECT_NOT_FOUND", f"Could not get some {label} objects, they may "
                                              "be deleted or not exist. Check that ids are valid.", {"ids": missing}))
            return _batch(results, errors, started, 200, sim.now_ms())
        if op == "archive":
            for item in inputs:
                row = sim.lookup(name, str(item.get("id")))
                if row is not None:
                    sim.archive_record(name, row)
            return Response(status_code=204)
        if op not in ("create", "update", "upsert"):
            raise ApiError(404, "OBJECT_NOT_FOUND", f"unknown batch operation {op}")
        ok_status = 201 if op == "create" else 200
        for n, item in enumerate(inputs):
            try:
                properties = item.get("properties") or {}
                if op == "create":
                    row = sim.create_record(name, properties, associations=item.get("associations") or [])
                    results.append(sim.render(name, row, list(properties) or None))
                    continue
                record_id = str(item.get("id"))
                id_property = str(item.get("idProperty") or "hs_object_id")
                row_or_none = sim.lookup(name, record_id, None if op == "update" and id_property == "hs_object_id"
                                         else id_property)
                if op == "update":
                    if row_or_none is None:
                        raise ApiError(404, "OBJECT_NOT_FOUND", f"Could not update some {label} objects, they "
                                       "may be deleted or not exist. Check that ids are valid.",
                                       context={"ids": [record_id]})
                    sim.update_record(name, row_or_none, properties)
                    results.append(sim.render(name, row_or_none, list(properties) or None))
                    continue
                if id_property == "hs_object_id" and row_or_none is None:  # upsert by hs_object_id
                    raise ApiError(404, "OBJECT_NOT_FOUND", f"No {label} with id {record_id} to upsert",
                                   context={"ids": [record_id]})
                created = row_or_none is None
                if row_or_none is None:
                    row = sim.create_record(name, {**properties, id_property: record_id})
                else:
                    row = sim.update_record(name, row_or_none, properties)
                rendered = sim.render(name, row, [*properties, id_property])
                rendered["new"] = created
                results.append(rendered)
            except ApiError as exc:
                context = {k: [str(x) for x in v] for k, v in exc.context.items()}
                context.setdefault("inputIndex", [str(n)])
                if item.get("id") is not None:
                    context.setdefault("ids", [str(item.get("id"))])
                if exc.property_name:
                    context.setdefault("propertyName", [exc.property_name])
                entry = _standard_error(exc.category, exc.message, context)
                if exc.sub_category:
                    entry["errors"] = [{"message": exc.message, "code": exc.sub_category}]
                errors.append(entry)
        if errors and not results:
            first = errors[0]
            raise ApiError(404 if first["category"] == "OBJECT_NOT_FOUND" else 400 if first["category"] !=
                           "CONFLICT" else 409, first["category"], first["message"], context=first["context"],
                           sub_category=(first["errors"][0]["code"] if first["errors"] else None))
        return _batch(results, errors, started, ok_status, sim.now_ms())

    # --- pipelines ----------------------------------------------------------------------------
    @api
    async def pipelines(request: Request) -> Response:
        name = object_name(request.path_params["object_type"])
        pipeline_id = request.path_params.get("pipeline_id")
        stage_id = request.path_params.get("stage_id")
        found = [sim.pipeline()] if name == "deals" else []
        if pipeline_id is None:
            return json_response({"results": found})
        pipeline = next((p for p in found if p["id"] == pipeline_id), None)
        if pipeline is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find pipeline {pipeline_id}")
        if request.url.path.rstrip("/").endswith("/stages"):
            return json_response({"results": pipeline["stages"]})
        if stage_id is not None:
            stage = next((s for s in pipeline["stages"] if s["id"] == stage_id), None)
            if stage is None:
                raise ApiError(404, "OBJECT_NOT_FOUND", f"Unable to find stage {stage_id}")
            return json_response(stage)
        return json_response(pipeline)

    # --- owners -------------------------------------------------------------------------------
    @api
    async def owners(request: Request) -> Response:
        archived = _flag(request, "archived")
        owner_id = request.path_params.get("owner_id")
        if owner_id is not None:
            key = "userId" if request.query_params.get("idProperty") == "userId" else "id"
            for owner in sim.owners:
                if str(owner[key]) == owner_id and owner["archived"] == archived:
                    return json_response(owner)
            raise ApiError(404, "OBJECT_NOT_FOUND", f"Owner {owner_id} not found")
        email = request.query_params.get("email")
        limit = _int_param(request, "limit", 100)
        if not 1 <= limit <= 500:
            raise ApiError(400, "VALIDATION_ERROR", "limit must be between 1 and 500")
        after = _int_param(request, "after", 0)
        chosen = [o for o in sim.owners if o["archived"] == archived and (email is None or o["email"] == email)]
        body: dict[str, Any] = {"results": chosen[after:after + limit]}
        if after + limit < len(chosen):
            nxt = str(after + limit)
            body["paging"] = {"next": {"after": nxt, "link": f"{request.url.path}?after={nxt}&limit={limit}"}}
        return json_response(body)

    # --- associations v4 ----------------------------------------------------------------------
    def pair(from_name: str, to_name: str) -> None:
        if (from_name, to_name) not in TYPE_IDS:
            raise ApiError(400, "VALIDATION_ERROR", f"No associations between {from_name} and {to_name}")

    def live(name: str, record_id: str) -> Row:
        row = sim.lookup(name, record_id)
        if row is None:
            raise not_found(name, record_id)
        return row

    def assoc_list(from_name: str, from_id: int, to_name: str) -> list[dict[str, Any]]:
        found = sim.associations.get(from_name, from_id, to_name)
        return [{"toObjectId": str(i), "associationTypes": found[i]} for i in sorted(found)]

    @api
    async def assoc_page(request: Request) -> Response:
        from_name, to_name = _object(request), _object(request, "to_type")
        pair(from_name, to_name)
        row = live(from_name, request.path_params["object_id"])
        limit = _int_param(request, "limit", 500)
        after = _int_param(request, "after", 0)
        items = assoc_list(from_name, row.id, to_name)
        body: dict[str, Any] = {"results": items[after:after + limit]}
        if after + limit < len(items):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(body)

    def labels_pair(from_name: str, from_id: int, to_name: str, to_id: int) -> dict[str, Any]:
        found = sim.associations.get(from_name, from_id, to_name).get(to_id, [])
        return {"fromObjectTypeId": OBJECT_TYPES[from_name][0], "fromObjectId": str(from_id),
                "toObjectTypeId": OBJECT_TYPES[to_name][0], "toObjectId": str(to_id),
                "labels": [str(t["label"]) for t in found if t.get("label")]}

    def type_specs(raw: Any, from_name: str, to_name: str) -> list[dict[str, object]]:
        plain, primary = TYPE_IDS[(from_name, to_name)]
        out: list[dict[str, object]] = []
        for item in raw or []:
            type_id = int(item["associationTypeId"])
            category = str(item.get("associationCategory", "HUBSPOT_DEFINED"))
            if category == "HUBSPOT_DEFINED" and type_id not in (plain, primary):
                raise ApiError(400, "VALIDATION_ERROR", f"{type_id} is not a valid association type between "
                               f"{from_name} and {to_name}")
            out.append(spec(type_id, "Primary" if type_id == primary else None, category))
        if not out:
            raise ApiError(400, "VALIDATION_ERROR", "at least one association type is required")
        return out

    @api
    async def assoc_one(request: Request) -> Response:
        from_name, to_name = _object(request), _object(request, "to_type")
        pair(from_name, to_name)
        row = live(from_name, request.path_params["object_id"])
        target = live(to_name, request.path_params["to_id"])
        if request.method == "DELETE":
            sim.associations.remove(from_name, row.id, to_name, target.id)
            return Response(status_code=204)
        sim.associations.add(from_name, row.id, to_name, target.id, type_specs(request.state.json, from_name, to_name))
        return json_response(labels_pair(from_name, row.id, to_name, target.id), 201)

    @api
    async def assoc_default(request: Request) -> Response:
        from_name, to_name = _object(request), _object(request, "to_type")
        pair(from_name, to_name)
        started = sim.now_ms()
        row = live(from_name, request.path_params["object_id"])
        target = live(to_name, request.path_params["to_id"])
        types = default_types(from_name, to_name)
        sim.associations.add(from_name, row.id, to_name, target.id, types)
        return _batch([{"from": {"id": str(row.id)}, "to": {"id": str(target.id)},
                        "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                            "associationTypeId": types[0]["typeId"]}}], [], started, 200)

    @api
    async def assoc_batch(request: Request) -> Response:
        from_name, to_name = _object(request, "from_type"), _object(request, "to_type")
        pair(from_name, to_name)
        op = request.path_params["op"]
        inputs = _inputs(request, MAX_ASSOC_READ if op == "read" else MAX_BATCH)
        started = sim.now_ms()
        results: list[Any] = []
        errors: list[dict[str, Any]] = []
        if op == "read":
            missing = []
            for item in inputs:
                record_id = str((item or {}).get("id"))
                row = sim.lookup(from_name, record_id)
                if row is None:
                    missing.append(record_id)
                    continue
                results.append({"from": {"id": str(row.id)}, "to": assoc_list(from_name, row.id, to_name)})
            if missing:
                errors.append(_standard_error("OBJECT_NOT_FOUND", f"No {from_name} with ids {', '.join(missing)}",
                                              {"ids": missing}))
            return _batch(results, errors, started, 200, sim.now_ms())
        for n, item in enumerate(inputs):
            try:
                row = live(from_name, str(item["from"]["id"]))
                if op == "archive":
                    for to in item.get("to") or []:
                        sim.associations.remove(from_name, row.id, to_name, int(to["id"]))
                    continue
                target = live(to_name, str(item["to"]["id"]))
                if op == "create":
                    sim.associations.add(from_name, row.id, to_name, target.id,
                                         type_specs(item.get("types"), from_name, to_name))
                    results.append(labels_pair(from_name, row.id, to_name, target.id))
                elif op == "associate/default":
                    types = default_types(from_name, to_name)
                    sim.associations.add(from_name, row.id, to_name, target.id, types)
                    results.append({"from": {"id": str(row.id)}, "to": {"id": str(target.id)},
                                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED",
                                                        "associationTypeId": types[0]["typeId"]}})
            except ApiError as exc:
                errors.append(_standard_error(exc.category, exc.message,
                                              {**{k: [str(x) for x in v] for k, v in exc.context.items()},
                                               "inputIndex": [str(n)]}))
        if op == "archive":
            return Response(status_code=204)
        return _batch(results, errors, started, 201 if op == "create" else 200, sim.now_ms())

    objects = "/crm/v3/objects/{object_type}"
    v4 = "/crm/v4/objects/{object_type}/{object_id}/associations"
    return [
        Route(objects, list_or_create, methods=["GET", "POST"]),
        Route(objects + "/search", search, methods=["POST"]),
        Route(objects + "/merge", merge, methods=["POST"]),
        Route(objects + "/batch/{op}", batch, methods=["POST"]),
        Route(objects + "/{record_id}", one, methods=["GET", "PATCH", "DELETE"]),
        Route("/crm/v3/pipelines/{object_type}", pipelines, methods=["GET"]),
        Route("/crm/v3/pipelines/{object_type}/{pipeline_id}", pipelines, methods=["GET"]),
        Route("/crm/v3/pipelines/{object_type}/{pipeline_id}/stages", pipelines, methods=["GET"]),
        Route("/crm/v3/pipelines/{object_type}/{pipeline_id}/stages/{stage_id}", pipelines, methods=["GET"]),
        Route("/crm/v3/owners/", owners, methods=["GET"]),
        Route("/crm/v3/owners", owners, methods=["GET"]),
        Route("/crm/v3/owners/{owner_id}", owners, methods=["GET"]),
        Route(v4 + "/default/{to_type}/{to_id}", assoc_default, methods=["PUT"]),
        Route(v4 + "/{to_type}", assoc_page, methods=["GET"]),
        Route(v4 + "/{to_type}/{to_id}", assoc_one, methods=["PUT", "DELETE"]),
        Route("/crm/v4/associations/{from_type}/{to_type}/batch/associate/default", assoc_batch_default(assoc_batch),
              methods=["POST"]),
        Route("/crm/v4/associations/{from_type}/{to_type}/batch/{op}", assoc_batch, methods=["POST"]),
    ]


def assoc_batch_default(handler: Handler) -> Handler:
    async def wrapped(request: Request) -> Response:
        request.path_params["op"] = "associate/default"
        return await handler(request)
    return wrapped
