"""contact addresses on several channels; the route an occurrence is sent on

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import coordbot.core.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_address",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.Column("bound_at", coordbot.core.types.AwareDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "channel", name="uq_contact_address_channel"),
    )
    with op.batch_alter_table("contact_address", schema=None) as batch_op:
        batch_op.create_index("ix_contact_address_lookup", ["channel", "address"], unique=False)
    with op.batch_alter_table("reminder_occurrence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("route", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("reminder_occurrence", schema=None) as batch_op:
        batch_op.drop_column("route")
    with op.batch_alter_table("contact_address", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_address_lookup")
    op.drop_table("contact_address")
