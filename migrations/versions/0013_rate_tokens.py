"""rate-limit tokens shared by the processes on one PostgreSQL database (Telegram's limits across instances)

Revision ID: 0013_rate_tokens
Revises: 0012_organisations
Create Date: 2026-12-02 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013_rate_tokens"
down_revision: str | None = "0012_organisations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_token",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("free_at", sa.Float(), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("key", "slot"),
    )


def downgrade() -> None:
    op.drop_table("rate_token")
