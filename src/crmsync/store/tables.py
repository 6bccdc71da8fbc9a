"""SQLModel tables: one per canonical kind (key ``(connection, source_id)``), plus the
operational tables (cursors, run log, decision log, rule sets, outbox, quarantine, links, state).

The migration ``migrations/versions/0001_initial.py`` creates exactly this schema; a test compares
the two with alembic's ``compare_metadata`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy import Table as SATable
from sqlmodel import Field, SQLModel

from crmsync.model import ObjectType
from crmsync.store.types import ExactDecimal, JSONDoc, UTCDateTime

metadata: MetaData = SQLModel.metadata


def _ts(*, nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, **kw)


def _dec() -> Any:
    return Field(default=None, sa_type=ExactDecimal(), nullable=True)


def _str(*, nullable: bool = True, default: Any = None, **kw: Any) -> Any:
    return Field(default=default, sa_type=String(), nullable=nullable, **kw)


def _text() -> Any:
    return Field(default=None, sa_type=Text(), nullable=True)


def _cur() -> Any:
    return Field(default=None, sa_type=String(3), nullable=True)


def _bool(default: bool) -> Any:
    return Field(default=default, sa_type=Boolean(), nullable=False)


def _int(*, nullable: bool = True, default: Any = None) -> Any:
    return Field(default=default, sa_type=Integer(), nullable=nullable)


def _date() -> Any:
    return Field(default=None, sa_type=Date(), nullable=True)


def _json(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_type=JSONDoc(), nullable=nullable)


def _record_index(table: str) -> tuple[Index]:
    return (Index(f"ix_{table}_connection_modified_at", "connection", "modified_at"),)


class RecordColumns(SQLModel):
    """Columns every canonical table has (``Record`` fields plus store bookkeeping)."""

    connection: str = Field(primary_key=True, sa_type=String())
    source_id: str = Field(primary_key=True, sa_type=String())
    source_object: str = _str(nullable=False)
    modified_at: dt.datetime = _ts(nullable=False)
    created_at: dt.datetime | None = _ts()
    deleted: bool = _bool(False)
    extra: dict[str, Any] = _json()
    synced_at: dt.datetime = _ts(nullable=False)
    content_hash: str = _str(nullable=False)


class OwnerRow(RecordColumns, table=True):
    __tablename__ = "owners"
    __table_args__ = _record_index("owners")

    name: str | None = _text()
    email: str | None = _str()
    active: bool = _bool(True)
    team: str | None = _str()
    region: str | None = _str()
    timezone: str = _str(nullable=False, default="UTC")
    working_hours: dict[str, Any] = _json()
    capacity_per_day: int | None = _int()
    capacity_per_month: int | None = _int()
    manager_id: str | None = _str()
    out_of_office: bool = _bool(False)


class PipelineRow(RecordColumns, table=True):
    __tablename__ = "pipelines"
    __table_args__ = _record_index("pipelines")

    name: str = Field(sa_type=Text(), nullable=False)
    display_order: int = _int(nullable=False, default=0)


class StageRow(RecordColumns, table=True):
    __tablename__ = "stages"
    __table_args__ = _record_index("stages")

    name: str = Field(sa_type=Text(), nullable=False)
    pipeline_id: str | None = _str()
    display_order: int = _int(nullable=False, default=0)
    probability: Decimal | None = _dec()
    is_closed: bool = _bool(False)
    is_won: bool = _bool(False)


class AccountRow(RecordColumns, table=True):
    __tablename__ = "accounts"
    __table_args__ = _record_index("accounts")

    name: str | None = _text()
    domain: str | None = _str()
    industry: str | None = _str()
    country: str | None = _str()
    region: str | None = _str()
    segment: str | None = _str()
    employees: int | None = _int()
    annual_revenue: Decimal | None = _dec()
    owner_id: str | None = _str()


class ContactRow(RecordColumns, table=True):
    __tablename__ = "contacts"
    __table_args__ = _record_index("contacts")

    first_name: str | None = _text()
    last_name: str | None = _text()
    email: str | None = _str()
    title: str | None = _text()
    account_id: str | None = _str()
    owner_id: str | None = _str()


class LeadRow(RecordColumns, table=True):
    __tablename__ = "leads"
    __table_args__ = _record_index("leads")

    first_name: str | None = _text()
    last_name: str | None = _text()
    email: str | None = _str()
    company: str | None = _text()
    title: str | None = _text()
    status: str | None = _str()
    source: str | None = _str()
    country: str | None = _str()
    region: str | None = _str()
    industry: str | None = _str()
    employees: int | None = _int()
    owner_id: str | None = _str()
    score: Decimal | None = _dec()
    grade: str | None = _str()
    lifecycle_stage: str | None = _str()
    last_activity_at: dt.datetime | None = _ts()
    is_converted: bool = _bool(False)
    converted_account_id: str | None = _str()


class DealRow(RecordColumns, table=True):
    __tablename__ = "deals"
    __table_args__ = _record_index("deals")

    name: str | None = _text()
    amount: Decimal | None = _dec()
    currency: str | None = _cur()
    pipeline_id: str | None = _str()
    stage_id: str | None = _str()
    probability: Decimal | None = _dec()
    is_closed: bool = _bool(False)
    is_won: bool = _bool(False)
    close_date: dt.date | None = _date()
    owner_id: str | None = _str()
    account_id: str | None = _str()
    contact_ids: list[str] = _json()
    deal_type: str | None = _str()
    lead_source: str | None = _str()
    stage_changed_at: dt.datetime | None = _ts()
    last_activity_at: dt.datetime | None = _ts()
    contract_start: dt.date | None = _date()
    contract_end: dt.date | None = _date()


class ProductRow(RecordColumns, table=True):
    __tablename__ = "products"
    __table_args__ = _record_index("products")

    name: str | None = _text()
    code: str | None = _str()
    family: str | None = _str()
    active: bool = _bool(True)
    unit_price: Decimal | None = _dec()
    currency: str | None = _cur()
    billing_period: str | None = _str()


class PriceBookEntryRow(RecordColumns, table=True):
    __tablename__ = "price_book_entries"
    __table_args__ = _record_index("price_book_entries")

    price_book_id: str | None = _str()
    product_id: str | None = _str()
    unit_price: Decimal | None = _dec()
    currency: str | None = _cur()
    active: bool = _bool(True)


class LineItemRow(RecordColumns, table=True):
    __tablename__ = "line_items"
    __table_args__ = (*_record_index("line_items"),
                      Index("ix_line_items_connection_deal", "connection", "deal_id"))  # children of a deal

    deal_id: str | None = _str()
    product_id: str | None = _str()
    product_code: str | None = _str()
    name: str | None = _text()
    quantity: Decimal | None = _dec()
    unit_price: Decimal | None = _dec()
    list_price: Decimal | None = _dec()
    discount_percent: Decimal | None = _dec()
    discount_amount: Decimal | None = _dec()
    total: Decimal | None = _dec()
    currency: str | None = _cur()
    billing_period: str | None = _str()
    term_months: int | None = _int()
    service_date: dt.date | None = _date()


class TaskRow(RecordColumns, table=True):
    __tablename__ = "tasks"
    __table_args__ = _record_index("tasks")

    subject: str | None = _text()
    owner_id: str | None = _str()
    deal_id: str | None = _str()
    lead_id: str | None = _str()
    due_date: dt.date | None = _date()
    done: bool = _bool(False)
    crmsync_key: str | None = _str()


RECORD_ROWS: dict[ObjectType, type[RecordColumns]] = {
    ObjectType.OWNER: OwnerRow,
    ObjectType.PIPELINE: PipelineRow,
    ObjectType.STAGE: StageRow,
    ObjectType.ACCOUNT: AccountRow,
    ObjectType.CONTACT: ContactRow,
    ObjectType.LEAD: LeadRow,
    ObjectType.DEAL: DealRow,
    ObjectType.PRODUCT: ProductRow,
    ObjectType.PRICE_BOOK_ENTRY: PriceBookEntryRow,
    ObjectType.LINE_ITEM: LineItemRow,
    ObjectType.TASK: TaskRow,
}


def record_table(object_type: ObjectType | str) -> SATable:
    """The Core table of a canonical kind (``"deal"`` -> ``deals``)."""
    return RECORD_ROWS[ObjectType(object_type)].__table__  # type: ignore[attr-defined,no-any-return]


# --- operational tables -------------------------------------------------------------------------


class SyncCursorRow(SQLModel, table=True):
    __tablename__ = "sync_cursors"

    connection: str = Field(primary_key=True, sa_type=String())
    object_name: str = Field(primary_key=True, sa_type=String())
    cursor: dict[str, Any] = _json()
    updated_at: dt.datetime = _ts(nullable=False)


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started_at", "started_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=Integer())
    kind: str = _str(nullable=False)  # sync | backfill | rules | sweep | push | billing
    connection: str | None = _str()
    object_name: str | None = _str()
    started_at: dt.datetime = _ts(nullable=False)
    finished_at: dt.datetime | None = _ts()
    status: str = _str(nullable=False)  # running | ok | failed | stopped | interrupted
    counts: dict[str, Any] = _json()
    error: str | None = _text()
    owner: str | None = _str()  # host:pid:start of the process running it (migration 0004)


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (
        Index("ix_decisions_record", "connection", "object_type", "source_id"),
        Index("ix_decisions_run_id", "run_id"),
        Index("ix_decisions_idempotency_key", "idempotency_key"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    run_id: int | None = Field(default=None, sa_type=Integer(), nullable=True, foreign_key="runs.id")
    rule_set_hash: str | None = _str()
    rule_kind: str = _str(nullable=False)
    rule_name: str = _str(nullable=False)
    connection: str = _str(nullable=False)
    object_type: str = _str(nullable=False)
    source_id: str | None = _str()
    action: str = _str(nullable=False)
    fields: dict[str, Any] = _json()
    reason: str | None = _text()
    created_at: dt.datetime = _ts(nullable=False)
    # The deciding rule's idempotency key: a finding or action already logged is not logged again.
    idempotency_key: str | None = _str()


class RuleSetRow(SQLModel, table=True):
    __tablename__ = "rule_sets"

    hash: str = Field(primary_key=True, sa_type=String())
    applied_at: dt.datetime = _ts(nullable=False)
    author: str | None = _str()
    source: str = Field(sa_type=Text(), nullable=False)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
        Index("ix_outbox_connection_status_id", "connection", "status", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    connection: str = _str(nullable=False)
    object_name: str = _str(nullable=False)
    source_id: str | None = _str()  # null for creates
    operation: str = _str(nullable=False)  # update | create | upsert | delete
    fields: dict[str, Any] = _json()
    based_on_modified_at: dt.datetime | None = _ts()
    idempotency_key: str = _str(nullable=False)
    status: str = _str(nullable=False)  # pending | in_flight | done | failed | parked | dropped
    attempts: int = _int(nullable=False, default=0)
    last_error: str | None = _text()
    created_at: dt.datetime = _ts(nullable=False)
    updated_at: dt.datetime = _ts(nullable=False)
    result_id: str | None = _str()


class QuarantineRow(SQLModel, table=True):
    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_connection_object", "connection", "object_name"),
                      Index("ix_quarantine_record", "connection", "object_name", "source_id"))

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    connection: str = _str(nullable=False)
    object_name: str = _str(nullable=False)
    source_id: str | None = _str()
    payload: dict[str, Any] = _json()
    reason: str = Field(sa_type=Text(), nullable=False)
    created_at: dt.datetime = _ts(nullable=False)
    resolved: bool = _bool(False)
    field: str | None = _str()  # the field at fault, when known (migration 0004)


class LinkRow(SQLModel, table=True):
    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("left_connection", "left_object", "left_id", name="uq_links_left"),
        UniqueConstraint("right_connection", "right_object", "right_id", name="uq_links_right"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=Integer())
    left_connection: str = _str(nullable=False)
    left_object: str = _str(nullable=False)
    left_id: str = _str(nullable=False)
    right_connection: str = _str(nullable=False)
    right_object: str = _str(nullable=False)
    right_id: str = _str(nullable=False)
    created_at: dt.datetime = _ts(nullable=False)


class KVStateRow(SQLModel, table=True):
    __tablename__ = "kv_state"

    namespace: str = Field(primary_key=True, sa_type=String())
    key: str = Field(primary_key=True, sa_type=String())
    value: Any = _json(nullable=True)
    updated_at: dt.datetime = _ts(nullable=False)


class EngagementRecordRow(SQLModel, table=True):
    """A sales-engagement tool's object (Outreach prospect, sequence state, mailing, call), flat JSON;
    ``email`` is the person's address where the object names one (prospects), for matching CRM records."""

    __tablename__ = "engagement_records"
    __table_args__ = (Index("ix_engagement_records_email", "connection", "email"),)

    connection: str = Field(primary_key=True, sa_type=String())
    object_name: str = Field(primary_key=True, sa_type=String())
    source_id: str = Field(primary_key=True, sa_type=String())
    modified_at: dt.datetime = _ts(nullable=False)
    email: str | None = _str()
    data: Any = _json()
    deleted: bool = Field(default=False, nullable=False)


