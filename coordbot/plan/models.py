"""Plan tables: plans, departments, contacts, task groups, tasks, targets, observations, the facts
reported about tasks (progress reports, requests to other departments, extensions) and the joint meetings
whose decisions changed the plan.

Table models are the storage; the ``*Public`` models are what leaves coordbot (CLI, chat, web) and the plan
file models in :mod:`coordbot.plan.schema` are what comes in.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from coordbot.core.clock import utcnow
from coordbot.core.types import AwareDateTime


def _ts() -> Any:
    return Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)


class Role(StrEnum):
    CONTACT = "contact"  # 联络员
    LEADER = "leader"  # 分管领导
    OFFICE = "office"  # 联席会议办公室
    GROUP = "group"  # a department's (or the office's) group chat, reached by a send-only group robot


class TaskKind(StrEnum):
    ONE_OFF = "one-off"
    RECURRING = "recurring"
    METRIC = "metric"
    ONGOING = "ongoing"  # 持续推进: no deadline, reminded like a recurring task


class TaskStatus(StrEnum):
    ASSIGNED = "assigned"  # 已交办
    ACCEPTED = "accepted"  # 已签收
    IN_PROGRESS = "in_progress"  # 推进中
    REPORTED_DONE = "reported_done"  # 已报结
    CLOSED = "closed"  # 已销号
    BLOCKED = "blocked"  # 受阻
    EXTENSION_REQUESTED = "extension_requested"  # 申请延期
    SUSPENDED = "suspended"  # 中止


OPEN_STATUSES = frozenset(set(TaskStatus) - {TaskStatus.CLOSED, TaskStatus.SUSPENDED})


class Colour(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class Assignment(StrEnum):
    STATED = "stated"  # the plan text names the department
    PROPOSED = "proposed"  # coordbot's plan file proposes it; the office must confirm
    CONFIRMED = "confirmed"  # the office confirmed a proposal


class Comparator(StrEnum):
    AT_LEAST = ">="
    AT_MOST = "<="
    EXACTLY = "=="
    QUALITATIVE = "qualitative"  # "ranked first in the city", judged by people


class Period(StrEnum):
    ANNUAL = "annual"  # 每年不少于
    CUMULATIVE = "cumulative"  # 三年新增
    AT_DATE = "at-date"  # 到2026年末达到


class Organisation(SQLModel, table=True):
    """Whose departments, contacts and aliases these are: one per plan by default, or shared by the plans that
    name it (``organisation:`` in the plan file). Plans never share departments otherwise."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=100)
    name: str = ""
    created_at: datetime = _ts()


