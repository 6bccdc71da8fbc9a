"""Closed Won -> Meteroid customer + subscription(s), idempotent under retries and SIGKILL.

Every create is preceded by a look-up and a failed-in-flight create is followed by one:
- the customer is found by alias ``<connection>:<account id>`` (409 on create = someone made it:
  read it back);
- each subscription carries ``purchase_order = crmsync:<connection>:<deal id>[#n]`` and is found by
  customer + plan + start date + that marker.
A process killed between the create reaching Meteroid and the answer coming back re-runs into the
look-ups and creates nothing twice. After creation the subscription is read back and compared
with the deal (components vs lines, ``mrr_cents x 12`` vs the deal's ARR). Failures come back as
``ProvisionResult.error`` with findings; ``record_failure`` turns them into a CRM task and an
outbox error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crmsync.billing.catalog import PERIOD_MONTHS, BillingCatalog, BillingComponent, BillingPlan
from crmsync.billing.checks import CheckConfig, Finding, blocking, line_total, run_checks
from crmsync.billing.mapping import ProductMapping
from crmsync.billing_keys import customer_alias, subscription_marker
from crmsync.connectors.base import ConnectorError
from crmsync.connectors.meteroid.errors import AlreadyExists, AmbiguousCreate
from crmsync.model import Account, Deal, LineItem

CENT = Decimal("0.01")


@dataclass(slots=True)
class ProvisionResult:
    deal_id: str
    status: str  # "provisioned" | "blocked" | "failed"
    customer_id: str | None = None
    subscription_ids: list[str] = field(default_factory=list)
    created_customer: bool = False
    created_subscriptions: int = 0
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None


def net_unit_price(line: LineItem) -> Decimal:
    price = line.unit_price or Decimal(0)
    return (price * (1 - (line.discount_percent or Decimal(0)) / 100)).quantize(CENT)


def group_by_plan(lines: Sequence[LineItem], mapping: ProductMapping,
                  catalog: BillingCatalog) -> list[tuple[BillingPlan, list[tuple[LineItem, BillingComponent]]]]:
    """A bundle plan covering every line if there is one, else each line on its product's own plan."""
    mapped = [(li, mapping.component(li.product_code)) for li in lines]
    codes = {li.product_code for li, _ in mapped}
    for plan in catalog.plans:
        if len(plan.components) > 1 and codes and plan.product_codes == codes:
            by_code = {c.product_code: c for c in plan.components}
            return [(plan, [(li, by_code[li.product_code]) for li, _ in mapped if li.product_code])]
    groups: dict[str, tuple[BillingPlan, list[tuple[LineItem, BillingComponent]]]] = {}
    for li, comp in mapped:
        if comp is None:
            raise ValueError(f"line {li.source_id}: product {li.product_code} is not mapped to billing")
        own = catalog.plan(comp.plan_id)
        if own is None:
            raise ValueError(f"plan {comp.plan_id} missing from the catalog")
        if own.id in groups and any(c.component_id == comp.component_id for _, c in groups[own.id][1]):
            raise ValueError(f"two lines for the same billing component {comp.name}")
        groups.setdefault(own.id, (own, []))[1].append((li, comp))
    return list(groups.values())


