"""a report's percent keeps its decimals as written (53.3, 85.07): integer → numeric(7, 3)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("progress_report", schema=None) as batch_op:
        batch_op.alter_column("percent", existing_type=sa.Integer(), type_=sa.Numeric(7, 3), existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("progress_report", schema=None) as batch_op:
        batch_op.alter_column("percent", existing_type=sa.Numeric(7, 3), type_=sa.Integer(), existing_nullable=True)
