"""organisations: departments (with their contacts and aliases) belong to an organisation, not to the database;
and the plan format's new task and target columns (issue 15, item 2)

Before this revision every plan shared departments by code. The plans of an existing database are kept
together in one organisation, since their departments (and the contacts bound to them) were shared: its code
is the plan's code when there is one plan, ``shared`` when there are several. A plan file that names no
``organisation`` keeps the plan's organisation; docs/plan-format.md says how to split or share.

Revision ID: 0012_organisations
Revises: 0011
Create Date: 2026-12-02 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import coordbot.core.types

revision: str = "0012_organisations"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The unnamed UNIQUE (code) of 0001 is dropped by this name on SQLite (PostgreSQL named it department_code_key).
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _sqlite_foreign_keys(on: bool) -> None:
    """SQLite rebuilds a table to change its constraints; with foreign keys enforced, dropping the old
    ``department`` would fail on every contact and task that names it. The pragma only works outside a
    transaction, so the migration's transaction is committed around it (the rebuild is checked below)."""
    op.execute("COMMIT")
    op.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    op.execute("BEGIN IMMEDIATE")


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.create_table(
        "organisation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", coordbot.core.types.AwareDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    plans = bind.execute(sa.text("SELECT code FROM plan ORDER BY id")).scalars().all()
    has_departments = bind.execute(sa.text("SELECT count(*) FROM department")).scalar_one() > 0
    org_id = None
    if plans or has_departments:
        code = plans[0] if len(plans) == 1 else "shared"
        organisation = sa.table(
            "organisation",
            sa.column("code", sa.String),
            sa.column("name", sa.String),
            sa.column("created_at", coordbot.core.types.AwareDateTime()),
        )
        from coordbot.core.clock import utcnow

        bind.execute(sa.insert(organisation).values(code=code, name="", created_at=utcnow()))
        org_id = bind.execute(sa.text("SELECT id FROM organisation")).scalar_one()

    for table in ("plan", "department"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("organisation_id", sa.Integer(), nullable=True))
        if org_id is not None:
            bind.execute(sa.text(f'UPDATE "{table}" SET organisation_id = :org'), {"org": org_id})

    if sqlite:
        _sqlite_foreign_keys(False)
    with op.batch_alter_table("plan") as batch_op:
        batch_op.alter_column("organisation_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index(batch_op.f("ix_plan_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_foreign_key("fk_plan_organisation_id_organisation", "organisation", ["organisation_id"], ["id"])
    with op.batch_alter_table("department", naming_convention=_NAMING) as batch_op:
        batch_op.alter_column("organisation_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_department_code" if sqlite else "department_code_key", type_="unique")
        batch_op.create_unique_constraint("uq_department_organisation_code", ["organisation_id", "code"])
        batch_op.create_index(batch_op.f("ix_department_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_department_organisation_id_organisation", "organisation", ["organisation_id"], ["id"]
        )
    _plan_format_columns()
    if sqlite:
        broken = bind.execute(sa.text("PRAGMA foreign_key_check")).fetchall()
        if broken:
            raise RuntimeError(f"rebuilding the department table broke foreign keys: {broken[:5]}")
        _sqlite_foreign_keys(True)


def _plan_format_columns() -> None:
    """What the plan format (issue 15, item 2) added to the tables; existing rows get the defaults."""
    with op.batch_alter_table("task") as batch_op:
        batch_op.add_column(
            sa.Column("responsible_leader", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("deadline_every", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("lead_primary", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("milestones", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("task_department") as batch_op:
        batch_op.add_column(
            sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="co")
        )
    with op.batch_alter_table("target") as batch_op:
        batch_op.add_column(
            sa.Column("measure", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="count")
        )
        batch_op.add_column(sa.Column("about", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("tolerance", sa.Float(), nullable=True))


def _drop_plan_format_columns() -> None:
    with op.batch_alter_table("target") as batch_op:
        batch_op.drop_column("tolerance")
        batch_op.drop_column("about")
        batch_op.drop_column("measure")
    with op.batch_alter_table("task_department") as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("task") as batch_op:
        batch_op.drop_column("milestones")
        batch_op.drop_column("lead_primary")
        batch_op.drop_column("deadline_every")
        batch_op.drop_column("responsible_leader")


def downgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(False)
    _drop_plan_format_columns()
    with op.batch_alter_table("department", naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint("fk_department_organisation_id_organisation", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_department_organisation_id"))
        batch_op.drop_constraint("uq_department_organisation_code", type_="unique")
        batch_op.create_unique_constraint("uq_department_code" if sqlite else "department_code_key", ["code"])
        batch_op.drop_column("organisation_id")
    with op.batch_alter_table("plan") as batch_op:
        batch_op.drop_constraint("fk_plan_organisation_id_organisation", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_plan_organisation_id"))
        batch_op.drop_column("organisation_id")
    if sqlite:
        _sqlite_foreign_keys(True)
    op.drop_table("organisation")
