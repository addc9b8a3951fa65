"""The plan file format (YAML), as validated input models.

The format is documented in docs/plan-format.md; these models are its single definition. Cross-references
(departments named by tasks and contacts, unique codes, dates inside the plan period) are checked here too,
each error carrying the path of the offending field so the loader can point at the line.
"""

from __future__ import annotations

import re
import types
from datetime import date
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlmodel import SQLModel

from coordbot.plan import models

CODE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
MONTH_DAY = re.compile(r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")


class _CodeMark:
    """Marks a code field, so the loader can refuse a code that YAML read as a number (``code: 5.40``)."""


CODE_MARK = _CodeMark()


def column_length(table: type[SQLModel], column: str) -> int:
    """The width of a table's text column: the file's limit, so a value too long for the database is
    refused with its line, not by PostgreSQL halfway through the import."""
    length = table.__table__.c[column].type.length  # type: ignore[attr-defined]
    assert isinstance(length, int), f"{table.__name__}.{column} has no length"
    return length


Code = Annotated[str, Field(min_length=1, max_length=64, pattern=CODE), CODE_MARK]
DepartmentCode = Annotated[Code, Field(max_length=column_length(models.Department, "code"))]
Text = Annotated[str, Field(min_length=1)]
# A quantity the plan commits to: NaN would compare unequal to itself (every re-import a "change").
Quota = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)


class CrossRefError(ValueError):
    """A reference inside the file does not resolve; ``path`` locates the field."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


DepartmentKind = Literal["government", "party", "police", "judicial", "park", "association", "town", "other"]


class DepartmentIn(_Strict):
    code: DepartmentCode
    name: Text
    short_name: str = ""
    kind: DepartmentKind = "government"
    aliases: list[str] = []


class CollectiveIn(_Strict):
    """A collective assignee (各乡镇、街道; 区政府各部门), named in a task's ``co`` like a department and
    expanded at import to the organisation's members: its departments of these ``kinds``, and ``members``."""

    code: DepartmentCode
    name: Text
    kinds: list[DepartmentKind] = []
    members: list[DepartmentCode] = []

    @model_validator(mode="after")
    def _has_members(self) -> CollectiveIn:
        if not self.kinds and not self.members:
            raise ValueError("a collective needs 'kinds' (e.g. [town]) or 'members' (department codes)")
        return self


