"""stage events: deals entering stages, for funnel reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmsync.store.types import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stage_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("deal_id", sa.String(), nullable=False),
        sa.Column("pipeline_id", sa.String(), nullable=True),
        sa.Column("from_stage_id", sa.String(), nullable=True),
        sa.Column("to_stage_id", sa.String(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("connection", "deal_id", "at", "to_stage_id", name="uq_stage_events_deal_at_stage"),
    )
    op.create_index("ix_stage_events_connection_pipeline", "stage_events", ["connection", "pipeline_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_stage_events_connection_pipeline", table_name="stage_events")
    op.drop_table("stage_events")
