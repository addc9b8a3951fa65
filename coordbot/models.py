"""Every table, imported in one place so that SQLModel.metadata (and alembic) sees them all."""

from coordbot.core.events import Event
from coordbot.plan.models import (
    Contact,
    Department,
    Observation,
    Plan,
    Target,
    Task,
    TaskDepartment,
    TaskGroup,
)

__all__ = [
    "Contact",
    "Department",
    "Event",
    "Observation",
    "Plan",
    "Target",
    "Task",
    "TaskDepartment",
    "TaskGroup",
]
