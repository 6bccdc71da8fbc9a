"""MeteroidConnector: the billing catalog, customers and subscriptions through the ``meteroid`` SDK.

Reads go through the SDK (its retries are safe for GETs); the raw JSON of each answer is what the
connector hands on, so a field the pinned SDK does not model is not lost. Creates are sent with
``max_retries=0``: Meteroid has no idempotency handling, so a create that failed in flight is an
``AmbiguousCreate`` and the caller looks up (customer by alias, subscription by customer + plan +
start date + marker) before sending it again. No database, no sleeping policy here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import meteroid
from meteroid.models import CreateSubscriptionComponents

from crmsync.activity import InvoiceFact, MeterReading
from crmsync.connectors.base import FatalError, Page, PushItem, PushResult, Quarantined, Usage
from crmsync.connectors.mapping import ObjectMapping
from crmsync.connectors.meteroid.errors import NotFound, classify
from crmsync.model import ModelError, Product, Record, now_utc, parse_decimal, parse_timestamp
from crmsync.settings import ConnectionSettings

PER_PAGE = 100
OBJECTS = ("products", "plans", "product_families", "coupons", "customers", "subscriptions", "invoices", "metrics")


class MeteroidConnector:
    kind = "meteroid"

    def __init__(self, conn: ConnectionSettings, *, http_client: httpx.Client | None = None) -> None:
        api_key = conn.secret("api_key")
        if not api_key:
            raise FatalError(f"connection {conn.name}: credentials.api_key is required")
        self.name = conn.name
        self.usage = Usage()
        verify: Any = str(conn.ca_bundle) if conn.ca_bundle else True
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(verify=verify, timeout=float(conn.options.get("timeout_s", 30)))
        self.client = meteroid.Meteroid(api_key=api_key, base_url=conn.base_url or None,
                                        max_retries=int(conn.options.get("max_retries", 2)), http_client=self._http)

    # --- plumbing -------------------------------------------------------------------------------
    @property
    def mappings(self) -> dict[str, ObjectMapping]:
        """No field tables: Meteroid's objects are read and written in their own shape."""
        return {}

    def _call(self, what: str, fn: Callable[[], Any], *, create: bool = False) -> Any:
        self.usage.calls += 1
        self.usage.observed_at = now_utc()
        try:
            raw = fn()
        except meteroid.MeteroidError as exc:
            raise classify(exc, what, create=create) from None
        except httpx.HTTPError as exc:
            raise classify(exc, what, create=create) from None
        self.usage.note_server_date(raw.http_response.headers.get("date"))
        return raw.http_response.json()

    def _pages(self, what: str, fetch: Callable[[int], Any]) -> Iterator[list[dict[str, Any]]]:
        page = 0
        while True:
            body = self._call(what, lambda p=page: fetch(p))  # type: ignore[misc]
            yield list(body["data"])
            meta = body["pagination_meta"]
            page += 1
            if page >= int(meta["total_pages"]) or not body["data"]:
                return

    # --- reads ----------------------------------------------------------------------------------
    def iter_pages(self, object_name: str, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """Every record of ``object_name`` as raw API dicts, one list per page."""
        c = self.client
        fetchers: dict[str, Callable[[int], Any]] = {
            "plans": lambda p: c.plans.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "products": lambda p: c.products.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "product_families": lambda p: c.product_families.with_raw_response.list(page=p, per_page=PER_PAGE,
                                                                                   **filters),
            "coupons": lambda p: c.coupons.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "customers": lambda p: c.customers.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "subscriptions": lambda p: c.subscriptions.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "invoices": lambda p: c.invoices.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
            "metrics": lambda p: c.metrics.with_raw_response.list(page=p, per_page=PER_PAGE, **filters),
        }
        if object_name not in fetchers:
            raise FatalError(f"meteroid: unknown object {object_name!r}")
        yield from self._pages(f"list {object_name}", fetchers[object_name])

    def list_all(self, object_name: str, **filters: Any) -> list[dict[str, Any]]:
        return [row for page in self.iter_pages(object_name, **filters) for row in page]

    def get_plan(self, plan_id: str, version: str | int | None = None) -> dict[str, Any]:
        v = None if version is None else str(version)
        return dict(self._call("get plan", lambda: self.client.plans.with_raw_response.retrieve(plan_id, version=v)))

    def plan_versions(self, plan_id: str) -> list[dict[str, Any]]:
        fetch: Callable[[int], Any] = lambda p: self.client.plans.versions.with_raw_response.list(  # noqa: E731
            plan_id, page=p, per_page=PER_PAGE)
        return [row for page in self._pages("plan versions", fetch) for row in page]

    def get_customer(self, id_or_alias: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("get customer",
                                   lambda: self.client.customers.with_raw_response.retrieve(id_or_alias)))
        except NotFound:
            return None

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return dict(self._call("get subscription",
                               lambda: self.client.subscriptions.with_raw_response.retrieve(subscription_id)))

    def find_subscriptions(self, customer_id_or_alias: str, *, plan_id: str | None = None) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"customer_id": customer_id_or_alias}
        if plan_id:
            filters["plan_id"] = plan_id
        return self.list_all("subscriptions", **filters)

    # --- usage and invoices ----------------------------------------------------------------------------
    def subscription_usage(self, subscription_id: str) -> dict[str, Any]:
        """``GET /usage/subscription/{id}``: this billing period's usage per metric (UsageResponse)."""
        return dict(self._call("subscription usage", lambda: self.client.usage.with_raw_response.retrieve_subscription(
            subscription_id)))

    def meter_readings(self, subscription: Mapping[str, Any], *, seat_metric: str = "active_seats") -> list[MeterReading]:
        """The subscription's usage this period against its plan limits: a CAPACITY component's
        ``included`` for its metric; purchased seats (SLOT ``initial_slots``) for ``seat_metric``."""
        details = subscription if "components" in subscription else self.get_subscription(str(subscription["id"]))
        limits: dict[str, Decimal] = {}
        seats: Decimal | None = None
        for comp in details.get("components") or []:
            fee = comp.get("fee") or {}
            if fee.get("type") == "CAPACITY" and fee.get("metric_id") is not None:
                limits[str(fee["metric_id"])] = parse_decimal(fee.get("included"), field_name="included") or Decimal(0)
            elif fee.get("type") == "SLOT" and fee.get("initial_slots") is not None:
                seats = Decimal(int(fee["initial_slots"])) + (seats or Decimal(0))
        body = self.subscription_usage(str(details["id"]))
        start = dt.date.fromisoformat(str(body["period_start"]))
        end = dt.date.fromisoformat(str(body["period_end"]))
        out = []
        for usage in body.get("usage") or []:
            metric_id, code = str(usage["metric_id"]), str(usage["metric_code"])
            included = limits.get(metric_id, seats if code == seat_metric else None)
            value = parse_decimal(usage["total_value"], field_name="total_value")
            out.append(MeterReading(self.name, str(details["id"]), str(details["customer_id"]), metric_id, code,
                                    str(usage.get("metric_name") or code), start, end,
                                    value if value is not None else Decimal(0), included,
                                    details.get("purchase_order")))
        return out

    def invoice_facts(self, **filters: Any) -> Iterator[list[InvoiceFact]]:
        for page in self.iter_pages("invoices", **filters):
            yield [self._invoice(raw) for raw in page]

    def _invoice(self, raw: Mapping[str, Any]) -> InvoiceFact:
        due = raw.get("due_date")
        return InvoiceFact(self.name, str(raw["id"]), str(raw["customer_id"]),
                           str(raw["subscription_id"]) if raw.get("subscription_id") else None, str(raw["status"]),
                           str(raw["payment_status"]), dt.date.fromisoformat(str(raw["invoice_date"])),
                           dt.date.fromisoformat(str(due)) if due else None,
                           parse_timestamp(raw.get("paid_at"), field_name="paid_at"), int(raw["total"]),
                           int(raw["amount_due"]), str(raw["currency"]))

    # --- creates (never retried blindly) ------------------------------------------------------------
    def create_customer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = dict(body)
        return dict(self._call("create customer", lambda: self.client.customers.with_raw_response.create(
            max_retries=0, **fields), create=True))

    def create_subscription(self, body: Mapping[str, Any]) -> dict[str, Any]:
        fields = dict(body)
        components = fields.pop("price_components", None)
        if components is not None:
            fields["price_components"] = CreateSubscriptionComponents.from_dict(components)
        fields["start_date"] = _as_date(fields["start_date"])
        if fields.get("end_date") is not None:
            fields["end_date"] = _as_date(fields["end_date"])
        return dict(self._call("create subscription", lambda: self.client.subscriptions.with_raw_response.create(
            max_retries=0, **fields), create=True))

    # --- the connector contract ---------------------------------------------------------------------
    def objects(self) -> Sequence[str]:
        return OBJECTS

    def pull(self, object_name: str, cursor: Mapping[str, Any] | None, *, since: dt.datetime | None = None,
             until: dt.datetime | None = None, backfill: bool = False) -> Iterator[Page]:
        """``products``: one canonical Product per billing product, priced from the active plan."""
        if object_name != "products":
            raise FatalError(f"meteroid: pull supports 'products' only (use iter_pages for {object_name!r})")
        prices: dict[str, tuple[Any, str, str]] = {}
        for page in self.iter_pages("plans"):
            for plan in page:
                for comp in plan["price_components"]:
                    fee = comp.get("fee") or {}
                    monthly = next((r["price"] for r in fee.get("rates", []) if r["term"] == "MONTHLY"),
                                   fee.get("unit_price"))
                    if comp.get("product_id") and comp["product_id"] not in prices and monthly is not None:
                        prices[comp["product_id"]] = (monthly, plan["currency"], "ONE_TIME" if fee.get(
                            "type") == "ONE_TIME" else "MONTHLY")
        pages = list(self.iter_pages("products"))
        for n, page in enumerate(pages):
            records: list[Record] = []
            bad: list[Quarantined] = []
            for raw in page:
                try:
                    records.append(self._product(raw, prices.get(str(raw.get("id")))))
                except (ModelError, KeyError) as exc:  # a malformed product never stops the page
                    reason = f"{exc.args[0]}: missing" if isinstance(exc, KeyError) else str(exc)
                    bad.append(Quarantined("product", str(raw.get("id") or ""), dict(raw), reason))
            yield Page(records=records, cursor={"page": n}, quarantined=bad, api_calls=1, done=n == len(pages) - 1)

    def _product(self, raw: Mapping[str, Any], price: tuple[Any, str, str] | None) -> Product:
        created = parse_timestamp(raw["created_at"], field_name="created_at")
        return Product(
            connection=self.name, source_object="product", source_id=str(raw["id"]),
            modified_at=created or now_utc(), created_at=created, name=raw["name"], code=raw.get("description"),
            active=raw.get("archived_at") is None,
            unit_price=parse_decimal(price[0], field_name="unit_price") if price else None,
            currency=price[1] if price else None, billing_period=price[2] if price else None,
            extra={"fee_type": raw.get("fee_type"), "product_family_id": raw.get("product_family_id")})

    def count(self, object_name: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None) -> int:
        body = self._call(f"count {object_name}", lambda: getattr(self.client, object_name).with_raw_response.list(
            page=0, per_page=1))
        return int(body["pagination_meta"]["total_items"])

    def list_ids(self, object_name: str) -> Iterator[list[str]]:
        for page in self.iter_pages(object_name):
            yield [row["id"] for row in page]

    def push(self, items: Sequence[PushItem]) -> list[PushResult]:
        results = []
        for item in items:
            if item.operation != "create" or item.object_name not in ("customers", "subscriptions"):
                results.append(PushResult(item.ref, False, error=f"unsupported {item.operation} {item.object_name}"))
                continue
            try:
                rec = (self.create_customer(item.fields) if item.object_name == "customers"
                       else self.create_subscription(item.fields))
            except Exception as exc:  # noqa: BLE001 - reported per item, classified
                retriable = getattr(exc, "retry_after", None) is not None or type(exc).__name__ == "AmbiguousCreate"
                results.append(PushResult(item.ref, False, error=str(exc), retriable=retriable))
                continue
            results.append(PushResult(item.ref, True, source_id=rec["id"], created=True))
        return results

    def close(self) -> None:
        self.client.close() if hasattr(self.client, "close") else None
        if self._owns_http:
            self._http.close()


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
