"""the web desk: one-time sign-in links and the office's passwords

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import coordbot.core.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_signin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("created_at", coordbot.core.types.AwareDateTime(), nullable=False),
        sa.Column("expires_at", coordbot.core.types.AwareDateTime(), nullable=False),
        sa.Column("used_at", coordbot.core.types.AwareDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nonce_hash"),
    )
    with op.batch_alter_table("web_signin", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_signin_contact_id"), ["contact_id"], unique=False)
    op.create_table(
        "web_password",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("set_at", coordbot.core.types.AwareDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("contact_id"),
    )


def downgrade() -> None:
    op.drop_table("web_password")
    with op.batch_alter_table("web_signin", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_signin_contact_id"))
    op.drop_table("web_signin")