class DatedEventIn(_Strict):
    name: Text
    day: str = Field(description="MM-DD, every year (the first day of a multi-day event)")
    until: str | None = Field(default=None, description="MM-DD, the last day of a multi-day event (宣传周)")

    @field_validator("day", "until")
    @classmethod
    def _month_day(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not MONTH_DAY.match(v):
            raise ValueError("expected a month and day as MM-DD, e.g. 04-26")
        month, day = (int(x) for x in v.split("-"))
        date(2024, month, day)  # leap year: accepts 02-29, refuses 02-30 and 04-31
        return v

    @model_validator(mode="after")
    def _span(self) -> DatedEventIn:
        # MM-DD strings compare as dates do within a year; an event across the new year is two events.
        if self.until is not None and self.until < self.day:
            raise ValueError(f"until {self.until} is before day {self.day}: an event runs within one year")
        return self

    def stored(self) -> dict[str, str]:
        """As kept on the task: ``until`` only when given, so one-day events read as they always did."""
        return self.model_dump(exclude_none=True)


class TargetIn(_Strict):
    metric: Annotated[Code, Field(max_length=column_length(models.Target, "metric"))]
    name: Text
    unit: str = ""
    comparator: Literal[">=", "<=", "==", "qualitative"] = ">="
    value: Quota | None = None
    baseline: Finite | None = None
    period: Literal["annual", "cumulative", "at-date"] = "at-date"
    # count: things counted (项, 家; reports add up); rate: a level (满意度90%, 占比); growth: a rise on the
    # year before (增长6.5%). Rates and growth are the latest reported value, compared at the period's end.
    measure: Literal["count", "rate", "growth"] = "count"
    # 左右 / 约: the value is approximate; ``tolerance`` (±, in the target's unit) is how far off still counts
    # as reached. ``about`` alone changes the wording only: coordbot does not invent a margin.
    about: bool = False
    tolerance: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    start: date | None = None
    due: date | None = None
    aliases: list[str] = []
    description: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _value_matches_comparator(self) -> TargetIn:
        if self.comparator == "qualitative":
            if self.value is not None:
                raise ValueError("a qualitative target has no value; use comparator '>=' for a number")
            if not self.description:
                raise ValueError("a qualitative target needs a description saying what counts as reached")
        elif self.value is None:
            raise ValueError(f"comparator '{self.comparator}' needs a numeric value")
        elif self.comparator == ">=" and self.value <= 0:
            raise ValueError(f"a minimum ('>=', 不少于) must be above 0, got {self.value:g}: every count reaches it")
        if self.start and self.due and self.due < self.start:
            raise ValueError(f"due {self.due} is before start {self.start}")
        if self.comparator == "qualitative" and (self.about or self.tolerance is not None):
            raise ValueError("a qualitative target has no value to be 'about' or within a 'tolerance' of")
        if self.tolerance is not None and self.value is not None and self.tolerance >= self.value > 0:
            raise ValueError(f"tolerance {self.tolerance:g} is not below the value {self.value:g}: any result would do")
        if self.measure != "count" and self.period == "cumulative":
            raise ValueError(
                f"a {self.measure} is not added up over years: use period 'annual' (每年增长…) or 'at-date' (到…达到)"
            )
        return self


class MilestoneIn(_Strict):
    """A step inside a task with its own date (节点: 6月底前完成选址) and, optionally, its own targets."""

    name: Text
    due: date
    source: str = ""
    targets: list[TargetIn] = []

    def stored(self) -> dict[str, str]:
        """As kept on the task (its targets are the task's, dated by the milestone)."""
        out = {"name": self.name, "due": self.due.isoformat()}
        if self.source:
            out["source"] = self.source
        return out


class TaskIn(_Strict):
    code: Annotated[Code, Field(max_length=column_length(models.Task, "code"))]
    title: Text
    description: str = ""
    source: str = ""
    # One lead, or several (牵头单位 "区政府办公室、区司法局、区行政审批服务局"): all reminded, all report.
    lead: DepartmentCode | list[DepartmentCode]
    primary: DepartmentCode | None = None  # 主责 among several leads, where the text says so
    co: list[DepartmentCode] = []
    leader: str = ""  # 责任领导, as the plan writes it: 王明（副区长）
    assignment: Literal["stated", "proposed", "confirmed"] = "stated"
    # Per department, where they differ from ``assignment``: a lead the file proposes beside co-departments
    # the text names (``assignments: {amr: proposed}``).
    assignments: dict[DepartmentCode, Literal["stated", "proposed", "confirmed"]] = {}
    # ongoing: 持续推进, no deadline and not tied to the year; reminded like a recurring task
    kind: Literal["one-off", "recurring", "metric", "ongoing"] = "one-off"
    start: date | None = None
    due: date | None = None
    # 每季度 / 每半年: a deadline at each quarter's (half-year's) end, for a task that goes on
    every: Literal["quarterly", "half-yearly"] | None = None
    events: list[DatedEventIn] = []
    targets: list[TargetIn] = []
    milestones: list[MilestoneIn] = []
    reminders: dict[str, Any] = {}

    @model_validator(mode="after")
    def _consistent(self) -> TaskIn:
        if self.start and self.due and self.due < self.start:
            raise ValueError(f"due {self.due} is before start {self.start}")
        if self.every and self.kind == "one-off":
            raise ValueError(
                f"'every: {self.every}' is a deadline that comes round: for a recurring, metric or ongoing task, "
                "not a one-off one (it has its own 'due')"
            )
        if self.kind == "ongoing" and self.due is not None:
            raise ValueError("an ongoing task (持续推进) has no deadline: remove 'due', or make it kind one-off")
        leads = self.leads
        if not leads:
            raise ValueError("a task needs a lead department")
        if len(set(leads)) != len(leads):
            raise ValueError("a lead department is listed twice")
        if self.primary is not None and self.primary not in leads:
            raise ValueError(f"primary (主责) '{self.primary}' is not one of the task's leads: {', '.join(leads)}")
        for lead in leads:
            if lead in self.co:
                raise ValueError(f"department '{lead}' is both lead and co-department")
        if len(set(self.co)) != len(self.co):
            raise ValueError("a co-department is listed twice")
        if len({m.name for m in self.milestones}) != len(self.milestones):
            raise ValueError("two milestones have the same name")
        for m in self.milestones:
            if self.due is not None and m.due > self.due:
                raise ValueError(f"milestone {m.name!r} is due {m.due}, after the task's deadline {self.due}")
            if self.start is not None and m.due < self.start:
                raise ValueError(f"milestone {m.name!r} is due {m.due}, before the task starts ({self.start})")
        if self.kind == "metric" and not any(t.comparator != "qualitative" for t in self.all_targets()):
            raise ValueError("a metric task needs at least one numeric target")
        return self

    def all_targets(self) -> list[TargetIn]:
        """The task's targets and its milestones' (dated by their milestone unless they give a due)."""
        dated = [t if t.due else t.model_copy(update={"due": m.due}) for m in self.milestones for t in m.targets]
        return [*self.targets, *dated]

    @property
    def leads(self) -> list[str]:
        """Every lead department, the primary (主责, else the first) first."""
        leads = [self.lead] if isinstance(self.lead, str) else list(self.lead)
        if self.primary in leads:
            leads.remove(self.primary)
            leads.insert(0, self.primary)
        return leads

    @property
    def primary_lead(self) -> str:
        """The lead on the task row: 主责 where the text says so, else the first named."""
        return self.leads[0]

    @property
    def joint_leads(self) -> list[str]:
        """The other lead departments (lead jointly: reminded and report like the primary)."""
        return self.leads[1:]

    def assignment_of(self, department: str) -> str:
        """How the file assigns this lead or co-department: its own entry under ``assignments``, else the task's."""
        return self.assignments.get(department, self.assignment)


class GroupIn(_Strict):
    code: Annotated[Code, Field(max_length=column_length(models.TaskGroup, "code"))]
    title: Text
    kind: Literal["main", "safeguard"] = "main"
    tasks: list[TaskIn] = Field(min_length=1)


ChannelName = Literal[
    "telegram", "wecom", "dingtalk", "feishu", "email", "wecom_robot", "dingtalk_robot", "feishu_robot"
]
ROBOT_CHANNELS = ("wecom_robot", "dingtalk_robot", "feishu_robot")


class AddressIn(_Strict):
    channel: ChannelName
    address: Annotated[str, Field(min_length=1, max_length=column_length(models.ContactAddress, "address"))]


class ContactIn(_Strict):
    department: DepartmentCode
    name: Text
    role: Literal["contact", "leader", "office", "group"] = "contact"
    # The preferred address; usually left out: people bind themselves with an invite on their channel.
    channel: ChannelName | None = None
    address: Annotated[str, Field(min_length=1, max_length=column_length(models.Contact, "address"))] | None = None
    addresses: list[AddressIn] = []  # further addresses the office knows (an e-mail), in fallback order
    language: Literal["zh", "en"] = "zh"

    @model_validator(mode="after")
    def _routes(self) -> ContactIn:
        robot = self.channel in ROBOT_CHANNELS
        if self.role == "group" and not (robot and self.address):
            raise ValueError(
                "a group contact is a group robot: give channel (wecom_robot, dingtalk_robot or feishu_robot) "
                "and address (the robot's name in the robots file)"
            )
        if robot and self.role != "group":
            raise ValueError(f"channel {self.channel} is a send-only group robot: only role 'group' uses it")
        if self.address and self.channel is None:
            raise ValueError("an address needs its channel (telegram, wecom, dingtalk, feishu or email)")
        channels = [a.channel for a in self.addresses]
        if len(set(channels)) < len(channels) or (self.channel in channels):
            raise ValueError("one address per channel: the preferred channel and each further one differ")
        if any(a.channel in ROBOT_CHANNELS for a in self.addresses):
            raise ValueError("a group robot cannot be a person's further address")
        return self


class PlanMeta(_Strict):
    code: Annotated[Code, Field(max_length=column_length(models.Plan, "code"))]
    title: Text
    issuer: str = ""
    document_no: str = ""
    issued: date | None = None
    start: date
    end: date
    timezone: str = "Asia/Shanghai"
    source: str = ""
    office: DepartmentCode | None = None  # department acting as 联席会议办公室
    reminders: dict[str, Any] = {}
    # Whose departments these are: plans naming the same organisation share departments, contacts and
    # aliases; left out, the plan has its own (a new plan: an organisation coded like the plan).
    organisation: Annotated[Code, Field(max_length=column_length(models.Organisation, "code"))] | None = None
    organisation_name: str = ""

    @model_validator(mode="after")
    def _period(self) -> PlanMeta:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        return self


class PlanFile(_Strict):
    plan: PlanMeta
    departments: list[DepartmentIn] = Field(min_length=1)
    collectives: list[CollectiveIn] = []
    goals: list[TargetIn] = []
    groups: list[GroupIn] = Field(min_length=1)
    contacts: list[ContactIn] = []

    def tasks(self) -> list[tuple[GroupIn, TaskIn]]:
        return [(g, t) for g in self.groups for t in g.tasks]

    def check_references(self) -> list[CrossRefError]:
        """Everything a field-by-field check cannot see; empty when the file is consistent."""
        errors: list[CrossRefError] = []
        dept_codes: set[str] = set()
        for i, d in enumerate(self.departments):
            if d.code in dept_codes:
                errors.append(CrossRefError(("departments", i, "code"), f"duplicate department code '{d.code}'"))
            dept_codes.add(d.code)

        def known(path: tuple[str | int, ...], code: str) -> None:
            if code not in dept_codes:
                errors.append(
                    CrossRefError(path, f"unknown department '{code}' (expected one of the codes under 'departments')")
                )

        collectives: set[str] = set()
        for i, collective in enumerate(self.collectives):
            if collective.code in dept_codes or collective.code in collectives:
                message = f"'{collective.code}' is already a department or collective code"
                errors.append(CrossRefError(("collectives", i, "code"), message))
            collectives.add(collective.code)
            for mi, member in enumerate(collective.members):
                known(("collectives", i, "members", mi), member)
        if self.plan.office:
            known(("plan", "office"), self.plan.office)
        p0, p1 = self.plan.start, self.plan.end

        def in_period(path: tuple[str | int, ...], d: date | None) -> None:
            if d is not None and not (p0 <= d <= p1):
                errors.append(CrossRefError(path, f"date {d} lies outside the plan period {p0} to {p1}"))

        group_codes: set[str] = set()
        task_codes: set[str] = set()
        metrics: set[str] = set()

        def target_checks(base: tuple[str | int, ...], t: TargetIn) -> None:
            if t.metric in metrics:
                errors.append(CrossRefError((*base, "metric"), f"duplicate target metric '{t.metric}'"))
            metrics.add(t.metric)
            in_period((*base, "start"), t.start)
            in_period((*base, "due"), t.due)

        for i, goal in enumerate(self.goals):
            target_checks(("goals", i), goal)
        for gi, g in enumerate(self.groups):
            if g.code in group_codes:
                errors.append(CrossRefError(("groups", gi, "code"), f"duplicate group code '{g.code}'"))
            group_codes.add(g.code)
            for ti, t in enumerate(g.tasks):
                base: tuple[str | int, ...] = ("groups", gi, "tasks", ti)
                if t.code in task_codes:
                    errors.append(CrossRefError((*base, "code"), f"duplicate task code '{t.code}'"))
                task_codes.add(t.code)
                if isinstance(t.lead, str):
                    known((*base, "lead"), t.lead)
                else:
                    for li, lead in enumerate(t.lead):
                        known((*base, "lead", li), lead)
                for ci, co_code in enumerate(t.co):
                    if co_code not in collectives:
                        known((*base, "co", ci), co_code)
                for code in t.assignments:
                    if code not in t.leads and code not in t.co:
                        errors.append(
                            CrossRefError(
                                (*base, "assignments", code),
                                f"'{code}' is neither the lead nor a co-department of task {t.code}: "
                                "'assignments' says how the task's own departments are assigned",
                            )
                        )
                in_period((*base, "start"), t.start)
                in_period((*base, "due"), t.due)
                for xi, target in enumerate(t.targets):
                    target_checks((*base, "targets", xi), target)
                for mi, milestone in enumerate(t.milestones):
                    in_period((*base, "milestones", mi, "due"), milestone.due)
                    for xi, target in enumerate(milestone.targets):
                        target_checks((*base, "milestones", mi, "targets", xi), target)
        for i, contact in enumerate(self.contacts):
            known(("contacts", i, "department"), contact.department)
        return errors


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """``tp`` without ``Annotated`` and ``| None``, and whether a code mark was among its metadata."""
    marked = False
    while True:
        if get_origin(tp) is Annotated:
            marked = marked or any(m is CODE_MARK for m in tp.__metadata__)
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp, marked
            tp = args[0]
        else:
            return tp, marked


def is_code_path(path: tuple[str | int, ...], model: type[BaseModel] = PlanFile) -> bool:
    """Whether the field at ``path`` of a plan file (keys and list indexes) is a code, read from the models."""
    tp: Any = model
    marked = False
    for part in path:
        tp, _ = _unwrap(tp)
        if isinstance(part, int):
            if get_origin(tp) is not list:
                return False
            tp, marked = _unwrap(get_args(tp)[0])
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            info = tp.model_fields[part]
            tp, marked = _unwrap(info.annotation)
            marked = marked or any(m is CODE_MARK for m in info.metadata)
        else:
            return False
    return marked
