"""engagement_records: sales-engagement tools' objects (prospects, sequence states, mailings, calls)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from crmsync.store.types import JSONDoc, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engagement_records",
        sa.Column("connection", sa.String(), nullable=False),
        sa.Column("object_name", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("modified_at", UTCDateTime(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("data", JSONDoc(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("connection", "object_name", "source_id"),
    )
    op.create_index("ix_engagement_records_email", "engagement_records", ["connection", "email"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_engagement_records_email", table_name="engagement_records")
    op.drop_table("engagement_records")
