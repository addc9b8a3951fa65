"""Every table, imported in one place so that SQLModel.metadata (and alembic) sees them all."""

from coordbot.core.events import Event
from coordbot.core.rate_tokens import RateToken
from coordbot.plan.models import (
    Contact,
    ContactAddress,
    CrossRequest,
    Department,
    Extension,
    Invite,
    Meeting,
    Observation,
    Plan,
    ProgressReport,
    Target,
    Task,
    TaskDepartment,
    TaskGroup,
)
from coordbot.replies.models import InboundMessage
from coordbot.reports.models import Briefing, Digest
from coordbot.scheduling.models import ReminderOccurrence
from coordbot.web.models import ApiToken, WebPassword, WebSignin

__all__ = [
    "ApiToken",
    "Briefing",
    "Contact",
    "ContactAddress",
    "CrossRequest",
    "Department",
    "Digest",
    "Event",
    "Extension",
    "InboundMessage",
    "Invite",
    "Meeting",
    "Observation",
    "Plan",
    "ProgressReport",
    "RateToken",
    "ReminderOccurrence",
    "Target",
    "Task",
    "TaskDepartment",
    "TaskGroup",
    "WebPassword",
    "WebSignin",
]
