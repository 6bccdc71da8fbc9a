"""quarantine: the field at fault, and one open entry per record; runs: the process that owns a run;
line items: looked up by deal

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("field", sa.String(), nullable=True))
    op.create_index("ix_quarantine_record", "quarantine", ["connection", "object_name", "source_id"], unique=False)
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.String(), nullable=True))
    op.create_index("ix_line_items_connection_deal", "line_items", ["connection", "deal_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_line_items_connection_deal", table_name="line_items")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
    op.drop_index("ix_quarantine_record", table_name="quarantine")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("field")
