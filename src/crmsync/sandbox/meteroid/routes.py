"""The ``/api/v1`` routes of the Meteroid simulator: parsing, paging, filters, error mapping."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crmsync.sandbox.core import exact_json, json_response
from crmsync.sandbox.meteroid.fees import RequestError
from crmsync.sandbox.meteroid.ids import parse_id
from crmsync.sandbox.meteroid.simulator import SUB_STATUSES, AliasConflict, error

if TYPE_CHECKING:
    from crmsync.sandbox.meteroid.simulator import MeteroidSimulator

SUBSCRIPTION_LIST_DROP = ("components", "add_ons", "applied_coupons", "entitlements", "checkout_url")


class BadQuery(ValueError):
    pass


def _int_param(request: Request, name: str, default: int, lo: int, hi: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadQuery(f"{name}: invalid integer {raw!r}") from exc
    if value < lo or (hi is not None and value > hi):
        raise BadQuery(f"{name}: must be between {lo} and {hi}")
    return value


def _list_param(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(name) + request.query_params.getlist(f"{name}[]")
    out: list[str] = []
    for v in values:
        out.extend(x for x in v.split(",") if x)
    return out


def _order(request: Request, allowed: Sequence[str]) -> tuple[str, bool] | None:
    raw = request.query_params.get("order_by")
    if not raw:
        return None
    column, _, direction = raw.partition(".")
    if column not in allowed or direction not in ("asc", "desc", ""):
        raise BadQuery(f"order_by: expected one of {', '.join(allowed)} with .asc or .desc")
    return column, direction == "desc"


def page_of(request: Request, items: Sequence[Any], build: Callable[[Any], dict[str, Any]],
            order: tuple[str, bool] | None = None) -> Response:
    page = _int_param(request, "page", 0, 0, None)
    per_page = _int_param(request, "per_page", 10, 1, 100)
    if order is not None:
        column, desc = order
        rows = sorted((build(i) for i in items), key=lambda r: (r.get(column) is None, r.get(column) or ""),
                      reverse=desc)
        data = rows[page * per_page:(page + 1) * per_page]
    else:
        data = [build(i) for i in items[page * per_page:(page + 1) * per_page]]
    total = len(items)
    return json_response({"data": data, "pagination_meta": {
        "page": page, "per_page": per_page, "total_items": total, "total_pages": -(-total // per_page)}})


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = exact_json(raw) if raw else {}
    except ValueError as exc:
        raise RequestError(f"invalid JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise RequestError("expected a JSON object")
    return body


def build_routes(sim: MeteroidSimulator) -> list[Route]:
    cat = sim.catalog

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)  # type: ignore[no-any-return]
            except (RequestError, BadQuery) as exc:
                return error(400, "BAD_REQUEST", str(exc))
            except AliasConflict as exc:
                return error(409, "CONFLICT", str(exc))
            except LookupError as exc:
                return error(404, "NOT_FOUND", str(exc).strip("'\""))
        return endpoint

    # --- customers ------------------------------------------------------------------------------
    async def customers(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            with sim.lock:
                rec = sim.create_customer(body)
            return await sim.after_store(request.url.path, json_response(rec, 201))
        with sim.lock:
            order = _order(request, ("name", "email", "alias", "created_at"))
            archived = request.query_params.get("archived") == "true"
            search = (request.query_params.get("search") or "").lower()
            seq = [n for n in reversed(sim._cust_seq) if (n in sim._cust_archived) == archived]
            if search:
                seq = [n for n in seq if search in sim.customer(n)["name"].lower()
                       or search in (sim.customer(n).get("alias") or "").lower()]
            return page_of(request, seq, sim.customer, order)

    async def customer(request: Request) -> Response:
        key = request.path_params["id_or_alias"]
        with sim.lock:
            number = sim._customer_number(key)
            if number is None or (number in sim._cust_archived and request.method != "GET"):
                raise LookupError(f"customer {key} not found")
            if request.method == "GET":
                return json_response(sim.customer(number))
            if request.method == "DELETE":
                sim.archive_customer(number)
                return Response(status_code=204)
        body = await _body(request)
        with sim.lock:
            rec = sim.update_customer(number, body, replace=request.method == "PUT")
            return json_response(rec)

    # --- plans, products, coupons ---------------------------------------------------------------
    async def plans(request: Request) -> Response:
        statuses = set(_list_param(request, "status"))
        types = set(_list_param(request, "plan_type"))
        family = request.query_params.get("product_family_id")
        search = (request.query_params.get("search") or "").lower()
        rows = []
        for d in cat.plan_defs:
            plan = cat.plan(d, d.active_version)
            if statuses and plan["status"] not in statuses:
                continue
            if types and plan["plan_type"] not in types:
                continue
            if family and plan["product_family"]["id"] != family:
                continue
            if search and search not in plan["name"].lower():
                continue
            rows.append(plan)
        return page_of(request, rows, lambda r: r, _order(request, ("name", "created_at")))

    async def plan(request: Request) -> Response:
        plan_id = request.path_params["plan_id"]
        rec = sim._plan(plan_id, request.query_params.get("version"))
        if rec is None:
            raise LookupError(f"plan {plan_id} (version {request.query_params.get('version')}) not found")
        return json_response(rec)

    async def plan_versions(request: Request) -> Response:
        d = cat.plan_by_id.get(request.path_params["plan_id"])
        if d is None:
            raise LookupError(f"plan {request.path_params['plan_id']} not found")
        return page_of(request, cat.version_summaries(d), lambda r: r)

    async def products(request: Request) -> Response:
        family = request.query_params.get("product_family_id")
        search = (request.query_params.get("search") or "").lower()
        rows = [p for p in cat.products if (not family or p["product_family_id"] == family)
                and (not search or search in p["name"].lower())]
        return page_of(request, rows, lambda r: r, _order(request, ("name", "created_at")))

    async def product(request: Request) -> Response:
        for p in cat.products:
            if p["id"] == request.path_params["product_id"]:
                return json_response(p)
        raise LookupError(f"product {request.path_params['product_id']} not found")

    async def families(request: Request) -> Response:
        search = (request.query_params.get("search") or "").lower()
        rows = [f for f in cat.families if not search or search in f["name"].lower()]
        return page_of(request, rows, lambda r: r, _order(request, ("name",)))

    async def coupons(request: Request) -> Response:
        flt = request.query_params.get("filter") or "ALL"
        if flt not in ("ALL", "ACTIVE", "INACTIVE", "ARCHIVED"):
            raise BadQuery(f"filter: unknown variant {flt!r}")
        search = (request.query_params.get("search") or "").lower()
        rows = []
        for c in cat.coupons:
            active = cat.coupon_is_active(c, sim.world.now)
            if (flt == "ACTIVE" and not active) or (flt == "INACTIVE" and active):
                continue
            if flt == "ARCHIVED" and not c["archived_at"]:
                continue
            if search and search not in c["code"].lower():
                continue
            rows.append(c)
        return page_of(request, rows, lambda r: r, _order(request, ("code", "created_at")))

    async def coupon(request: Request) -> Response:
        for c in cat.coupons:
            if c["id"] == request.path_params["coupon_id"]:
                return json_response(c)
        raise LookupError(f"coupon {request.path_params['coupon_id']} not found")

    # --- subscriptions ----------------------------------------------------------------------------
    def listed(number: int) -> dict[str, Any]:
        rec = sim.subscription(number)
        return {k: v for k, v in rec.items() if k not in SUBSCRIPTION_LIST_DROP}

    def filtered_subscriptions(request: Request, customer_key: str | None) -> list[int]:
        statuses = set(_list_param(request, "statuses"))
        unknown = statuses - set(SUB_STATUSES)
        if unknown:
            raise BadQuery(f"statuses: unknown variant {sorted(unknown)[0]!r}")
        plan_id = request.query_params.get("plan_id")
        if customer_key:
            owner = sim._customer_number(customer_key)
            seq = list(reversed(sim._subs_by_customer.get(owner, []))) if owner is not None else []
        else:
            seq = list(reversed(sim._sub_seq))
        if plan_id:
            seq = [n for n in seq if sim.subscription(n)["plan_id"] == plan_id]
        if statuses:
            seq = [n for n in seq if sim.subscription(n)["status"] in statuses]
        return seq

    async def subscriptions(request: Request) -> Response:
        if request.method == "POST":
            body = await _body(request)
            with sim.lock:
                rec = sim.create_subscription(body)
            return await sim.after_store(request.url.path, json_response(rec, 201))
        with sim.lock:
            order = _order(request, ("customer_name", "plan_name", "mrr_cents", "billing_start_date", "end_date",
                                     "status", "created_at"))
            seq = filtered_subscriptions(request, request.query_params.get("customer_id"))
            return page_of(request, seq, listed, order)

    async def subscription(request: Request) -> Response:
        key = request.path_params["subscription_id"]
        with sim.lock:
            number = sim._sub_number(key)
            if number is None:
                raise LookupError(f"subscription {key} not found")
            if request.method == "GET":
                return json_response(sim.subscription(number))
        body = await _body(request)
        with sim.lock:
            rec = sim.subscription(number)
            for field in ("auto_advance_invoices", "charge_automatically", "invoice_memo", "net_terms",
                          "purchase_order"):
                if field in body:
                    rec[field] = body[field]
            return json_response({"subscription": rec})

    async def cancel(request: Request) -> Response:
        key = request.path_params["subscription_id"]
        body = await _body(request)
        with sim.lock:
            number = sim._sub_number(key)
            if number is None:
                raise LookupError(f"subscription {key} not found")
            rec = sim.subscription(number)
            effective = body.get("effective_date") or rec["current_period_end"]
            rec["end_date"] = effective
            if effective <= sim.today.isoformat():
                rec["status"] = "CANCELLED"
            return json_response({"subscription": listed(number)})

    # --- invoices -----------------------------------------------------------------------------------
    def invoice(number: int) -> dict[str, Any]:
        sub = sim.subscription(number)
        customer = sim.customer(parse_id("cus", sub["customer_id"], sim.salt) or 0)
        total = sum(_component_period_cents(c) for c in sub["components"])
        state = sim.invoice_state(number)
        return {
            "id": sub["id"].replace("sub_", "inv_"), "invoice_number": f"INV-{number:08d}", "status": state["status"],
            "customer_id": sub["customer_id"], "subscription_id": sub["id"], "currency": sub["currency"],
            "invoice_date": state["invoice_date"], "due_date": state["due_date"], "subtotal": total,
            "subtotal_recurring": total, "tax_amount": 0, "total": total,
            "amount_due": 0 if state["payment_status"] == "PAID" else total,
            "applied_credits": 0, "line_items": [{
                "name": c["name"], "amount_total": _component_period_cents(c), "start_date": sub["current_period_start"],
                "end_date": sub["current_period_end"] or sub["current_period_start"], "tax_rate": "0",
                "sub_line_items": []} for c in sub["components"]],
            "tax_breakdown": [], "transactions": [], "payment_status": state["payment_status"],
            "paid_at": state["paid_at"], "finalized_at": state["finalized_at"],
            "customer_details": {"id": customer["id"], "name": customer["name"], "alias": customer.get("alias"),
                                 "email": customer.get("billing_email"), "snapshot_at": sub["created_at"]},
            "coupons": [], "invoice_type": "RECURRING", "net_terms": sub["net_terms"], "created_at": sub["created_at"],
            "purchase_order": sub["purchase_order"], "custom_properties": {}, "tax_inclusive": False,
        }

    async def invoices(request: Request) -> Response:
        statuses = set(_list_param(request, "statuses"))
        with sim.lock:
            sub_key = request.query_params.get("subscription_id")
            if sub_key:
                number = sim._sub_number(sub_key)
                seq = [number] if number is not None else []
            else:
                seq = filtered_subscriptions_for_invoices(request)
            if statuses:
                seq = [n for n in seq if sim.invoice_state(n)["status"] in statuses]
            return page_of(request, seq, invoice)

    # --- metrics and usage ------------------------------------------------------------------------
    async def metrics(request: Request) -> Response:
        return page_of(request, sim.metrics, lambda r: r)

    async def subscription_usage(request: Request) -> Response:
        key = request.path_params["subscription_id"]
        with sim.lock:
            number = sim._sub_number(key)
            if number is None:
                raise LookupError(f"subscription {key} not found")
            sub = sim.subscription(number)
            start = request.query_params.get("start_date") or sub["current_period_start"]
            end = request.query_params.get("end_date") or sub["current_period_end"] or sub["current_period_start"]
            try:
                start_d, end_d = date_param(start, "start_date"), date_param(end, "end_date")
            except ValueError as exc:
                raise BadQuery(str(exc)) from None
            if end_d < start_d:
                raise BadQuery("end_date must not be before start_date")
            wanted = request.query_params.get("metric_id")
            usage = [u for u in sim.usage_of(number) if not wanted or u["metric_id"] == wanted]
            return json_response({"period_start": start_d.isoformat(), "period_end": end_d.isoformat(),
                                  "usage": usage})

    def filtered_subscriptions_for_invoices(request: Request) -> list[int]:
        key = request.query_params.get("customer_id")
        if key:
            owner = sim._customer_number(key)
            return list(reversed(sim._subs_by_customer.get(owner, []))) if owner is not None else []
        return list(reversed(sim._sub_seq))

    g = guarded
    return [
        Route("/api/v1/customers", g(customers), methods=["GET", "POST"]),
        Route("/api/v1/customers/{id_or_alias}", g(customer), methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/api/v1/plans", g(plans), methods=["GET"]),
        Route("/api/v1/plans/{plan_id}", g(plan), methods=["GET"]),
        Route("/api/v1/plans/{plan_id}/versions", g(plan_versions), methods=["GET"]),
        Route("/api/v1/products", g(products), methods=["GET"]),
        Route("/api/v1/products/{product_id}", g(product), methods=["GET"]),
        Route("/api/v1/product_families", g(families), methods=["GET"]),
        Route("/api/v1/coupons", g(coupons), methods=["GET"]),
        Route("/api/v1/coupons/{coupon_id}", g(coupon), methods=["GET"]),
        Route("/api/v1/subscriptions", g(subscriptions), methods=["GET", "POST"]),
        Route("/api/v1/subscriptions/{subscription_id}", g(subscription), methods=["GET", "PATCH"]),
        Route("/api/v1/subscriptions/{subscription_id}/cancel", g(cancel), methods=["POST"]),
        Route("/api/v1/invoices", g(invoices), methods=["GET"]),
        Route("/api/v1/metrics", g(metrics), methods=["GET"]),
        Route("/api/v1/usage/subscription/{subscription_id}", g(subscription_usage), methods=["GET"]),
    ]


def date_param(value: str, name: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name}: invalid date {value[:20]!r} (expected YYYY-MM-DD)") from None


def _component_period_cents(component: dict[str, Any]) -> int:
    from decimal import Decimal

    fee = component["fee"]
    if fee["type"] == "SLOT":
        amount = Decimal(fee["unit_rate"]) * fee["initial_slots"]
    elif fee["type"] in ("RECURRING", "ONE_TIME"):
        amount = Decimal(fee["rate"]) * fee.get("quantity", 1)
    else:
        amount = Decimal(fee.get("rate", "0"))
    return int((amount * 100).to_integral_value())