def subscription_body(deal: Deal, alias: str, plan: BillingPlan, pairs: Sequence[tuple[LineItem, BillingComponent]],
                      marker: str) -> dict[str, Any]:
    params, overrides = [], []
    for line, comp in pairs:
        period = line.billing_period if comp.fee_type != "ONE_TIME" else None
        p: dict[str, Any] = {}
        if period:
            p["billing_period"] = period
        if comp.fee_type == "SLOT":
            p["initial_slot_count"] = int(line.quantity or 0)
        if p:
            params.append({"component_id": comp.component_id, "parameters": p})
        price = net_unit_price(line)
        if comp.fee_type in ("SLOT", "RATE") and period and price != comp.price_for(period):
            pricing = ({"type": "SLOT", "unit_rate": str(price)} if comp.fee_type == "SLOT"
                       else {"type": "RATE", "rate": str(price)})
            overrides.append({"component_id": comp.component_id, "name": comp.name,
                              "price_entry": {"type": "NEW", "cadence": period, "currency": plan.currency,
                                              "pricing": pricing}})
    assert deal.contract_start is not None
    body: dict[str, Any] = {
        "customer_id_or_alias": alias, "plan_id": plan.id, "version": plan.version,
        "start_date": deal.contract_start.isoformat(), "activation_condition": "ON_START", "net_terms": 30,
        "purchase_order": marker,
        "price_components": {"parameterized_components": params, "overridden_components": overrides,
                             "extra_components": [], "remove_components": [
                                 c.component_id for c in plan.components
                                 if c.component_id not in {comp.component_id for _, comp in pairs}]},
    }
    if deal.contract_end is not None:
        body["end_date"] = deal.contract_end.isoformat()
    return body


def _find_subscription(connector: Any, alias: str, plan_id: str, start: str, marker: str) -> dict[str, Any] | None:
    for sub in connector.find_subscriptions(alias, plan_id=plan_id):
        if sub.get("purchase_order") == marker and sub.get("start_date") == start:
            return dict(sub)
    return None


def get_or_create_customer(connector: Any, alias: str, deal: Deal, account: Account | None,
                           email: str | None) -> tuple[dict[str, Any], bool]:
    found = connector.get_customer(alias)
    if found is not None:
        return found, False
    name = (account.name if account and account.name else None) or deal.name or alias
    billing_email = email or (f"billing@{account.domain}" if account and account.domain else None)
    body: dict[str, Any] = {"name": name, "alias": alias, "currency": deal.currency,
                            "invoicing_emails": [billing_email] if billing_email else [], "custom_taxes": []}
    if billing_email:
        body["billing_email"] = billing_email
    if account and account.country:
        body["billing_address"] = {"country": account.country}
    try:
        return connector.create_customer(body), True
    except (AlreadyExists, AmbiguousCreate):
        found = connector.get_customer(alias)  # stored by us (lost answer) or by a concurrent worker
        if found is None:
            raise
        return found, False


def readback_findings(deal: Deal, sub: dict[str, Any], pairs: Sequence[tuple[LineItem, BillingComponent]],
                      tolerance: Decimal) -> list[Finding]:
    out = []
    comps = {c.get("price_component_id"): c for c in sub.get("components", [])}
    for line, comp in pairs:
        got = comps.get(comp.component_id)
        if got is None:
            out.append(Finding("readback", deal.source_id, f"subscription lacks component {comp.name}",
                               line_total(line), deal.currency, line.source_id, line.product_code))
            continue
        fee = got["fee"]
        if fee["type"] == "SLOT":
            if Decimal(fee["initial_slots"]) != (line.quantity or 0):
                out.append(Finding("readback", deal.source_id,
                                   f"{comp.name}: {fee['initial_slots']} seats in billing, {line.quantity} on the deal",
                                   line_total(line), deal.currency, line.source_id, line.product_code))
            rate = Decimal(fee["unit_rate"])
        else:
            rate = Decimal(fee.get("rate", "0"))
        if comp.fee_type in ("SLOT", "RATE") and abs(rate - net_unit_price(line)) > tolerance:
            out.append(Finding("readback", deal.source_id,
                               f"{comp.name}: billing rate {rate} vs deal net price {net_unit_price(line)}",
                               (abs(rate - net_unit_price(line)) * (line.quantity or 1)).quantize(CENT),
                               deal.currency, line.source_id, line.product_code))
        if got["period"] != (line.billing_period if comp.fee_type != "ONE_TIME" else "ONE_TIME"):
            out.append(Finding("readback", deal.source_id,
                               f"{comp.name}: billed {got['period']}, deal says {line.billing_period}",
                               Decimal(0), deal.currency, line.source_id, line.product_code))
    return out


