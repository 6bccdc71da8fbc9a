"""MeteroidSimulator: Meteroid's public REST API (``/api/v1``) over the seeded World.

What the real server does and this one copies: bearer API keys, ``page``/``per_page``/``order_by``
paging with ``pagination_meta``, ``{"code","message"}`` errors, prefixed base62 ids, decimal
strings for plan prices and ``mrr_cents`` on subscriptions, alias uniqueness (409) and the
"alias must not look like an id" rule, coupon/price currency checks against the plan version,
and no idempotency-key handling at all: a retried create is a second object.

Seeded state is compact: won deals whose handoff is done already have a customer (per account)
and a subscription; records are built when first touched, so a World of a million deals costs a
scan of its deals and two integer lists. ``MeteroidKnobs.fail_after_store`` makes the next create
fail *after* it was stored (a 500, a dropped connection, or a hang until the client is killed).
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crmsync.sandbox.core import Knobs, RateLimiter, Simulator, SimulatorHooks, json_response
from crmsync.sandbox.meteroid.catalog import PERIOD_MONTHS, Catalog, iso
from crmsync.sandbox.meteroid.fees import RequestError, main_period, mrr_cents, subscription_components
from crmsync.sandbox.meteroid.ids import ID_PREFIXES, make_id, parse_id
from crmsync.sandbox.world import CURRENCY, STAGES, World

DEFAULT_API_KEY = "mtr_sandbox_0123456789abcdef"
SEAT_METRIC = "active_seats"  # the billable metric the seat (SLOT) components are measured by
CREATED_BASE = 1_000_000_000  # numbers of records created through the API start here
SUB_STATUSES = ("PENDING_ACTIVATION", "PENDING_CHARGE", "TRIAL_ACTIVE", "ACTIVE", "TRIAL_EXPIRED", "PAUSED",
                "SUSPENDED", "CANCELLED", "COMPLETED", "SUPERSEDED", "ERRORED")
_ID_IN_PATH = re.compile(r"/(cus|plan|plv|sub|prd|pf|price|cou|inv|bm)_[0-9A-Za-z]{22}(?=/|$)")


@dataclass
class MeteroidKnobs(Knobs):
    """Knobs plus the fail-after-store fault: ``"500"``, ``"drop"`` or ``"hang"`` (for SIGKILL tests)."""

    fail_after_store: str | None = None
    fail_after_store_path: str = r"^/api/v1/(customers|subscriptions)$"
    fail_after_store_times: int = 1
    hang_s: float = 60.0


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "message": message}, status, headers)


class MeteroidHooks(SimulatorHooks):
    name = "meteroid"

    def __init__(self, api_keys: set[str]) -> None:
        self.api_keys = api_keys

    def route_of(self, method: str, path: str) -> str:
        return f"{method} " + _ID_IN_PATH.sub("/{id}", path)

    def authenticate(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token not in self.api_keys:
            return None
        return hashlib.sha256(token.encode()).hexdigest()[:8]

    def unauthorized(self) -> Response:
        return error(401, "UNAUTHORIZED", "missing or invalid API key")

    def rate_limited(self, which: str, retry_after: float) -> Response:
        return error(429, "TOO_MANY_REQUESTS", f"rate limit exceeded ({which})",
                     {"Retry-After": str(int(retry_after) or 1)})

    def server_error(self, status: int) -> Response:
        return error(status, "INTERNAL_SERVER_ERROR", "internal server error")

    def limit_headers(self, limiter: RateLimiter) -> dict[str, str]:
        return {}


class DroppedConnection(Response):
    """Headers promising a body that never comes: the client sees the connection cut."""

    def __init__(self) -> None:
        super().__init__(b"")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"id":"', "more_body": True})
        raise ConnectionAbortedError("sandbox: connection dropped after the create was stored")


class MeteroidSimulator(Simulator):
    name = "meteroid"

    def __init__(self, world: World, knobs: Knobs | None = None, *, api_key: str = DEFAULT_API_KEY,
                 alias_for: Callable[[int], str] | None = None, salt: int = 0) -> None:
        if knobs is not None and not isinstance(knobs, MeteroidKnobs):
            converted = MeteroidKnobs()
            converted.update(knobs.to_dict())
            knobs = converted
        super().__init__(knobs or MeteroidKnobs())
        self.knobs: MeteroidKnobs
        self.world = world
        self.salt = salt
        self.api_key = api_key
        self.hooks = MeteroidHooks({api_key})
        self.alias_for = alias_for or (lambda account_id: f"world-{account_id}")
        self.catalog = Catalog(world.now, salt)
        self.invoicing_entity_id = make_id("ive", 1, salt)
        self.today = world.now.date()
        # Seeded (won, handed-off) deals: numbers only; records are built when touched.
        seed_deals: list[int] = []
        subs_by_account: dict[int, list[int]] = {}
        won = {i for i, s in enumerate(STAGES) if s.is_won}
        for deal in world.deals:
            if deal.stage in won and deal.handoff_done and deal.contract_start is not None:
                seed_deals.append(deal.id)
                subs_by_account.setdefault(deal.account_id, []).append(deal.id)
        self._cust_seq: list[int] = sorted(subs_by_account)
        self._cust: dict[int, dict[str, Any]] = {}
        self._cust_archived: set[int] = set()
        self._alias_index: dict[str, int] | None = None
        self._sub_seq: list[int] = seed_deals
        self._sub: dict[int, dict[str, Any]] = {}
        self._subs_by_customer: dict[int, list[int]] = subs_by_account
        self._seed_cust = set(self._cust_seq)
        self._seed_sub = set(seed_deals)
        self._next = CREATED_BASE
        # billable metrics and their usage per subscription, and invoice payment states (the user
        # handle sets them: ``set_usage``, ``set_invoice``)
        self.metrics: list[dict[str, Any]] = [
            {"id": make_id("bm", 1, salt), "name": "Active seats", "code": SEAT_METRIC, "aggregation_type": "MAX",
             "aggregation_key": "seats", "product_family_id": make_id("pf", 1, salt), "product_id": None,
             "created_at": iso(world.now - dt.timedelta(days=700)), "archived_at": None, "description": None,
             "segmentation_matrix": None, "unit_conversion": None, "usage_group_key": None},
            {"id": make_id("bm", 2, salt), "name": "API calls", "code": "api_calls", "aggregation_type": "COUNT",
             "aggregation_key": None, "product_family_id": make_id("pf", 1, salt), "product_id": None,
             "created_at": iso(world.now - dt.timedelta(days=700)), "archived_at": None, "description": None,
             "segmentation_matrix": None, "unit_conversion": None, "usage_group_key": None},
        ]
        self._usage: dict[tuple[int, str], Decimal] = {}
        self._invoices: dict[int, dict[str, Any]] = {}

    # --- ids and look-ups ---------------------------------------------------------------------
    def _new_number(self) -> int:
        self._next += 1
        return self._next

    def _customer_number(self, id_or_alias: str) -> int | None:
        number = parse_id("cus", id_or_alias, self.salt)
        if number is not None:
            return number if self._customer_exists(number) else None
        return self._aliases().get(id_or_alias)

    def _customer_exists(self, number: int) -> bool:
        return number in self._seed_cust or number in self._cust

    def _aliases(self) -> dict[str, int]:
        if self._alias_index is None:
            index = {self.alias_for(n): n for n in self._seed_cust if n not in self._cust}
            for n, rec in self._cust.items():
                if rec.get("alias"):
                    index[rec["alias"]] = n
            self._alias_index = index
        return self._alias_index

    def customer(self, number: int) -> dict[str, Any]:
        rec = self._cust.get(number)
        if rec is None:
            account = self.world.accounts[number - 1]
            email = f"billing@{account.domain}"
            rec = {
                "id": make_id("cus", number, self.salt), "name": account.name, "alias": self.alias_for(number),
                "currency": CURRENCY, "invoicing_emails": [email], "billing_email": email,
                "invoicing_entity_id": self.invoicing_entity_id, "custom_taxes": [],
                "billing_address": {"line1": f"{number} Main Street", "line2": None, "city": None, "state": None,
                                    "zip_code": None, "country": account.country},
                "shipping_address": None, "phone": None, "vat_number": None, "connected_account_id": None,
                "custom_properties": {}, "preferred_locales": [], "is_tax_exempt": False,
                "created_at": iso(self.world.now - dt.timedelta(days=400)),
            }
            self._cust[number] = rec
        return rec

    def subscription(self, number: int) -> dict[str, Any]:
        rec = self._sub.get(number)
        if rec is None:
            rec = self._seed_subscription(number)
            self._sub[number] = rec
        return rec

    def _seed_subscription(self, deal_id: int) -> dict[str, Any]:
        deal = self.world.deals[deal_id - 1]
        lines = self.world.line_items(deal)
        first = lines[0]
        plan_id = self.catalog.plan_for_code[first.product.code]
        plan = self._plan(plan_id, None)
        assert plan is not None
        comp = plan["price_components"][0]
        params: dict[str, Any] = {"billing_period": first.billing_period}
        if comp["fee"]["type"] == "SLOT":
            params["initial_slot_count"] = int(first.quantity)
        body = {"customer_id_or_alias": make_id("cus", deal.account_id, self.salt), "plan_id": plan_id,
                "start_date": deal.contract_start.isoformat() if deal.contract_start else None,
                "end_date": deal.contract_end.isoformat() if deal.contract_end else None,
                "activation_condition": "ON_START", "net_terms": 30, "purchase_order": f"PO-{deal.id}",
                "price_components": {"parameterized_components": [{"component_id": comp["id"], "parameters": params}]}}
        created = deal.stage_changed_at
        return self._build_subscription(deal_id, body, created)

    # --- usage and invoices ----------------------------------------------------------------------
    def _draw(self, number: int, what: str) -> float:
        digest = hashlib.sha256(f"{self.world.seed}:{self.salt}:{number}:{what}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    def seats_of(self, number: int) -> int | None:
        for comp in self.subscription(number)["components"]:
            if comp["fee"]["type"] == "SLOT":
                return int(comp["fee"]["initial_slots"])
        return None

    def usage_of(self, number: int) -> list[dict[str, Any]]:
        """This period's usage per metric (MetricUsage), seeded: most customers use 30-90% of their
        seats, about one in six is above 90% (expansion), a few are over their seat count."""
        out: list[dict[str, Any]] = []
        seats = self.seats_of(number)
        for metric in self.metrics:
            code = str(metric["code"])
            value = self._usage.get((number, code))
            if value is None:
                draw = self._draw(number, code)
                if code == SEAT_METRIC:
                    if seats is None:
                        continue
                    share = 0.3 + 0.6 * draw / 0.84 if draw < 0.84 else 0.9 + (draw - 0.84) * 2.5
                    value = Decimal(max(0, round(seats * share)))
                else:
                    value = Decimal(int(20_000 * draw))
            out.append({"metric_id": metric["id"], "metric_name": metric["name"], "metric_code": code,
                        "total_value": str(value), "grouped_usage": []})
        return out

    def set_usage(self, subscription_id: str, metric_code: str, value: Decimal | int | str) -> None:
        number = self._sub_number(subscription_id)
        if number is None:
            raise KeyError(subscription_id)
        with self.lock:
            self._usage[(number, metric_code)] = Decimal(str(value))

    def invoice_state(self, number: int) -> dict[str, Any]:
        """The subscription's latest invoice: issued at the period start, due after net terms;
        seeded as paid a few days after issue, about one in eight unpaid (overdue once due)."""
        state = self._invoices.get(number)
        if state is None:
            sub = self.subscription(number)
            issued = dt.date.fromisoformat(sub["current_period_start"])
            if issued > self.today:
                issued = self.today
            due = issued + dt.timedelta(days=int(sub["net_terms"] or 0))
            unpaid = self._draw(number, "invoice") < 0.125
            paid_at = None if unpaid else dt.datetime.combine(
                min(self.today, issued + dt.timedelta(days=3)), dt.time(9), dt.UTC)
            state = {"status": "FINALIZED", "payment_status": "UNPAID" if unpaid else "PAID",
                     "invoice_date": issued.isoformat(), "due_date": due.isoformat(),
                     "paid_at": iso(paid_at) if paid_at else None,
                     "finalized_at": iso(dt.datetime.combine(issued, dt.time(0), dt.UTC))}
            self._invoices[number] = state
        return state

    def set_invoice(self, subscription_id: str, **fields: Any) -> None:
        number = self._sub_number(subscription_id)
        if number is None:
            raise KeyError(subscription_id)
        with self.lock:
            self.invoice_state(number).update(fields)

    # --- plans --------------------------------------------------------------------------------
    def _plan(self, plan_id: str, version: str | int | None) -> dict[str, Any] | None:
        d = self.catalog.plan_by_id.get(plan_id)
        if d is None:
            return None
        number = self.catalog.resolve_version(d, version)
        if number is None:
            return None
        return self.catalog.plan(d, number)

    # --- customers ------------------------------------------------------------------------------
    def _check_alias(self, alias: Any, own: int | None) -> None:
        if alias is None:
            return
        if not isinstance(alias, str) or not alias.strip():
            raise RequestError("alias: must be a non-empty string")
        if any(alias.startswith(p) for p in ID_PREFIXES):
            raise RequestError("alias: must not start with an id prefix")
        holder = self._aliases().get(alias)
        if holder is not None and holder != own:
            raise AliasConflict(f"a customer with alias {alias!r} already exists")

    @staticmethod
    def _check_customer_fields(body: dict[str, Any], required: Iterable[str]) -> None:
        for key in required:
            if body.get(key) is None:
                raise RequestError(f"missing field `{key}`")
        if "name" in body and body["name"] is not None and not isinstance(body["name"], str):
            raise RequestError("name: expected a string")
        currency = body.get("currency")
        if currency is not None and not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
            raise RequestError(f"currency: unknown variant {currency!r}")
        emails = body.get("invoicing_emails")
        if emails is not None and not (isinstance(emails, list) and all(isinstance(e, str) for e in emails)):
            raise RequestError("invoicing_emails: expected a list of strings")
        taxes = body.get("custom_taxes")
        if taxes is not None and not isinstance(taxes, list):
            raise RequestError("custom_taxes: expected a list")

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_customer_fields(body, ("name", "invoicing_emails", "currency", "custom_taxes"))
        self._check_alias(body.get("alias"), None)
        number = self._new_number()
        rec = {
            "id": make_id("cus", number, self.salt), "name": body["name"], "alias": body.get("alias"),
            "currency": body["currency"], "invoicing_emails": list(body["invoicing_emails"]),
            "billing_email": body.get("billing_email"),
            "invoicing_entity_id": body.get("invoicing_entity_id") or self.invoicing_entity_id,
            "custom_taxes": list(body["custom_taxes"]), "billing_address": body.get("billing_address"),
            "shipping_address": body.get("shipping_address"), "phone": body.get("phone"),
            "vat_number": body.get("vat_number"), "connected_account_id": body.get("connected_account_id"),
            "custom_properties": body.get("custom_properties") or {}, "preferred_locales": [],
            "is_tax_exempt": bool(body.get("is_tax_exempt") or False), "created_at": iso(dt.datetime.now(dt.UTC)),
        }
        self._cust[number] = rec
        self._cust_seq.append(number)
        if rec["alias"]:
            self._aliases()[rec["alias"]] = number
        return rec

    def update_customer(self, number: int, body: dict[str, Any], *, replace: bool) -> dict[str, Any]:
        if replace:
            self._check_customer_fields(body, ("name", "invoicing_emails", "currency", "invoicing_entity_id",
                                               "custom_taxes"))
        else:
            self._check_customer_fields(body, ())
        rec = self.customer(number)
        if "alias" in body:
            self._check_alias(body["alias"], number)
        old_alias = rec.get("alias")
        allowed = ("name", "alias", "currency", "invoicing_emails", "billing_email", "invoicing_entity_id",
                   "custom_taxes", "billing_address", "shipping_address", "phone", "vat_number", "is_tax_exempt")
        for key in allowed:
            if key in body and (replace or body[key] is not None or key == "alias"):
                rec[key] = body[key]
        if rec.get("alias") != old_alias:
            index = self._aliases()
            if old_alias:
                index.pop(old_alias, None)
            if rec.get("alias"):
                index[rec["alias"]] = number
        return rec

    def archive_customer(self, number: int) -> None:
        rec = self.customer(number)
        self._cust_archived.add(number)
        if rec.get("alias"):
            self._aliases().pop(rec["alias"], None)

    # --- subscriptions --------------------------------------------------------------------------
    def _build_subscription(self, number: int, body: dict[str, Any], created: dt.datetime) -> dict[str, Any]:
        for key in ("plan_id", "customer_id_or_alias", "start_date", "activation_condition"):
            if body.get(key) is None:
                raise RequestError(f"missing field `{key}`")
        if body["activation_condition"] not in ("ON_START", "ON_CHECKOUT", "MANUAL"):
            raise RequestError(f"activation_condition: unknown variant {body['activation_condition']!r}")
        customer_number = self._customer_number(str(body["customer_id_or_alias"]))
        if customer_number is None or customer_number in self._cust_archived:
            raise LookupError(f"customer {body['customer_id_or_alias']} not found")
        customer = self.customer(customer_number)
        plan = self._plan(str(body["plan_id"]), body.get("version"))
        if plan is None:
            raise LookupError(f"plan {body['plan_id']} (version {body.get('version')}) not found")
        try:
            start = dt.date.fromisoformat(str(body["start_date"]))
            end = dt.date.fromisoformat(str(body["end_date"])) if body.get("end_date") else None
        except ValueError as exc:
            raise RequestError(f"invalid date: {exc}") from exc
        if end is not None and end <= start:
            raise RequestError("end_date must be after start_date")
        currency = plan["currency"]
        components = subscription_components(plan, body.get("price_components"), currency)
        coupons = []
        for code in body.get("coupon_codes") or []:
            coupon = self.catalog.coupon_by_code(code)
            if coupon is None:
                raise RequestError(f"coupon {code!r} not found")
            if not self.catalog.coupon_is_active(coupon, dt.datetime.combine(start, dt.time(), dt.UTC)):
                raise RequestError(f"coupon {code!r} is expired or disabled")
            if coupon["discount"]["type"] == "FIXED" and coupon["discount"]["currency"] != currency:
                raise RequestError(f"coupon {code!r} currency differs from the plan version's {currency}")
            coupons.append(coupon)
        period = main_period(components)
        months = PERIOD_MONTHS[period]
        period_end = _add_months(start, months) - dt.timedelta(days=1)
        if end is not None and period_end > end:
            period_end = end
        if end is not None and end < self.today:
            status = "COMPLETED"
        elif body["activation_condition"] == "ON_START" and start <= self.today:
            status = "ACTIVE"
        else:
            status = "PENDING_ACTIVATION"
        created_s = iso(created)
        return {
            "id": make_id("sub", number, self.salt), "customer_id": customer["id"], "customer_alias": customer.get("alias"),
            "customer_name": customer["name"], "billing_day_anchor": int(body.get("billing_day_anchor") or start.day),
            "currency": currency, "plan_id": plan["id"], "plan_name": plan["name"],
            "plan_description": plan.get("description"), "plan_version_id": plan["version_id"],
            "plan_version": plan["version"], "status": status, "start_date": start.isoformat(),
            "end_date": end.isoformat() if end else None, "billing_start_date": start.isoformat(),
            "current_period_start": start.isoformat(), "current_period_end": period_end.isoformat(),
            "net_terms": int(plan["net_terms"] if body.get("net_terms") is None else body["net_terms"]),
            "mrr_cents": mrr_cents(components), "period": period, "created_at": created_s,
            "activated_at": created_s if status == "ACTIVE" else None,
            "auto_advance_invoices": bool(body.get("auto_advance_invoices", True)),
            "charge_automatically": bool(body.get("charge_automatically", False)),
            "invoice_memo": body.get("invoice_memo"), "purchase_order": body.get("purchase_order"),
            "payment_methods_config": None, "trial_duration": None, "checkout_url": None,
            "custom_properties": body.get("custom_properties") or {}, "tax_inclusive": False,
            "components": components, "add_ons": [], "entitlements": [],
            "applied_coupons": [_applied(c, number, n, created_s, self.salt) for n, c in enumerate(coupons)],
        }

    def create_subscription(self, body: dict[str, Any]) -> dict[str, Any]:
        number = self._new_number()
        rec = self._build_subscription(number, body, dt.datetime.now(dt.UTC))
        self._sub[number] = rec
        self._sub_seq.append(number)
        owner = parse_id("cus", rec["customer_id"], self.salt)
        assert owner is not None
        self._subs_by_customer.setdefault(owner, []).append(number)
        return rec

    def _sub_number(self, sub_id: str) -> int | None:
        number = parse_id("sub", sub_id, self.salt)
        if number is None or not (number in self._seed_sub or number in self._sub):
            return None
        return number

    # --- the user handle ------------------------------------------------------------------------
    def create(self, object_name: str, fields: dict[str, Any]) -> str:
        with self.lock:
            if object_name == "customers":
                return str(self.create_customer(fields)["id"])
            if object_name == "subscriptions":
                return str(self.create_subscription(fields)["id"])
        raise KeyError(object_name)

    def edit(self, object_name: str, record_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            if object_name == "customers":
                number = self._customer_number(record_id)
                if number is None:
                    raise KeyError(record_id)
                self.update_customer(number, fields, replace=False)
                return
            if object_name == "subscriptions":
                sub = self._sub_number(record_id)
                if sub is None:
                    raise KeyError(record_id)
                rec = self.subscription(sub)
                for key, value in fields.items():
                    if key not in rec:
                        raise ValueError(f"unknown subscription field {key!r}")
                    rec[key] = value
                return
        raise KeyError(object_name)

    def delete(self, object_name: str, record_id: str, *, hard: bool = False) -> None:
        with self.lock:
            if object_name != "customers":
                raise KeyError(object_name)
            number = self._customer_number(record_id)
            if number is None:
                raise KeyError(record_id)
            self.archive_customer(number)

    def truth(self, object_name: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            if object_name == "customers":
                return [dict(self.customer(n)) for n in self._cust_seq
                        if include_deleted or n not in self._cust_archived]
            if object_name == "subscriptions":
                return [dict(self.subscription(n)) for n in self._sub_seq]
            if object_name == "plans":
                return [self.catalog.plan(d, d.active_version) for d in self.catalog.plan_defs]
            if object_name == "products":
                return [dict(p) for p in self.catalog.products]
            if object_name == "coupons":
                return [dict(c) for c in self.catalog.coupons]
        raise KeyError(object_name)

    # --- HTTP -------------------------------------------------------------------------------------
    def api_routes(self) -> list[Any]:
        from crmsync.sandbox.meteroid.routes import build_routes

        return build_routes(self)

    def take_fail_after_store(self, path: str) -> str | None:
        k = self.knobs
        if k.fail_after_store and k.fail_after_store_times > 0 and re.search(k.fail_after_store_path, path):
            k.fail_after_store_times -= 1
            return k.fail_after_store
        return None

    async def after_store(self, path: str, response: Response) -> Response:
        fault = self.take_fail_after_store(path)
        if fault == "500":
            return self.hooks.server_error(500)
        if fault == "drop":
            return DroppedConnection()
        if fault == "hang":
            await asyncio.sleep(self.knobs.hang_s)
        return response


class AliasConflict(ValueError):
    pass


def _applied(coupon: dict[str, Any], sub_number: int, n: int, created: str, salt: int) -> dict[str, Any]:
    return {
        "coupon": {k: coupon[k] for k in ("id", "code", "description", "discount", "reusable", "disabled",
                                          "expires_at", "recurring_value", "redemption_limit")},
        "applied_coupon": {"id": make_id("acp", sub_number * 10 + n, salt), "coupon_id": coupon["id"],
                           "is_active": True, "created_at": created, "applied_amount": None,
                           "applied_count": 0, "last_applied_at": None},
    }


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
