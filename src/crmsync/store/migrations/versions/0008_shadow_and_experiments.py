"""workflow trials: shadow periods, shadow decisions and records, experiment assignments

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmsync.store.types import JSONDoc, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "shadow_periods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("rule_set_hash", sa.String(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "shadow_decisions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("rule_kind", sa.String(), nullable=False),
        sa.Column("rule_name", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("fields", JSONDoc(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("period_id", "side", "idempotency_key", name="uq_shadow_decisions_key"),
    )
    op.create_index("ix_shadow_decisions_record", "shadow_decisions",
                    ["period_id", "connection", "object_type", "source_id"], unique=False)
    op.create_table(
        "shadow_records",
        sa.Column("period_id", sa.Integer(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("base", JSONDoc(), nullable=False),
        sa.Column("first_evaluated_at", UTCDateTime(), nullable=False),
        sa.Column("last_evaluated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("period_id", "connection", "object_type", "source_id"),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment", sa.String(), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("variant", sa.String(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=False),
        sa.Column("rule_set_hash", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("experiment", "connection", "object_type", "source_id"),
    )
    op.create_index("ix_experiment_assignments_variant", "experiment_assignments", ["experiment", "variant"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_experiment_assignments_variant", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
    op.drop_table("shadow_records")
    op.drop_index("ix_shadow_decisions_record", table_name="shadow_decisions")
    op.drop_table("shadow_decisions")
    op.drop_table("shadow_periods")
