"""Reply parsing: a contact's free-text progress reply → structured fields (pure functions)."""

from .parser import DepartmentRef, ParsedReply, Quantity, Status, TargetRef, parse_reply

__all__ = ["DepartmentRef", "ParsedReply", "Quantity", "Status", "TargetRef", "parse_reply"]
