"""Which billing component a CRM product is: configured entries first, then auto-match by code.

``product_map`` (settings) maps a CRM product code to a billing plan component id, a billing
product id, or a billing product code. Products that match nothing are reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crmsync.billing.catalog import BillingCatalog, BillingComponent


@dataclass(slots=True)
class MatchReport:
    configured: dict[str, str] = field(default_factory=dict)  # CRM code -> component id
    auto: dict[str, str] = field(default_factory=dict)
    unmatched_crm: list[str] = field(default_factory=list)  # CRM codes with no billing component
    unmatched_billing: list[str] = field(default_factory=list)  # billing product codes nobody sells
    bad_config: dict[str, str] = field(default_factory=dict)  # configured code -> target that does not exist


@dataclass(slots=True)
class ProductMapping:
    by_code: dict[str, BillingComponent]
    report: MatchReport

    def component(self, code: str | None) -> BillingComponent | None:
        return self.by_code.get(code) if code else None


def build_mapping(crm_codes: Iterable[str], catalog: BillingCatalog,
                  configured: Mapping[str, str] | None = None) -> ProductMapping:
    """Map every CRM product code; the one-product plan's component wins over a bundle's."""
    configured = configured or {}
    report = MatchReport()
    comps = list(catalog.components())
    single = {}
    for plan in catalog.plans:
        if len(plan.components) == 1 and plan.components[0].product_code:
            single[plan.components[0].product_code] = plan.components[0]
    by_code: dict[str, BillingComponent] = {}
    codes = sorted(set(crm_codes))
    for code in codes:
        target = configured.get(code)
        if target is not None:
            hit = next((c for c in comps if target in (c.component_id, c.product_id)), None)
            hit = hit or single.get(target) or next((c for c in comps if c.product_code == target), None)
            if hit is None:
                report.bad_config[code] = target
            else:
                by_code[code] = hit
                report.configured[code] = hit.component_id
                continue
        hit = single.get(code) or next((c for c in comps if c.product_code == code), None)
        if hit is None:
            report.unmatched_crm.append(code)
        else:
            by_code[code] = hit
            report.auto[code] = hit.component_id
    sold = {c.product_code for c in by_code.values()}
    report.unmatched_billing = sorted({c.product_code for c in comps if c.product_code and c.product_code not in sold})
    return ProductMapping(by_code, report)
