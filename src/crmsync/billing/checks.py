"""Quote-to-cash consistency checks: pure functions over canonical records and the billing catalog.

Each check returns ``Finding``s with the money at stake (Decimal, in the deal's currency) and a
reason a rep can act on. ``run_checks`` runs them all for one deal. Severity ``error`` blocks
provisioning on Closed Won; ``warning`` is reported only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from crmsync.billing.catalog import PERIOD_MONTHS, BillingCatalog, BillingComponent
from crmsync.billing.mapping import ProductMapping
from crmsync.model import Deal, LineItem

CENT = Decimal("0.01")
ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class CheckConfig:
    amount_tolerance: Decimal = Decimal("0.01")  # absolute, in the deal currency
    line_tolerance: Decimal = Decimal("0.01")
    price_tolerance: Decimal = Decimal("0.01")
    discount_approval_threshold: Decimal = Decimal("20")  # percent
    term_tolerance_months: int = 1
    approval_field: str = "discount_approved"  # in deal.extra


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    deal_id: str
    reason: str
    money_at_stake: Decimal = Decimal(0)
    currency: str | None = None
    line_id: str | None = None
    product_code: str | None = None
    severity: str = ERROR
    details: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.check}:{self.deal_id}:{self.line_id or '-'}"


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"))


def line_expected_total(line: LineItem) -> Decimal | None:
    if line.unit_price is None or line.quantity is None:
        return None
    total = line.unit_price * line.quantity * (1 - (line.discount_percent or Decimal(0)) / 100)
    return _q(total - (line.discount_amount or Decimal(0)))


def line_total(line: LineItem) -> Decimal:
    if line.total is not None:
        return line.total
    return line_expected_total(line) or Decimal(0)


# 1. deal amount = sum of line totals ------------------------------------------------------------
def check_amount(deal: Deal, lines: Sequence[LineItem], cfg: CheckConfig) -> list[Finding]:
    if not lines:
        return [Finding("amount_vs_lines", deal.source_id, "deal has no line items", deal.amount or Decimal(0),
                        deal.currency, severity=ERROR)]
    total = sum((line_total(li) for li in lines), Decimal(0))
    amount = deal.amount or Decimal(0)
    diff = amount - total
    if abs(diff) > cfg.amount_tolerance:
        return [Finding("amount_vs_lines", deal.source_id,
                        f"deal amount {_q(amount)} differs from the sum of line totals {_q(total)} by {_q(diff)}",
                        _q(abs(diff)), deal.currency, details={"amount": str(amount), "lines": str(total)})]
    return []


# 2. line maths ------------------------------------------------------------------------------------
def check_line_math(deal: Deal, line: LineItem, cfg: CheckConfig) -> list[Finding]:
    expected = line_expected_total(line)
    if expected is None:
        return [Finding("line_math", deal.source_id, "line has no unit price or quantity", Decimal(0),
                        line.currency, line.source_id, line.product_code)]
    if line.total is not None and abs(line.total - expected) > cfg.line_tolerance:
        return [Finding("line_math", deal.source_id,
                        f"line total {line.total} but price x quantity x (1 - discount) = {expected}",
                        _q(abs(line.total - expected)), line.currency, line.source_id, line.product_code)]
    return []


# 3. CRM list price = billing plan price for the same period ----------------------------------------
def check_list_price(deal: Deal, line: LineItem, comp: BillingComponent | None, cfg: CheckConfig) -> list[Finding]:
    if comp is None:
        return [Finding("product_unmapped", deal.source_id,
                        f"product {line.product_code or line.name!r} has no billing plan component",
                        line_total(line), line.currency, line.source_id, line.product_code)]
    billing = comp.price_for(line.billing_period)
    if billing is None or line.list_price is None:
        return []
    diff = line.list_price - billing
    if abs(diff) > cfg.price_tolerance:
        at_stake = _q(abs(diff) * (line.quantity or Decimal(1)))
        return [Finding("list_price_drift", deal.source_id,
                        f"CRM list price {line.list_price} vs billing {billing} per {line.billing_period} "
                        f"for {comp.product_code}", at_stake, line.currency, line.source_id, line.product_code,
                        WARNING, details={"crm": str(line.list_price), "billing": str(billing)})]
    return []


# 4. discounts over the threshold need approval -----------------------------------------------------
def effective_discount(line: LineItem) -> Decimal:
    pct = line.discount_percent or Decimal(0)
    if line.list_price and line.unit_price is not None and line.list_price > 0:
        pct = max(pct, (1 - line.unit_price * (1 - pct / 100) / line.list_price) * 100)
    return pct.quantize(Decimal("0.01"))


def check_discount(deal: Deal, line: LineItem, cfg: CheckConfig) -> list[Finding]:
    pct = effective_discount(line)
    if pct > cfg.discount_approval_threshold and not _truthy(deal.extra.get(cfg.approval_field)):
        base = (line.list_price or line.unit_price or Decimal(0)) * (line.quantity or Decimal(1))
        return [Finding("discount_unapproved", deal.source_id,
                        f"discount {pct}% over the {cfg.discount_approval_threshold}% threshold without approval",
                        _q(base * pct / 100), line.currency, line.source_id, line.product_code)]
    return []


# 5. currency agreement ------------------------------------------------------------------------------
def check_currency(deal: Deal, lines: Sequence[LineItem], comps: Sequence[BillingComponent | None],
                   customer_currency: str | None = None) -> list[Finding]:
    out = []
    for line, comp in zip(lines, comps, strict=True):
        seen = {c for c in (deal.currency, line.currency, comp.currency if comp else None, customer_currency) if c}
        if len(seen) > 1:
            out.append(Finding("currency_mismatch", deal.source_id,
                               f"currencies disagree: deal {deal.currency}, line {line.currency}, "
                               f"plan {comp.currency if comp else None}, customer {customer_currency}",
                               line_total(line), line.currency, line.source_id, line.product_code))
    return out


# 6. billing period and term ---------------------------------------------------------------------------
def contract_months(start: dt.date, end: dt.date) -> int:
    return round(((end - start).days + 1) / 30.4375)


def check_period_term(deal: Deal, line: LineItem, comp: BillingComponent | None, cfg: CheckConfig) -> list[Finding]:
    out = []
    period = line.billing_period
    if comp is not None and comp.fee_type != "ONE_TIME":
        if period not in PERIOD_MONTHS:
            out.append(Finding("billing_period", deal.source_id,
                               f"billing period {period!r} is not MONTHLY/QUARTERLY/SEMIANNUAL/ANNUAL",
                               line_total(line), line.currency, line.source_id, line.product_code))
        elif period not in comp.periods:
            out.append(Finding("billing_period", deal.source_id,
                               f"billing period {period} not offered by {comp.plan_name} (offers {', '.join(comp.periods)})",
                               line_total(line), line.currency, line.source_id, line.product_code))
    if line.term_months and deal.contract_start and deal.contract_end:
        months = contract_months(deal.contract_start, deal.contract_end)
        if abs(months - line.term_months) > cfg.term_tolerance_months:
            out.append(Finding("term_mismatch", deal.source_id,
                               f"line term {line.term_months} months but the contract runs {months} months",
                               Decimal(0), line.currency, line.source_id, line.product_code, WARNING))
    return out


# 7. contract dates vs close date --------------------------------------------------------------------------
def check_contract_dates(deal: Deal) -> list[Finding]:
    out = []
    if deal.contract_start is None or deal.contract_end is None:
        if deal.is_won:
            out.append(Finding("contract_dates", deal.source_id, "won deal without contract start/end dates",
                               deal.amount or Decimal(0), deal.currency))
        return out
    if deal.contract_end <= deal.contract_start:
        out.append(Finding("contract_dates", deal.source_id,
                           f"contract end {deal.contract_end} is not after start {deal.contract_start}",
                           deal.amount or Decimal(0), deal.currency))
    if deal.close_date and deal.contract_start < deal.close_date:
        out.append(Finding("backdated_contract", deal.source_id,
                           f"contract starts {deal.contract_start}, before the close date {deal.close_date}",
                           Decimal(0), deal.currency, severity=WARNING))
    return out


# 9. seats within the plan's limits ---------------------------------------------------------------------------
def check_seats(deal: Deal, line: LineItem, comp: BillingComponent | None) -> list[Finding]:
    if comp is None or line.quantity is None:
        return []
    qty = line.quantity
    if comp.fee_type == "SLOT":
        if qty != qty.to_integral_value():
            return [Finding("seats", deal.source_id, f"seat count {qty} is not a whole number", Decimal(0),
                            line.currency, line.source_id, line.product_code)]
        lo, hi = comp.min_slots, comp.max_slots
        if (lo is not None and qty < lo) or (hi is not None and qty > hi):
            price = comp.price_for(line.billing_period) or Decimal(0)
            gap = (lo - qty) if lo is not None and qty < lo else (qty - (hi or 0))
            return [Finding("seats", deal.source_id, f"{qty} seats outside the plan's {lo}..{hi}",
                            _q(abs(gap) * price), line.currency, line.source_id, line.product_code)]
    elif comp.fee_type in ("RATE", "ONE_TIME") and qty != 1:
        return [Finding("seats", deal.source_id, f"flat-priced {comp.product_code} sold with quantity {qty}",
                        _q(abs(qty - 1) * (line.unit_price or Decimal(0))), line.currency, line.source_id,
                        line.product_code, WARNING)]
    return []


def run_checks(deal: Deal, lines: Sequence[LineItem], catalog: BillingCatalog, mapping: ProductMapping,
               cfg: CheckConfig | None = None, *, customer_currency: str | None = None) -> list[Finding]:
    """Every check for one deal and its lines."""
    cfg = cfg or CheckConfig()
    comps = [mapping.component(li.product_code) for li in lines]
    out = check_amount(deal, lines, cfg) + check_contract_dates(deal)
    out += check_currency(deal, lines, comps, customer_currency)
    for line, comp in zip(lines, comps, strict=True):
        out += check_line_math(deal, line, cfg)
        out += check_list_price(deal, line, comp, cfg)
        out += check_discount(deal, line, cfg)
        out += check_period_term(deal, line, comp, cfg)
        out += check_seats(deal, line, comp)
    return out


def blocking(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]