class Plan(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=100)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    title: str
    issuer: str = ""
    document_no: str = ""
    timezone: str = "Asia/Shanghai"
    start_date: date
    end_date: date
    source_file: str = ""
    source_sha256: str = Field(default="", max_length=64)
    reminder_policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Occurrences exist up to this time; a restart generates only the gap after it, so reminders that fell
    # due while coordbot was down are caught up, and those from before it ever ran are not invented.
    reminders_synced_until: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class Department(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("organisation_id", "code", name="uq_department_organisation_code"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    code: str = Field(max_length=64)  # unique within its organisation only
    name: str
    short_name: str = ""
    kind: str = "government"
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts()


class Contact(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("department_id", "role", "name", name="uq_contact_dept_role_name"),)

    id: int | None = Field(default=None, primary_key=True)
    department_id: int = Field(foreign_key="department.id", index=True)
    name: str
    role: str = Field(default=Role.CONTACT, max_length=16)
    channel: str = Field(default="telegram", max_length=32)
    address: str | None = Field(default=None, max_length=128, index=True)  # chat id once bound
    language: str = Field(default="zh", max_length=8)
    active: bool = True
    unreachable: bool = False  # the channel said it can never deliver (bot blocked, chat gone)
    bound_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    created_at: datetime = _ts()


class ContactAddress(SQLModel, table=True):
    """A further address of a contact (one per channel), tried in ``position`` order when the preferred one
    on the contact row gives up; bound by invite like the preferred one, or set by the office."""

    __tablename__ = "contact_address"
    __table_args__ = (
        UniqueConstraint("contact_id", "channel", name="uq_contact_address_channel"),
        Index("ix_contact_address_lookup", "channel", "address"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id")
    channel: str = Field(max_length=32)
    address: str = Field(max_length=128)
    position: int = 1  # 1 is tried first after the preferred address
    unreachable: bool = False
    bound_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class TaskGroup(SQLModel, table=True):
    __tablename__ = "task_group"
    __table_args__ = (UniqueConstraint("plan_id", "code", name="uq_task_group_plan_code"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    code: str = Field(max_length=32)
    title: str
    kind: str = Field(default="main", max_length=16)  # main (主要任务) | safeguard (保障措施)
    position: int = 0


class Task(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("plan_id", "code", name="uq_task_plan_code"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    group_id: int = Field(foreign_key="task_group.id", index=True)
    code: str = Field(max_length=32)
    title: str
    description: str = ""
    source_text: str = ""  # the plan's own sentence, kept verbatim
    lead_department_id: int = Field(foreign_key="department.id", index=True)
    responsible_leader: str = ""  # 责任领导 named by the plan (a person or post), shown with the task
    lead_primary: bool = False  # the plan marks the lead 主责 among several (the others: task_department, role lead)
    assignment: str = Field(default=Assignment.STATED, max_length=16)
    kind: str = Field(default=TaskKind.ONE_OFF, max_length=16)
    start_date: date | None = None
    due_date: date | None = None
    original_due_date: date | None = None  # the deadline before any approved extension
    deadline_every: str = Field(default="", max_length=16)  # quarterly | half-yearly: due at each period's end
    status: str = Field(default=TaskStatus.ASSIGNED, max_length=24)
    progress: int = 0  # percent
    colour: str = Field(default=Colour.GREEN, max_length=8)
    colour_reason: str = ""
    dated_events: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # 节点: [{name, due (ISO date), source}]; their targets are the task's, dated by them
    milestones: list[dict[str, str]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reminder_policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    position: int = 0
    origin: str = Field(default="plan", max_length=48)  # "plan" (the plan file) or "meeting:<date>"
    file_values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    escalation_level: int = 0  # 0 none, 1 the department's leader, 2 the office; a report resets it
    last_report_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    archived_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class TaskDepartment(SQLModel, table=True):
    """A co-department (配合单位) of a task, or (``role`` lead) one of several lead departments beside the
    task row's: reminded like the lead, and reporting like any department of the task."""

    __tablename__ = "task_department"

    task_id: int = Field(foreign_key="task.id", primary_key=True)
    department_id: int = Field(foreign_key="department.id", primary_key=True, index=True)
    assignment: str = Field(default=Assignment.STATED, max_length=16)
    role: str = Field(default="co", max_length=8)  # co | lead


class Target(SQLModel, table=True):
    """A quantity the plan commits to: annual quota, cumulative quota, value at a date, or a qualitative aim."""

    __table_args__ = (UniqueConstraint("plan_id", "metric", name="uq_target_plan_metric"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    task_id: int | None = Field(default=None, foreign_key="task.id", index=True)  # None: a plan-level goal
    metric: str = Field(max_length=64)
    name: str
    unit: str = ""
    comparator: str = Field(default=Comparator.AT_LEAST, max_length=16)
    value: float | None = None
    baseline: float | None = None
    period: str = Field(default=Period.AT_DATE, max_length=16)
    measure: str = Field(default="count", max_length=16)  # count | rate | growth (compared at the period's end)
    about: bool = False  # 左右 / 约
    tolerance: float | None = None  # ± in the target's unit: still reached within it
    start_date: date | None = None
    due_date: date | None = None
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    description: str = ""
    source_text: str = ""
    archived_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class Observation(SQLModel, table=True):
    """One reported value of a target's metric: an increment (新增) or a running total (累计)."""

    # Covering index: quota sums read (target, date window, voided, mode, value) without touching the table.
    __table_args__ = (Index("ix_observation_rollup", "target_id", "observed_on", "voided", "mode", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(foreign_key="target.id")
    value: float
    mode: str = Field(default="increment", max_length=16)  # increment | total
    observed_on: date
    source: str = Field(default="manual", max_length=16)  # report | manual | import
    report_id: int | None = Field(default=None, index=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    voided: bool = False  # undone or superseded; kept for the audit trail
    recorded_at: datetime = _ts()


class Extension(SQLModel, table=True):
    """A request for a new deadline (延期申请); only the office approves, and both dates are kept."""

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    requested_by_id: int | None = Field(default=None, foreign_key="contact.id")
    requested_at: datetime = _ts()
    old_due: date | None = None
    new_due: date
    reason: str = ""
    status: str = Field(default="requested", max_length=16)  # requested | approved | rejected
    decided_by: str = ""
    decided_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class ProgressReport(SQLModel, table=True):
    """One reply about a task: the raw text is kept; what was understood sits beside it."""

    __tablename__ = "progress_report"
    __table_args__ = (
        Index("ix_report_task_received", "task_id", "received_at"),
        Index("ix_report_received", "received_at"),  # a period's reports, whatever the plan's size (roll-ups)
        Index("ix_report_source_ref", "source_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id")
    contact_id: int | None = Field(default=None, foreign_key="contact.id")
    department_id: int = Field(foreign_key="department.id", index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    text: str = ""
    source: str = Field(default="chat", max_length=16)  # chat | button | command | cli
    source_ref: str | None = Field(default=None, max_length=128)  # channel message (chat:message) for edits
    reminder_id: int | None = Field(default=None, foreign_key="reminder_occurrence.id")
    status: str | None = Field(default=None, max_length=24)  # what the report says, in TaskStatus words
    percent: Decimal | None = Field(default=None, sa_type=Numeric(7, 3))  # as written: 53.3, 85.07
    expected_date: date | None = None
    parsed: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    previous: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # for undo
    superseded_by_id: int | None = Field(default=None, foreign_key="progress_report.id")
    voided: bool = False  # undone by the contact


class CrossRequest(SQLModel, table=True):
    """A department asks another for help on a task (需区财政局配合); the helper gets reminders of its own."""

    __tablename__ = "cross_request"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="task.id", index=True)
    from_department_id: int = Field(foreign_key="department.id")
    to_department_id: int = Field(foreign_key="department.id", index=True)
    report_id: int | None = Field(default=None, foreign_key="progress_report.id")
    text: str = ""
    status: str = Field(default="open", max_length=16)  # open | answered | closed
    created_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)
    closed_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)


class Invite(SQLModel, table=True):
    """A one-time code binding a chat to a department and role; only its hash is stored."""

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(unique=True, max_length=64)
    department_id: int = Field(foreign_key="department.id")
    role: str = Field(default=Role.CONTACT, max_length=16)
    name: str
    language: str = Field(default="zh", max_length=8)
    created_by: str = ""
    created_at: datetime = _ts()
    expires_at: datetime = Field(sa_type=AwareDateTime(), nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=AwareDateTime(), nullable=True)
    contact_id: int | None = Field(default=None, foreign_key="contact.id")


class Meeting(SQLModel, table=True):
    """A joint meeting (联席会议) whose decisions file was applied; the next briefing's period starts here."""

    __table_args__ = (UniqueConstraint("plan_id", "held_on", name="uq_meeting_plan_date"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    held_on: date
    title: str = ""
    source_file: str = ""
    source_sha256: str = Field(default="", max_length=64)
    decisions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recorded_by: str = Field(default="cli", max_length=64)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=AwareDateTime(), nullable=False)


# ---- what leaves coordbot -------------------------------------------------------------------------


class DepartmentPublic(SQLModel):
    code: str
    name: str
    short_name: str
    kind: str


class TargetPublic(SQLModel):
    metric: str
    name: str
    unit: str
    comparator: str
    value: float | None
    period: str
    start_date: date | None
    due_date: date | None
    description: str
    measure: str = "count"
    about: bool = False
    tolerance: float | None = None


class TaskPublic(SQLModel):
    code: str
    group: str
    title: str
    kind: str
    lead: str
    co: list[str]
    assignment: str  # the lead's
    co_assignments: dict[str, str] = {}  # each co-department's, by code
    leader: str = ""  # 责任领导
    joint_leads: list[str] = []  # further lead departments, by code (``lead`` is the primary or first)
    lead_primary: bool = False  # the lead is marked 主责
    due_date: date | None
    every: str = ""  # quarterly | half-yearly deadlines
    milestones: list[dict[str, str]] = []  # 节点 {name, due, source}
    events: list[dict[str, str]] = []
    status: str
    progress: int
    colour: str
    targets: list[TargetPublic]
