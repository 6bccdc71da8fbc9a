"""calls and their parties (revenue intelligence), meter readings and invoices (billing usage)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmsync.store.types import ExactDecimal, JSONDoc, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("started", UTCDateTime(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("primary_user_id", sa.String(), nullable=True),
        sa.Column("data", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "call_id"),
    )
    op.create_index("ix_calls_connection_started", "calls", ["connection", "started"], unique=False)
    op.create_table(
        "call_parties",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("affiliation", sa.String(), nullable=False),
        sa.Column("user_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "call_id", "position"),
    )
    op.create_index("ix_call_parties_email", "call_parties", ["email"], unique=False)
    op.create_table(
        "meter_readings",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=False),
        sa.Column("metric_id", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("metric_code", sa.String(), nullable=False),
        sa.Column("metric_name", sa.String(), nullable=True),
        sa.Column("value", ExactDecimal(), nullable=False),
        sa.Column("included", ExactDecimal(), nullable=True),
        sa.Column("purchase_order", sa.String(), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "subscription_id", "metric_id", "period_start"),
    )
    op.create_table(
        "invoices",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("invoice_id", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("subscription_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("payment_status", sa.String(), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("amount_due_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "invoice_id"),
    )
    op.create_index("ix_invoices_connection_customer", "invoices", ["connection", "customer_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_invoices_connection_customer", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("meter_readings")
    op.drop_index("ix_call_parties_email", table_name="call_parties")
    op.drop_table("call_parties")
    op.drop_index("ix_calls_connection_started", table_name="calls")
    op.drop_table("calls")