def annual_value(pairs: Sequence[tuple[LineItem, BillingComponent]]) -> Decimal:
    total = Decimal(0)
    for line, comp in pairs:
        months = PERIOD_MONTHS.get(line.billing_period or "")
        if comp.fee_type == "ONE_TIME" or not months:
            continue
        total += line_total(line) * 12 / months
    return total.quantize(CENT)


def provision(deal: Deal, lines: Sequence[LineItem], *, connector: Any, catalog: BillingCatalog,
              mapping: ProductMapping, connection: str | None = None, account: Account | None = None,
              email: str | None = None, cfg: CheckConfig | None = None,
              arr_tolerance: Decimal = Decimal("1.00")) -> ProvisionResult:
    """Get or create the customer and the subscription(s) of a Closed Won deal; read them back."""
    cfg = cfg or CheckConfig()
    connection = connection or deal.connection
    result = ProvisionResult(deal.source_id, "failed")
    if not deal.is_won:
        result.status, result.error = "blocked", "deal is not Closed Won"
        return result
    findings = run_checks(deal, lines, catalog, mapping, cfg)
    result.findings = findings
    if blocking(findings) or deal.account_id is None or deal.contract_start is None:
        result.status = "blocked"
        result.error = "; ".join(f.reason for f in blocking(findings)) or "deal has no account or contract start"
        return result
    alias = customer_alias(connection, deal.account_id)
    try:
        groups = group_by_plan(lines, mapping, catalog)
        customer, created = get_or_create_customer(connector, alias, deal, account, email)
        result.customer_id, result.created_customer = str(customer["id"]), created
        for n, (plan, pairs) in enumerate(groups):
            marker = subscription_marker(connection, deal.source_id) + (f"#{n}" if len(groups) > 1 else "")
            body = subscription_body(deal, alias, plan, pairs, marker)
            sub = _find_subscription(connector, alias, plan.id, body["start_date"], marker)
            if sub is None:
                try:
                    sub = connector.create_subscription(body)
                    result.created_subscriptions += 1
                except AmbiguousCreate:
                    sub = _find_subscription(connector, alias, plan.id, body["start_date"], marker)
                    if sub is None:
                        raise
            full = connector.get_subscription(str(sub["id"]))
            result.subscription_ids.append(str(full["id"]))
            result.findings += readback_findings(deal, full, pairs, cfg.price_tolerance)
            arr = annual_value(pairs)
            billed = (Decimal(int(full["mrr_cents"])) * 12 / 100).quantize(CENT)
            if abs(billed - arr) > arr_tolerance:
                result.findings.append(Finding("readback_arr", deal.source_id,
                                               f"mrr_cents x 12 = {billed} vs deal ARR {arr} on {plan.name}",
                                               abs(billed - arr), deal.currency))
    except (ConnectorError, ValueError) as exc:
        result.status, result.error = "failed", str(exc)
        return result
    bad = [f for f in result.findings if f.check.startswith("readback")]
    result.status = "failed" if bad else "provisioned"
    if bad:
        result.error = "; ".join(f.reason for f in bad)
    return result


def record_result(store: Any, deal: Deal, result: ProvisionResult, *, billing_connection: str,
                  today: dt.date) -> None:
    """Store findings as decisions + CRM tasks; a failure also becomes an outbox error row."""
    from crmsync.billing.tasks import record_findings
    from crmsync.store import OutboxItem

    findings = list(result.findings)
    if result.status != "provisioned":
        findings.append(Finding("provision_failed", deal.source_id, result.error or result.status,
                                deal.amount or Decimal(0), deal.currency))
    record_findings(store, deal, findings, today=today)
    if result.status == "failed":
        with store.transaction() as tx:
            tx.enqueue(OutboxItem(connection=billing_connection, object_name="subscriptions", operation="create",
                                  fields={"deal_id": deal.source_id, "account_id": deal.account_id},
                                  idempotency_key=f"billing:provision:{deal.connection}:{deal.source_id}",
                                  status="failed", last_error=(result.error or "failed")[:500]))
