"""Canonical records: the one shape every CRM's objects are normalised into.

Every record keeps where it came from (connection, source object, source id), the source's
modification timestamp and the source fields that no mapping claimed (``extra``), so custom
fields survive a round trip. Money is ``Decimal`` with a currency; timestamps are
timezone-aware UTC (``utc()`` rejects naive values instead of guessing).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar

UTC = dt.UTC


class ObjectType(StrEnum):
    """Canonical object kinds; the store has one table per kind."""

    DEAL = "deal"
    LEAD = "lead"
    ACCOUNT = "account"
    CONTACT = "contact"
    OWNER = "owner"
    PIPELINE = "pipeline"
    STAGE = "stage"
    LINE_ITEM = "line_item"
    PRODUCT = "product"
    PRICE_BOOK_ENTRY = "price_book_entry"
    TASK = "task"


class ModelError(ValueError):
    """A value that cannot become part of a canonical record (names the field).

    ``field`` is the field at fault when the raiser knows it; otherwise ``field_of`` reads it from
    the message, which by convention starts with ``<field>: ``.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): ")


def field_of(exc: BaseException) -> str | None:
    """The field an error names: its ``field`` attribute, or the ``<field>: `` its message starts with."""
    named = getattr(exc, "field", None)
    if isinstance(named, str) and named:
        return named
    match = _FIELD_PREFIX.match(str(exc))
    return match.group(1) if match else None


def utc(value: dt.datetime, *, field_name: str = "timestamp") -> dt.datetime:
    """Return ``value`` converted to UTC; naive datetimes are refused, never guessed."""
    if value.tzinfo is UTC:  # already UTC (what every connector hands over): astimezone would return it as is
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ModelError(f"{field_name}: naive datetime {value.isoformat()} (expected timezone-aware)")
    return value.astimezone(UTC)


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


#: a digit string is epoch milliseconds only from 12 digits (1973 on); ``20240102`` is a basic ISO
#: date, not 5 hours after 1970 - it goes to the ISO parser, which refuses it for lack of a zone
EPOCH_MS_DIGITS = 12


def parse_timestamp(value: Any, *, field_name: str = "timestamp") -> dt.datetime | None:
    """Parse the timestamp forms the CRMs send: ISO 8601 with Z/offset/+0000, or epoch ms."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return utc(value, field_name=field_name)
    if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit() and len(value) >= EPOCH_MS_DIGITS):
        return dt.datetime.fromtimestamp(int(value) / 1000, UTC)
    if not isinstance(value, str):
        raise ModelError(f"{field_name}: expected a timestamp, got {type(value).__name__}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit() and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]  # Salesforce's +0000
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ModelError(f"{field_name}: {value!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        raise ModelError(f"{field_name}: {value!r} has no timezone")
    return parsed.astimezone(UTC)


def parse_date(value: Any, *, field_name: str = "date") -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return utc(value, field_name=field_name).date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 10:  # a timestamp sent for a date field (HubSpot closedate)
            ts = parse_timestamp(text, field_name=field_name)
            return ts.date() if ts else None
        try:
            return dt.date.fromisoformat(text)
        except ValueError as exc:
            raise ModelError(f"{field_name}: {value!r} is not a date (YYYY-MM-DD)") from exc
    raise ModelError(f"{field_name}: expected a date, got {type(value).__name__}")


def parse_decimal(value: Any, *, field_name: str = "amount") -> Decimal | None:
    """Parse money or numbers to Decimal; floats go through ``repr`` so 0.1 stays 0.1."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ModelError(f"{field_name}: expected a number, got a boolean")
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ModelError(f"{field_name}: {value!r} is not a number") from exc
    if not result.is_finite():
        raise ModelError(f"{field_name}: {value!r} is not a finite number")
    return result


def parse_bool(value: Any, *, field_name: str = "flag") -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ModelError(f"{field_name}: {value!r} is not a boolean")


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise ModelError("money.amount: expected Decimal")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ModelError(f"money.currency: {self.currency!r} is not an ISO 4217 code")


@dataclass(slots=True, kw_only=True)
class Record:
    """Fields every canonical record has."""

    object_type: ClassVar[ObjectType]

    connection: str
    source_object: str
    source_id: str
    modified_at: dt.datetime
    created_at: dt.datetime | None = None
    deleted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.source_id:
            raise ModelError(f"{self.source_object}: missing source id")
        self.modified_at = utc(self.modified_at, field_name="modified_at")
        if self.created_at is not None:
            self.created_at = utc(self.created_at, field_name="created_at")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.connection, self.object_type.value, self.source_id)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True, kw_only=True)
