"""What the JSON API answers and accepts: the ``*Public`` models (responses), the request bodies and the
query parameters. The OpenAPI document's schemas are generated from these classes (pydantic's JSON schema),
and every answer is serialised through its operation's model, so the document and the answers agree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import SQLModel

from coordbot.plan.models import DepartmentPublic, TargetPublic

# Text sent in a query or path: printable, no control characters (PostgreSQL refuses NUL in text).
QueryText = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]
Colour = Literal["red", "yellow", "green"]
Trajectory = Literal["behind", "ahead", "on_line", ""]

# ---- query parameters ------------------------------------------------------------------------------


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PageQuery(_Query):
    limit: int = Field(default=100, ge=1, le=500, description="At most this many items")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="Skip this many items")


class TaskListQuery(PageQuery):
    plan: QueryText | None = Field(default=None, description="Plan code (default: the most recent plan)")
    department: QueryText | None = Field(default=None, description="Only tasks led by this department (code)")
    colour: Colour | None = Field(default=None, description="Only tasks of this colour")
    overdue: bool = Field(default=False, description="Only overdue tasks")


class PlanEventQuery(PageQuery):
    plan: QueryText | None = Field(default=None, description="Plan code (default: the most recent plan)")
    type: QueryText | None = Field(default=None, description="Only events of this type (e.g. task.closed)")


class PlanQuery(_Query):
    plan: QueryText | None = Field(default=None, description="Plan code (default: the most recent plan)")


class DigestQuery(PlanQuery):
    lang: Literal["zh", "en"] | None = Field(default=None, description="Language of the Markdown (default: settings)")


# ---- request bodies --------------------------------------------------------------------------------


class ExtensionDecision(BaseModel):
    """The office's decision on a requested extension."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "refuse"]


# ---- responses -------------------------------------------------------------------------------------


class PlanPublic(SQLModel):
    code: str
    title: str
    issuer: str
    start_date: date
    end_date: date
    timezone: str


class PlanList(SQLModel):
    items: list[PlanPublic]


class DepartmentList(SQLModel):
    items: list[DepartmentPublic]


class ViewerPublic(SQLModel):
    """Who is asking; ``csrf_token`` (desk sessions only) goes in ``X-CSRF-Token`` on writes."""

    via: Literal["session", "token"]
    name: str
    role: str
    department: str | None
    actor: str
    csrf_token: str | None


class TaskRef(SQLModel):
    plan: str
    code: str
    title: str
    status: str
    colour: str
    url: str


class DepartmentDetailPublic(DepartmentPublic):
    lead_tasks: list[TaskRef]
    co_tasks: list[TaskRef]


class QuotaPublic(SQLModel):
    """A counted target against its goal and the straight line to its deadline (``plan.queries``)."""

    metric: str
    name: str
    unit: str
    period: str
    actual: float
    goal: float | None
    expected: float | None
    behind: bool
    reached: bool
    trajectory: Trajectory


class TaskSummaryPublic(SQLModel):
    """A task as the dashboard and the week's digest see it (``reports.rollup``)."""

    plan: str
    code: str
    title: str
    group: str
    kind: str
    lead: str
    lead_name: str
    co: list[str]
    status: str
    colour: str
    reason: str
    progress: int
    due_date: date | None
    original_due_date: date | None
    overdue_days: int
    last_report_at: datetime | None
    escalation_level: int
    quotas: list[QuotaPublic]
    url: str


class TaskPage(SQLModel):
    week: str
    items: list[TaskSummaryPublic]
    total: int
    limit: int
    offset: int


class CoDepartmentPublic(SQLModel):
    code: str
    name: str
    assignment: str


class ExtensionPublic(SQLModel):
    id: int
    status: Literal["requested", "approved", "rejected"]
    old_due: date | None
    new_due: date
    reason: str
    requested_at: datetime
    requested_by: str | None
    decided_by: str
    decided_at: datetime | None


class CrossRequestPublic(SQLModel):
    id: int
    from_department: str
    to_department: str
    text: str
    status: str
    created_at: datetime


class TaskDetailPublic(SQLModel):
    plan: str
    code: str
    title: str
    description: str
    source_text: str
    group: str
    kind: str
    lead: str
    lead_name: str
    leader: str = ""  # 责任领导 named by the plan
    co: list[CoDepartmentPublic]
    assignment: str
    status: str
    progress: int
    colour: str
    colour_reason: str
    start_date: date | None
    due_date: date | None
    original_due_date: date | None
    escalation_level: int
    last_report_at: datetime | None
    targets: list[TargetPublic]
    quotas: list[QuotaPublic]
    extensions: list[ExtensionPublic]
    open_requests: list[CrossRequestPublic]


class ReportPublic(SQLModel):
    id: int
    received_at: datetime
    department: str
    contact: str | None
    source: str
    text: str
    status: str | None
    percent: float | None
    expected_date: date | None
    voided: bool
    superseded_by: int | None


class ReportPage(SQLModel):
    items: list[ReportPublic]
    total: int
    limit: int
    offset: int


class EventPublic(SQLModel):
    id: int
    at: datetime
    type: str
    task: str | None
    department: str | None
    actor: str
    payload: dict[str, Any]


class EventPage(SQLModel):
    items: list[EventPublic]
    total: int
    limit: int
    offset: int


class DigestCounts(SQLModel):
    tasks: int
    red: int
    yellow: int
    green: int
    closed: int
    reports: int
    tasks_reported: int
    reminders_sent: int
    reminders_answered: int
    response_rate: float | None
    overdue: int
    blocked: int
    open_requests: int
    behind_quotas: int
    completions: int
    closures: int
    extensions: int
    silent_departments: int


class DepartmentLinePublic(SQLModel):
    code: str
    name: str
    lead_tasks: int
    co_tasks: int
    reminders_sent: int
    reminders_answered: int
    reports: int
    red: int
    yellow: int
    rate: float | None
    silent: bool


class DecisionPublic(SQLModel):
    kind: str
    task: str | None
    subject: str
    detail: dict[str, Any]


class DigestPublic(SQLModel):
    """The week's digest as data: the same roll-up as its Markdown (``…/digests/{week}/markdown``)."""

    plan: str
    week: str
    period_start: date
    period_end: date
    as_of: date
    generated_at: datetime
    counts: DigestCounts
    departments: list[DepartmentLinePublic]
    decisions: list[DecisionPublic]
    red: list[TaskSummaryPublic]
    yellow: list[TaskSummaryPublic]
    markdown_url: str
