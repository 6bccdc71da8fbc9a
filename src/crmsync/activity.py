"""Canonical shapes of what happens around the CRM records: recorded calls (revenue intelligence)
and product usage and invoices (billing). Connectors build them, the store keeps them, rules read
them. Timestamps are aware UTC, money is ``Decimal``, quantities are ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class CallParty:
    email: str | None  # lower-cased
    name: str | None
    title: str | None
    affiliation: str  # Internal | External | Unknown
    user_id: str | None = None  # the call system's user id (internal parties)


@dataclass(frozen=True, slots=True)
class CrmRef:
    """A CRM object the call system linked the call to (Gong context objects)."""

    system: str  # e.g. Salesforce
    object_type: str  # e.g. Opportunity, Account
    object_id: str


@dataclass(frozen=True, slots=True)
class Call:
    connection: str
    call_id: str
    started: dt.datetime
    duration_s: int
    title: str | None
    primary_user_id: str | None
    parties: tuple[CallParty, ...] = ()
    crm_refs: tuple[CrmRef, ...] = ()
    trackers: dict[str, int] = field(default_factory=dict)  # tracker name -> hits
    tracker_phrases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    topics: dict[str, int] = field(default_factory=dict)  # topic name -> seconds
    highlights: dict[str, tuple[str, ...]] = field(default_factory=dict)  # section title -> items
    brief: str | None = None
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class MeterReading:
    """Usage of one metered component of a subscription over a billing period."""

    connection: str
    subscription_id: str
    customer_id: str
    metric_id: str
    metric_code: str
    metric_name: str
    period_start: dt.date
    period_end: dt.date
    value: Decimal
    included: Decimal | None  # the plan's limit for this metric (capacity included), None = no limit
    purchase_order: str | None = None  # the subscription's PO: crmsync's marker names the CRM deal


@dataclass(frozen=True, slots=True)
class InvoiceFact:
    connection: str
    invoice_id: str
    customer_id: str
    subscription_id: str | None
    status: str  # DRAFT | FINALIZED | UNCOLLECTIBLE | VOID
    payment_status: str  # UNPAID | PARTIALLY_PAID | PAID | ERRORED | PROCESSING
    invoice_date: dt.date
    due_date: dt.date | None
    paid_at: dt.datetime | None
    total_cents: int
    amount_due_cents: int
    currency: str

    def overdue(self, today: dt.date) -> bool:
        return (self.status == "FINALIZED" and self.payment_status != "PAID" and self.due_date is not None
                and self.due_date < today)