class Owner(Record):
    object_type: ClassVar[ObjectType] = ObjectType.OWNER

    name: str | None = None
    email: str | None = None
    active: bool = True
    team: str | None = None
    region: str | None = None
    timezone: str = "UTC"
    # Working hours in the owner's local time, e.g. {"start": "09:00", "end": "17:00", "days": [0,1,2,3,4]}
    working_hours: dict[str, Any] = field(default_factory=dict)
    capacity_per_day: int | None = None
    capacity_per_month: int | None = None
    manager_id: str | None = None
    out_of_office: bool = False


@dataclass(slots=True, kw_only=True)
class Pipeline(Record):
    object_type: ClassVar[ObjectType] = ObjectType.PIPELINE

    name: str
    display_order: int = 0


@dataclass(slots=True, kw_only=True)
class Stage(Record):
    object_type: ClassVar[ObjectType] = ObjectType.STAGE

    name: str
    pipeline_id: str | None = None
    display_order: int = 0
    probability: Decimal | None = None  # 0..1
    is_closed: bool = False
    is_won: bool = False


@dataclass(slots=True, kw_only=True)
class Account(Record):
    object_type: ClassVar[ObjectType] = ObjectType.ACCOUNT

    name: str | None = None
    domain: str | None = None
    industry: str | None = None
    country: str | None = None
    region: str | None = None
    segment: str | None = None
    employees: int | None = None
    annual_revenue: Decimal | None = None
    owner_id: str | None = None


@dataclass(slots=True, kw_only=True)
class Contact(Record):
    object_type: ClassVar[ObjectType] = ObjectType.CONTACT

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    title: str | None = None
    account_id: str | None = None
    owner_id: str | None = None


@dataclass(slots=True, kw_only=True)
class Lead(Record):
    object_type: ClassVar[ObjectType] = ObjectType.LEAD

    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    company: str | None = None
    title: str | None = None
    status: str | None = None
    source: str | None = None
    country: str | None = None
    region: str | None = None
    industry: str | None = None
    employees: int | None = None
    owner_id: str | None = None
    score: Decimal | None = None
    grade: str | None = None
    lifecycle_stage: str | None = None
    last_activity_at: dt.datetime | None = None
    is_converted: bool = False
    converted_account_id: str | None = None


@dataclass(slots=True, kw_only=True)
class Deal(Record):
    object_type: ClassVar[ObjectType] = ObjectType.DEAL

    name: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    pipeline_id: str | None = None
    stage_id: str | None = None
    probability: Decimal | None = None  # 0..1
    is_closed: bool = False
    is_won: bool = False
    close_date: dt.date | None = None
    owner_id: str | None = None
    account_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    deal_type: str | None = None
    lead_source: str | None = None
    stage_changed_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None
    contract_start: dt.date | None = None
    contract_end: dt.date | None = None

    @property
    def money(self) -> Money | None:
        if self.amount is None or self.currency is None:
            return None
        return Money(self.amount, self.currency)


@dataclass(slots=True, kw_only=True)
class Product(Record):
    object_type: ClassVar[ObjectType] = ObjectType.PRODUCT

    name: str | None = None
    code: str | None = None  # SKU / ProductCode, the auto-match key with billing
    family: str | None = None
    active: bool = True
    unit_price: Decimal | None = None
    currency: str | None = None
    billing_period: str | None = None  # MONTHLY | QUARTERLY | SEMIANNUAL | ANNUAL | ONE_TIME


@dataclass(slots=True, kw_only=True)
class PriceBookEntry(Record):
    object_type: ClassVar[ObjectType] = ObjectType.PRICE_BOOK_ENTRY

    price_book_id: str | None = None
    product_id: str | None = None
    unit_price: Decimal | None = None
    currency: str | None = None
    active: bool = True


@dataclass(slots=True, kw_only=True)
class LineItem(Record):
    object_type: ClassVar[ObjectType] = ObjectType.LINE_ITEM

    deal_id: str | None = None
    product_id: str | None = None
    product_code: str | None = None
    name: str | None = None
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    list_price: Decimal | None = None
    discount_percent: Decimal | None = None
    discount_amount: Decimal | None = None
    total: Decimal | None = None
    currency: str | None = None
    billing_period: str | None = None
    term_months: int | None = None
    service_date: dt.date | None = None


@dataclass(slots=True, kw_only=True)
class Task(Record):
    object_type: ClassVar[ObjectType] = ObjectType.TASK

    subject: str | None = None
    owner_id: str | None = None
    deal_id: str | None = None
    lead_id: str | None = None
    due_date: dt.date | None = None
    done: bool = False
    crmsync_key: str | None = None


RECORD_TYPES: dict[ObjectType, type[Record]] = {
    cls.object_type: cls
    for cls in (Owner, Pipeline, Stage, Account, Contact, Lead, Deal, Product, PriceBookEntry, LineItem, Task)
}
