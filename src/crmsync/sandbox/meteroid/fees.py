"""Subscription components from plan components: parameters, overrides, fees and MRR.

Plan-side fees (``RATE rates[]``, ``SLOT rates[] minimum_count quota``, ``ONE_TIME unit_price``)
become subscription-side fees (``RATE rate``, ``SLOT unit unit_rate initial_slots``,
``ONE_TIME rate quantity``) for the chosen billing period. MRR is the monthly equivalent of the
recurring fees, in cents.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from crmsync.sandbox.meteroid.catalog import PERIOD_MONTHS, money


class RequestError(ValueError):
    """A 400 with a message in the API's words."""


def _dec(value: Any, what: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise RequestError(f"{what}: invalid decimal {value!r}") from exc
    if not out.is_finite() or out < 0:
        raise RequestError(f"{what}: invalid decimal {value!r}")
    return out


def _rate_for(fee: dict[str, Any], period: str, what: str) -> Decimal:
    for rate in fee.get("rates", []):
        if rate["term"] == period:
            return Decimal(rate["price"])
    raise RequestError(f"{what}: billing period {period} is not offered by this component")


def subscription_components(plan: dict[str, Any], spec: dict[str, Any] | None, currency: str) -> list[dict[str, Any]]:
    spec = spec or {}
    by_id = {c["id"]: c for c in plan["price_components"]}
    removed = set(spec.get("remove_components") or [])
    for cid in removed:
        if cid not in by_id:
            raise RequestError(f"remove_components: unknown component {cid}")
    params = {}
    for item in spec.get("parameterized_components") or []:
        if item.get("component_id") not in by_id:
            raise RequestError(f"parameterized_components: unknown component {item.get('component_id')}")
        params[item["component_id"]] = item.get("parameters") or {}
    overrides = {}
    for item in spec.get("overridden_components") or []:
        if item.get("component_id") not in by_id:
            raise RequestError(f"overridden_components: unknown component {item.get('component_id')}")
        overrides[item["component_id"]] = item
    out = []
    for cid, comp in by_id.items():
        if cid in removed:
            continue
        fee = comp["fee"]
        p = params.get(cid, {})
        allowed = plan["available_parameters"]["billing_periods"].get(cid, [])
        period = p.get("billing_period") or (allowed[0] if allowed else "ONE_TIME")
        if fee["type"] != "ONE_TIME" and period not in allowed:
            raise RequestError(f"{comp['name']}: billing period {period} not allowed (allowed: {allowed})")
        slots = p.get("initial_slot_count")
        if fee["type"] == "SLOT":
            minimum, quota = fee.get("minimum_count"), fee.get("quota")
            slots = minimum or 1 if slots is None else int(slots)
            if (minimum is not None and slots < minimum) or (quota is not None and slots > quota):
                raise RequestError(f"{comp['name']}: initial_slot_count {slots} outside {minimum}..{quota}")
        name = comp["name"]
        override = overrides.get(cid)
        if override is not None:
            name = override.get("name") or name
            sub_fee, period = _override_fee(override, fee, slots, currency)
        elif fee["type"] == "SLOT":
            sub_fee = {"type": "SLOT", "unit": fee["slot_unit_name"], "unit_rate": money(_rate_for(fee, period, name)),
                       "initial_slots": slots, "min_slots": fee.get("minimum_count"), "max_slots": fee.get("quota")}
        elif fee["type"] == "RATE":
            sub_fee = {"type": "RATE", "rate": money(_rate_for(fee, period, name))}
        else:
            sub_fee = {"type": "ONE_TIME", "rate": fee["unit_price"], "quantity": fee.get("quantity", 1)}
            period = "ONE_TIME"
        out.append({"name": name, "period": period, "price_component_id": cid,
                    "product_id": comp.get("product_id"), "fee": sub_fee})
    for extra in spec.get("extra_components") or []:
        entry = extra.get("price_entry") or {}
        if entry.get("type") != "NEW":
            raise RequestError("extra_components: only NEW price entries are supported")
        fee, period = _override_fee(extra, {"type": "RATE"}, None, currency)
        product = extra.get("product_ref") or {}
        out.append({"name": extra.get("name", "extra"), "period": period, "price_component_id": None,
                    "product_id": product.get("id"), "fee": fee})
    return out


def _override_fee(item: dict[str, Any], plan_fee: dict[str, Any], slots: int | None,
                  currency: str) -> tuple[dict[str, Any], str]:
    entry = item.get("price_entry") or {}
    if entry.get("type") != "NEW":
        raise RequestError("price_entry: only NEW price entries can be checked by the sandbox")
    if entry.get("currency") != currency:
        raise RequestError(f"price_entry: currency {entry.get('currency')} differs from the plan version's {currency}")
    period = entry.get("cadence")
    if period not in PERIOD_MONTHS:
        raise RequestError(f"price_entry: invalid cadence {period!r}")
    pricing = entry.get("pricing") or {}
    kind = pricing.get("type")
    if kind == "RATE":
        return {"type": "RATE", "rate": money(_dec(pricing.get("rate"), "pricing.rate"))}, period
    if kind == "SLOT":
        count = slots if slots is not None else (plan_fee.get("minimum_count") or 1)
        return {"type": "SLOT", "unit": plan_fee.get("slot_unit_name", "seat"),
                "unit_rate": money(_dec(pricing.get("unit_rate"), "pricing.unit_rate")),
                "initial_slots": count, "min_slots": pricing.get("min_slots", plan_fee.get("minimum_count")),
                "max_slots": pricing.get("max_slots", plan_fee.get("quota"))}, period
    if kind == "EXTRA_RECURRING":
        return {"type": "RECURRING", "rate": money(_dec(pricing.get("unit_price"), "pricing.unit_price")),
                "quantity": int(pricing.get("quantity", 1)), "billing_type": "ADVANCE"}, period
    raise RequestError(f"pricing: unsupported type {kind!r}")


def mrr_cents(components: list[dict[str, Any]]) -> int:
    total = Decimal(0)
    for comp in components:
        months = PERIOD_MONTHS.get(comp["period"])
        if months is None:
            continue
        fee = comp["fee"]
        if fee["type"] == "SLOT":
            amount = Decimal(fee["unit_rate"]) * fee["initial_slots"]
        elif fee["type"] == "RATE":
            amount = Decimal(fee["rate"])
        elif fee["type"] == "RECURRING":
            amount = Decimal(fee["rate"]) * fee["quantity"]
        else:
            continue
        total += amount / months
    return int((total * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def main_period(components: list[dict[str, Any]]) -> str:
    for comp in components:
        if comp["period"] in PERIOD_MONTHS:
            return str(comp["period"])
    return "MONTHLY"
