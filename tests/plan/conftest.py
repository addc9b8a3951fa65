"""Plan-room fixtures.

A meeting's decisions are tested on the scripted quarter the report tests use (tests/reports/conftest.py):
the same plan state, so the briefing that follows the meeting reports on the quarter it changed.
"""

from tests.reports.conftest import plan_in, quarter

__all__ = ["plan_in", "quarter"]  # pytest fixtures, found by name
