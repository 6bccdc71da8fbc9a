"""initial schema: canonical record tables and operational tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmsync.store.types import ExactDecimal, JSONDoc, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("domain", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("segment", sa.String(), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("annual_revenue", ExactDecimal(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_accounts_connection_modified_at", "accounts", ["connection", "modified_at"], unique=False
    )

    op.create_table(
        "contacts",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_contacts_connection_modified_at", "contacts", ["connection", "modified_at"], unique=False
    )

    op.create_table(
        "deals",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("amount", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("pipeline_id", sa.String(), nullable=True),
        sa.Column("stage_id", sa.String(), nullable=True),
        sa.Column("probability", ExactDecimal(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("contact_ids", JSONDoc(), nullable=False),
        sa.Column("deal_type", sa.String(), nullable=True),
        sa.Column("lead_source", sa.String(), nullable=True),
        sa.Column("stage_changed_at", UTCDateTime(), nullable=True),
        sa.Column("last_activity_at", UTCDateTime(), nullable=True),
        sa.Column("contract_start", sa.Date(), nullable=True),
        sa.Column("contract_end", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index("ix_deals_connection_modified_at", "deals", ["connection", "modified_at"], unique=False)

    op.create_table(
        "kv_state",
        sa.Column("namespace", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", JSONDoc(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "key"),
    )
    op.create_table(
        "leads",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("first_name", sa.Text(), nullable=True),
        sa.Column("last_name", sa.Text(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("company", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("employees", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("score", ExactDecimal(), nullable=True),
        sa.Column("grade", sa.String(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(), nullable=True),
        sa.Column("last_activity_at", UTCDateTime(), nullable=True),
        sa.Column("is_converted", sa.Boolean(), nullable=False),
        sa.Column("converted_account_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index("ix_leads_connection_modified_at", "leads", ["connection", "modified_at"], unique=False)

    op.create_table(
        "line_items",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("product_id", sa.String(), nullable=True),
        sa.Column("product_code", sa.String(), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("quantity", ExactDecimal(), nullable=True),
        sa.Column("unit_price", ExactDecimal(), nullable=True),
        sa.Column("list_price", ExactDecimal(), nullable=True),
        sa.Column("discount_percent", ExactDecimal(), nullable=True),
        sa.Column("discount_amount", ExactDecimal(), nullable=True),
        sa.Column("total", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("billing_period", sa.String(), nullable=True),
        sa.Column("term_months", sa.Integer(), nullable=True),
        sa.Column("service_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_line_items_connection_modified_at", "line_items", ["connection", "modified_at"], unique=False
    )

    op.create_table(
        "links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("left_connection", sa.String(), nullable=False),
        sa.Column("left_object", sa.String(), nullable=False),
        sa.Column("left_id", sa.String(), nullable=False),
        sa.Column("right_connection", sa.String(), nullable=False),
        sa.Column("right_object", sa.String(), nullable=False),
        sa.Column("right_id", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("left_connection", "left_object", "left_id", name="uq_links_left"),
        sa.UniqueConstraint("right_connection", "right_object", "right_id", name="uq_links_right"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_name", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=True),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("fields", JSONDoc(), nullable=False),
        sa.Column("based_on_modified_at", UTCDateTime(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("result_id", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_outbox_idempotency_key"),
    )
    op.create_index("ix_outbox_connection_status_id", "outbox", ["connection", "status", "id"], unique=False)

    op.create_table(
        "owners",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("team", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("working_hours", JSONDoc(), nullable=False),
        sa.Column("capacity_per_day", sa.Integer(), nullable=True),
        sa.Column("capacity_per_month", sa.Integer(), nullable=True),
        sa.Column("manager_id", sa.String(), nullable=True),
        sa.Column("out_of_office", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index("ix_owners_connection_modified_at", "owners", ["connection", "modified_at"], unique=False)

    op.create_table(
        "pipelines",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("display_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_pipelines_connection_modified_at", "pipelines", ["connection", "modified_at"], unique=False
    )

    op.create_table(
        "price_book_entries",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("price_book_id", sa.String(), nullable=True),
        sa.Column("product_id", sa.String(), nullable=True),
        sa.Column("unit_price", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_price_book_entries_connection_modified_at",
        "price_book_entries",
        ["connection", "modified_at"],
        unique=False,
    )

    op.create_table(
        "products",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("code", sa.String(), nullable=True),
        sa.Column("family", sa.String(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("unit_price", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("billing_period", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index(
        "ix_products_connection_modified_at", "products", ["connection", "modified_at"], unique=False
    )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_name", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=True),
        sa.Column("payload", JSONDoc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_quarantine_connection_object", "quarantine", ["connection", "object_name"], unique=False
    )

    op.create_table(
        "rule_sets",
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("connection", sa.String(), nullable=True),
        sa.Column("object_name", sa.String(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("counts", JSONDoc(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"], unique=False)

    op.create_table(
        "stages",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("pipeline_id", sa.String(), nullable=True),
        sa.Column("display_order", sa.Integer(), nullable=False),
        sa.Column("probability", ExactDecimal(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index("ix_stages_connection_modified_at", "stages", ["connection", "modified_at"], unique=False)

    op.create_table(
        "sync_cursors",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_name", sa.String(), nullable=False),
        sa.Column("cursor", JSONDoc(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object_name"),
    )
    op.create_table(
        "tasks",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("source_object", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("extra", JSONDoc(), nullable=False),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("lead_id", sa.String(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("crmsync_key", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("connection", "source_id"),
    )
    op.create_index("ix_tasks_connection_modified_at", "tasks", ["connection", "modified_at"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("rule_set_hash", sa.String(), nullable=True),
        sa.Column("rule_kind", sa.String(), nullable=False),
        sa.Column("rule_name", sa.String(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=True),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("fields", JSONDoc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_decisions_record", "decisions", ["connection", "object_type", "source_id"], unique=False
    )
    op.create_index("ix_decisions_run_id", "decisions", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_decisions_run_id", table_name="decisions")
    op.drop_index("ix_decisions_record", table_name="decisions")

    op.drop_table("decisions")
    op.drop_index("ix_tasks_connection_modified_at", table_name="tasks")

    op.drop_table("tasks")
    op.drop_table("sync_cursors")
    op.drop_index("ix_stages_connection_modified_at", table_name="stages")

    op.drop_table("stages")
    op.drop_index("ix_runs_started_at", table_name="runs")

    op.drop_table("runs")
    op.drop_table("rule_sets")
    op.drop_index("ix_quarantine_connection_object", table_name="quarantine")

    op.drop_table("quarantine")
    op.drop_index("ix_products_connection_modified_at", table_name="products")

    op.drop_table("products")
    op.drop_index("ix_price_book_entries_connection_modified_at", table_name="price_book_entries")

    op.drop_table("price_book_entries")
    op.drop_index("ix_pipelines_connection_modified_at", table_name="pipelines")

    op.drop_table("pipelines")
    op.drop_index("ix_owners_connection_modified_at", table_name="owners")

    op.drop_table("owners")
    op.drop_index("ix_outbox_connection_status_id", table_name="outbox")

    op.drop_table("outbox")
    op.drop_table("links")
    op.drop_index("ix_line_items_connection_modified_at", table_name="line_items")

    op.drop_table("line_items")
    op.drop_index("ix_leads_connection_modified_at", table_name="leads")

    op.drop_table("leads")
    op.drop_table("kv_state")
    op.drop_index("ix_deals_connection_modified_at", table_name="deals")

    op.drop_table("deals")
    op.drop_index("ix_contacts_connection_modified_at", table_name="contacts")

    op.drop_table("contacts")
    op.drop_index("ix_accounts_connection_modified_at", table_name="accounts")

    op.drop_table("accounts")
