"""The seeded billing catalog, built from the World's PRODUCTS (billing's own prices).

Product families and products per ``ProductDef``; one plan per product plus two bundles; each plan
has versions (v1 older prices, v2 the active one, a draft v3 on the bundles); price components are
SLOT for seat products (``minimum_count``/``quota`` from the product's seat range), RATE for flat
ones, ONE_TIME for a free onboarding package, each priced MONTHLY and ANNUAL. Coupons cover
PERCENTAGE and FIXED, active, expired, disabled and one in a foreign currency. Records are plain
JSON-ready dicts in the API's shape.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmsync.sandbox.meteroid.ids import make_id
from crmsync.sandbox.world import CURRENCY, PRODUCTS, ProductDef

CENT = Decimal("0.01")
PERIOD_MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "SEMIANNUAL": 6, "ANNUAL": 12}
OLD_PRICE_FACTOR = Decimal("0.9")  # version 1 was 10% cheaper
BUNDLES = (
    ("Growth Bundle", ("PLAT-PRO", "ADDON-SSO", "SUPPORT-PREM")),
    ("Enterprise Bundle", ("PLAT-ENT", "ADDON-SSO", "ADDON-AUDIT", "SUPPORT-24x7")),
)


def money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def fee_type(product: ProductDef) -> str:
    if product.unit == "seat":
        return "SLOT"
    return "ONE_TIME" if product.monthly_price == 0 else "RATE"


def plan_fee(product: ProductDef, factor: Decimal = Decimal(1)) -> dict[str, Any]:
    monthly = product.monthly_price * factor
    kind = fee_type(product)
    if kind == "ONE_TIME":
        return {"type": "ONE_TIME", "unit_price": money(monthly), "quantity": 1}
    rates = [{"term": "MONTHLY", "price": money(monthly)}, {"term": "ANNUAL", "price": money(monthly * 12)}]
    if kind == "SLOT":
        return {"type": "SLOT", "rates": rates, "slot_unit_name": "seat",
                "minimum_count": product.min_seats, "quota": product.max_seats}
    return {"type": "RATE", "rates": rates}


@dataclass
class PlanDef:
    number: int
    name: str
    codes: tuple[str, ...]
    family: str
    versions: list[int] = field(default_factory=lambda: [1, 2])
    active_version: int = 2
    draft_version: int | None = None
    created_at: dt.datetime = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)


class Catalog:
    """Families, products, plans (all versions) and coupons as API dicts, with look-up indexes."""

    def __init__(self, now: dt.datetime, salt: int = 0) -> None:
        self.now = now
        self.salt = salt
        self.products_by_code = {p.code: p for p in PRODUCTS}
        families = sorted({p.family for p in PRODUCTS})
        self.families = [{"id": make_id("pf", n, salt), "name": name} for n, name in enumerate(families, 1)]
        self.family_by_name = {f["name"]: f for f in self.families}
        self.products: list[dict[str, Any]] = []
        self.product_id_by_code: dict[str, str] = {}
        for n, p in enumerate(PRODUCTS, 1):
            kind = fee_type(p)
            structure: dict[str, Any] = {"type": kind}
            if kind == "SLOT":
                structure.update(slot_unit_name="seat", upgrade_policy="PRORATED",
                                 downgrade_policy="REMOVE_AT_END_OF_PERIOD")
            record: dict[str, Any] = {"id": make_id("prd", n, salt), "name": p.name, "description": p.code,
                      "fee_type": kind, "fee_structure": structure,
                      "product_family_id": self.family_by_name[p.family]["id"], "catalog": True,
                      "created_at": iso(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), "archived_at": None}
            self.products.append(record)
            self.product_id_by_code[p.code] = record["id"]
        self.plan_defs: list[PlanDef] = []
        for n, p in enumerate(PRODUCTS, 1):
            self.plan_defs.append(PlanDef(n, p.name, (p.code,), p.family))
        for offset, (name, codes) in enumerate(BUNDLES, len(PRODUCTS) + 1):
            self.plan_defs.append(PlanDef(offset, name, codes, "Platform", [1, 2, 3], 2, 3))
        self.plan_by_id = {self.plan_id(d): d for d in self.plan_defs}
        self.plan_for_code = {d.codes[0]: self.plan_id(d) for d in self.plan_defs if len(d.codes) == 1}
        self.coupons = self._coupons()

    # --- ids --------------------------------------------------------------------------------
    def plan_id(self, d: PlanDef) -> str:
        return make_id("plan", d.number, self.salt)

    def version_id(self, d: PlanDef, version: int) -> str:
        return make_id("plv", d.number * 100 + version, self.salt)

    def component_id(self, d: PlanDef, version: int, position: int) -> str:
        return make_id("price", (d.number * 100 + version) * 100 + position, self.salt)

    # --- plans ------------------------------------------------------------------------------
    def resolve_version(self, d: PlanDef, version: str | int | None) -> int | None:
        if version is None or version == "":
            return d.active_version
        if version == "draft":
            return d.draft_version
        try:
            number = int(version)
        except (TypeError, ValueError):
            return None
        return number if number in d.versions else None

    def components(self, d: PlanDef, version: int) -> list[dict[str, Any]]:
        factor = OLD_PRICE_FACTOR if version < d.active_version else Decimal(1)
        out = []
        for pos, code in enumerate(d.codes):
            product = self.products_by_code[code]
            out.append({"id": self.component_id(d, version, pos), "name": product.name,
                        "product_id": self.product_id_by_code[code], "fee": plan_fee(product, factor)})
        return out

    def plan(self, d: PlanDef, version: int) -> dict[str, Any]:
        comps = self.components(d, version)
        status = "ACTIVE"
        return {
            "id": self.plan_id(d), "name": d.name, "description": " + ".join(d.codes),
            "created_at": iso(d.created_at + dt.timedelta(days=30 * (version - 1))),
            "plan_type": "STANDARD", "status": status,
            "product_family": self.family_by_name[d.family],
            "version_id": self.version_id(d, version), "version": version, "currency": CURRENCY,
            "net_terms": 30, "billing_cycles": None, "period_start_day": None, "trial": None,
            "self_service_rank": None, "tax_inclusive": False,
            "price_components": comps,
            "available_parameters": {
                "billing_periods": {c["id"]: ["MONTHLY", "ANNUAL"] for c in comps if c["fee"]["type"] != "ONE_TIME"},
                "capacity_thresholds": {},
                "slot_components": [c["id"] for c in comps if c["fee"]["type"] == "SLOT"],
            },
        }

    def version_summaries(self, d: PlanDef) -> list[dict[str, Any]]:
        return [{"id": self.version_id(d, v), "version": v, "is_draft": v == d.draft_version, "currency": CURRENCY,
                 "created_at": iso(d.created_at + dt.timedelta(days=30 * (v - 1)))} for v in d.versions]

    # --- coupons ----------------------------------------------------------------------------
    def _coupons(self) -> list[dict[str, Any]]:
        now = self.now
        rows: list[tuple[str, dict[str, Any], dt.datetime | None, bool]] = [
            ("WELCOME10", {"type": "PERCENTAGE", "percentage": "10"}, now + dt.timedelta(days=365), False),
            ("Q4-20", {"type": "PERCENTAGE", "percentage": "20"}, now + dt.timedelta(days=90), False),
            ("FIXED500", {"type": "FIXED", "currency": CURRENCY, "amount": "500.00"}, None, False),
            ("SUMMER15", {"type": "PERCENTAGE", "percentage": "15"}, now - dt.timedelta(days=30), False),
            ("LEGACY25", {"type": "PERCENTAGE", "percentage": "25"}, None, True),
            ("USD100", {"type": "FIXED", "currency": "USD", "amount": "100.00"}, None, False),
        ]
        out: list[dict[str, Any]] = []
        for n, (code, discount, expires, disabled) in enumerate(rows, 1):
            out.append({"id": make_id("cou", n, self.salt), "code": code, "description": f"{code} coupon",
                        "discount": discount, "expires_at": iso(expires) if expires else None,
                        "redemption_limit": None, "recurring_value": None, "reusable": True,
                        "disabled": disabled, "archived_at": None,
                        "created_at": iso(dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
                        "redemption_count": 0, "plan_ids": []})
        return out

    def coupon_by_code(self, code: str) -> dict[str, Any] | None:
        for c in self.coupons:
            if c["code"] == code:
                return c
        return None

    def coupon_is_active(self, coupon: dict[str, Any], at: dt.datetime) -> bool:
        if coupon["disabled"] or coupon["archived_at"]:
            return False
        expires = coupon["expires_at"]
        return expires is None or dt.datetime.fromisoformat(expires.replace("Z", "+00:00")) > at
