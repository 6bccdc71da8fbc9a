"""The billing catalog as crmsync reasons about it: plans, their priced components, coupons.

Built from Meteroid's API answers (``BillingCatalog.from_api``), independent of the HTTP layer.
Prices are Decimal per billing period (``prices["MONTHLY"]``, ``prices["ANNUAL"]``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmsync.model import parse_timestamp

PERIOD_MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "SEMIANNUAL": 6, "ANNUAL": 12}


@dataclass(frozen=True, slots=True)
class BillingComponent:
    plan_id: str
    plan_name: str
    plan_version: int
    component_id: str
    name: str
    product_id: str | None
    product_code: str | None
    fee_type: str  # SLOT | RATE | ONE_TIME | ...
    prices: Mapping[str, Decimal]  # billing period -> price per unit per period
    currency: str
    min_slots: int | None = None
    max_slots: int | None = None

    def price_for(self, period: str | None) -> Decimal | None:
        if self.fee_type == "ONE_TIME":
            return self.prices.get("ONE_TIME")
        if period is None:
            return None
        if period in self.prices:
            return self.prices[period]
        months = PERIOD_MONTHS.get(period)
        monthly = self.prices.get("MONTHLY")
        return None if months is None or monthly is None else monthly * months

    @property
    def periods(self) -> tuple[str, ...]:
        return tuple(p for p in self.prices if p != "ONE_TIME")


@dataclass(frozen=True, slots=True)
class BillingPlan:
    id: str
    name: str
    version: int
    currency: str
    components: tuple[BillingComponent, ...]

    @property
    def product_codes(self) -> frozenset[str]:
        return frozenset(c.product_code for c in self.components if c.product_code)


@dataclass(frozen=True, slots=True)
class BillingCoupon:
    id: str
    code: str
    kind: str  # PERCENTAGE | FIXED
    value: Decimal
    currency: str | None
    expires_at: dt.datetime | None
    disabled: bool

@dataclass(slots=True)
class BillingCatalog:
    plans: list[BillingPlan] = field(default_factory=list)
    coupons: list[BillingCoupon] = field(default_factory=list)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)  # product id -> raw product

    @classmethod
    def from_api(cls, plans: Iterable[Mapping[str, Any]], products: Iterable[Mapping[str, Any]],
                 coupons: Iterable[Mapping[str, Any]] = ()) -> BillingCatalog:
        by_id = {str(p["id"]): dict(p) for p in products}
        out = cls(products=by_id)
        for plan in plans:
            comps = []
            for comp in plan.get("price_components", []):
                fee = comp.get("fee") or {}
                kind = str(fee.get("type", "UNKNOWN"))
                prices: dict[str, Decimal] = {r["term"]: Decimal(str(r["price"])) for r in fee.get("rates", [])}
                if kind in ("ONE_TIME",):
                    prices["ONE_TIME"] = Decimal(str(fee.get("unit_price", "0")))
                if kind == "EXTRA_RECURRING":
                    prices[str(fee.get("cadence", "MONTHLY"))] = Decimal(str(fee.get("unit_price", "0")))
                product = by_id.get(str(comp.get("product_id")))
                comps.append(BillingComponent(
                    plan_id=str(plan["id"]), plan_name=str(plan["name"]), plan_version=int(plan["version"]),
                    component_id=str(comp["id"]), name=str(comp["name"]), product_id=comp.get("product_id"),
                    product_code=(product or {}).get("description"), fee_type=kind, prices=prices,
                    currency=str(plan["currency"]), min_slots=fee.get("minimum_count"), max_slots=fee.get("quota")))
            out.plans.append(BillingPlan(str(plan["id"]), str(plan["name"]), int(plan["version"]),
                                         str(plan["currency"]), tuple(comps)))
        for c in coupons:
            d = c["discount"]
            value = d.get("percentage") if d["type"] == "PERCENTAGE" else d.get("amount")
            out.coupons.append(BillingCoupon(str(c["id"]), str(c["code"]), str(d["type"]), Decimal(str(value)),
                                             d.get("currency"), parse_timestamp(c.get("expires_at")),
                                             bool(c.get("disabled"))))
        return out

    def components(self) -> Iterable[BillingComponent]:
        for plan in self.plans:
            yield from plan.components

    def plan(self, plan_id: str) -> BillingPlan | None:
        return next((p for p in self.plans if p.id == plan_id), None)

    def coupon(self, code: str) -> BillingCoupon | None:
        return next((c for c in self.coupons if c.code == code), None)


def load_catalog(connector: Any) -> BillingCatalog:
    """Pull plans (active versions), products and coupons through a MeteroidConnector."""
    return BillingCatalog.from_api(connector.list_all("plans"), connector.list_all("products"),
                                   connector.list_all("coupons"))