class StageEventRow(SQLModel, table=True):
    """A deal entering a stage (``from_stage_id`` None: first seen); see ``crmsync.store.stage_events``."""

    __tablename__ = "stage_events"
    __table_args__ = (
        UniqueConstraint("connection", "deal_id", "at", "to_stage_id", name="uq_stage_events_deal_at_stage"),
        Index("ix_stage_events_connection_pipeline", "connection", "pipeline_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    connection: str = _str(nullable=False)
    deal_id: str = _str(nullable=False)
    pipeline_id: str | None = _str()
    from_stage_id: str | None = _str()
    to_stage_id: str = _str(nullable=False)
    at: dt.datetime = _ts(nullable=False)
    source: str = _str(nullable=False)  # sync (a stage change seen on pull) | history (the CRM's own)
    recorded_at: dt.datetime = _ts(nullable=False)


class ConsoleUserRow(SQLModel, table=True):
    """An admin-console account (``crmsync.console.accounts``): argon2 hash, never the password."""

    __tablename__ = "console_users"
    __table_args__ = (UniqueConstraint("username", name="uq_console_users_username"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=Integer())
    username: str = _str(nullable=False)
    password_hash: str = _str(nullable=False)
    role: str = _str(nullable=False)  # admin | viewer
    created_at: dt.datetime = _ts(nullable=False)
    failed_logins: int = _int(nullable=False, default=0)
    locked_until: dt.datetime | None = _ts()
    last_login_at: dt.datetime | None = _ts()


class ConsoleSessionRow(SQLModel, table=True):
    """A signed-in browser: the cookie carries a random token, the store keeps only its sha256."""

    __tablename__ = "console_sessions"

    token_hash: str = Field(primary_key=True, sa_type=String())
    user_id: int = Field(sa_type=Integer(), nullable=False, foreign_key="console_users.id")
    csrf_token: str = _str(nullable=False)
    created_at: dt.datetime = _ts(nullable=False)
    expires_at: dt.datetime = _ts(nullable=False)


class AuditRow(SQLModel, table=True):
    """Who changed what, when (console edits, publishes, roll-backs, outbox and account actions)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite"))
    at: dt.datetime = _ts(nullable=False)
    actor: str = _str(nullable=False)
    action: str = _str(nullable=False)
    target: str | None = _str()
    detail: dict[str, Any] = _json()


class RuleSetVersionRow(SQLModel, table=True):
    """A published rule-set version: the files' exact text (comments included), so it can be restored."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (Index("ix_rule_set_versions_hash", "hash"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=Integer())
    hash: str = _str(nullable=False)
    author: str = _str(nullable=False)
    note: str | None = _text()
    origin: str = _str(nullable=False)  # publish | rollback | files (found on disk)
    files: dict[str, Any] = _json()  # file name -> text
    published_at: dt.datetime = _ts(nullable=False)


def _t(row: type[SQLModel]) -> SATable:
    return row.__table__  # type: ignore[attr-defined,no-any-return]



# --- activity around the CRM records (migration 0007): recorded calls, usage, invoices ----------
class CallRow(SQLModel, table=True):
    """A recorded call (Gong); ``data`` holds CRM refs, trackers, topics, highlights, brief, outcome."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_connection_started", "connection", "started"),)

    connection: str = Field(primary_key=True, sa_type=String())
    call_id: str = Field(primary_key=True, sa_type=String())
    started: dt.datetime = _ts(nullable=False)
    duration_s: int = _int(nullable=False, default=0)
    title: str | None = _str()
    primary_user_id: str | None = _str()
    data: dict[str, Any] = _json()
    synced_at: dt.datetime = _ts(nullable=False)


class CallPartyRow(SQLModel, table=True):
    __tablename__ = "call_parties"
    __table_args__ = (Index("ix_call_parties_email", "email"),)

    connection: str = Field(primary_key=True, sa_type=String())
    call_id: str = Field(primary_key=True, sa_type=String())
    position: int = Field(primary_key=True, sa_type=Integer())
    email: str | None = _str()
    name: str | None = _str()
    title: str | None = _str()
    affiliation: str = _str(nullable=False, default="Unknown")
    user_id: str | None = _str()


class MeterReadingRow(SQLModel, table=True):
    """Usage of one metered component of a subscription over one billing period (Meteroid)."""

    __tablename__ = "meter_readings"

    connection: str = Field(primary_key=True, sa_type=String())
    subscription_id: str = Field(primary_key=True, sa_type=String())
    metric_id: str = Field(primary_key=True, sa_type=String())
    period_start: dt.date = Field(primary_key=True, sa_type=Date())
    period_end: dt.date = Field(sa_type=Date(), nullable=False)
    customer_id: str = _str(nullable=False)
    metric_code: str = _str(nullable=False)
    metric_name: str | None = _str()
    value: Decimal = Field(sa_type=ExactDecimal(), nullable=False)
    included: Decimal | None = _dec()
    purchase_order: str | None = _str()
    synced_at: dt.datetime = _ts(nullable=False)


class InvoiceRow(SQLModel, table=True):
    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_connection_customer", "connection", "customer_id"),)

    connection: str = Field(primary_key=True, sa_type=String())
    invoice_id: str = Field(primary_key=True, sa_type=String())
    customer_id: str = _str(nullable=False)
    subscription_id: str | None = _str()
    status: str = _str(nullable=False)
    payment_status: str = _str(nullable=False)
    invoice_date: dt.date = Field(sa_type=Date(), nullable=False)
    due_date: dt.date | None = _date()
    paid_at: dt.datetime | None = _ts()
    total_cents: int = Field(sa_type=BigInteger(), nullable=False)
    amount_due_cents: int = Field(sa_type=BigInteger(), nullable=False)
    currency: str = Field(sa_type=String(3), nullable=False)
    synced_at: dt.datetime = _ts(nullable=False)


sync_cursors = _t(SyncCursorRow)
runs = _t(RunRow)
decisions = _t(DecisionRow)
rule_sets = _t(RuleSetRow)
outbox = _t(OutboxRow)
quarantine = _t(QuarantineRow)
links = _t(LinkRow)
kv_state = _t(KVStateRow)
stage_events = _t(StageEventRow)
console_users = _t(ConsoleUserRow)
console_sessions = _t(ConsoleSessionRow)
audit_log = _t(AuditRow)
rule_set_versions = _t(RuleSetVersionRow)
calls = _t(CallRow)
call_parties = _t(CallPartyRow)
meter_readings = _t(MeterReadingRow)
invoices = _t(InvoiceRow)
engagement_records = _t(EngagementRecordRow)

ALL_TABLES: tuple[SATable, ...] = (
    *(record_table(t) for t in RECORD_ROWS),
    sync_cursors,
    runs,
    decisions,
    rule_sets,
    outbox,
    quarantine,
    links,
    kv_state,
    stage_events,
    console_users,
    console_sessions,
    audit_log,
    rule_set_versions,
    calls,
    call_parties,
    meter_readings,
    invoices,
    engagement_records,
)

# shadow mode and experiments (migration 0008), declared in their own module on the same metadata
from crmsync.store.workflow_tables import WORKFLOW_TABLES  # noqa: E402

ALL_TABLES = ALL_TABLES + WORKFLOW_TABLES
