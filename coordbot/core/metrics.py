"""Process metrics for ``/metrics`` (Prometheus text format), counted where things happen.

One registry for coordbot (not the library's global one, so a test or a second app in the process starts
from what this module defines). Counters are per process: with the conversation in worker processes
(``handler_processes`` ≥ 1) the parse outcomes are counted in the workers and not seen here; inbound
updates and their handling time are counted in the main process either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REMINDERS = Counter(
    "coordbot_reminders",
    "Reminder occurrences by channel and outcome: due (claimed to send), sent, failed, retried (released)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
SEND_SECONDS = Histogram(
    "coordbot_send_seconds",
    "Time of one send attempt to a platform",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "coordbot_rate_limited",
    "Sends the platform refused as too many (HTTP 429, retry_after)",
    ["channel"],
    registry=REGISTRY,
)
INBOUND = Counter("coordbot_inbound_updates", "Inbound updates handled", ["channel"], registry=REGISTRY)
INBOUND_SECONDS = Histogram(
    "coordbot_inbound_handling_seconds",
    "Time from an inbound update reaching the runtime to its reply",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
PARSE_OUTCOMES = Counter(
    "coordbot_parse_outcomes",
    "Progress replies by what the parser made of them: understood, asked_back (an ambiguity asked), no_information",
    ["outcome"],
    registry=REGISTRY,
)
OPEN_ESCALATIONS = Gauge(
    "coordbot_open_escalations", "Live tasks escalated (to a leader or the office)", registry=REGISTRY
)
LAST_DIGEST = Gauge(
    "coordbot_last_digest_timestamp_seconds",
    "When the latest weekly digest was compiled (Unix time)",
    registry=REGISTRY,
)


@contextlib.contextmanager
def timed_send(channel: str) -> Iterator[None]:
    """Around one send attempt: its latency, and a 429 when the error carries the platform's retry_after."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        if getattr(exc, "retry_after", None) is not None:
            RATE_LIMITED.labels(channel).inc()
        raise
    finally:
        SEND_SECONDS.labels(channel).observe(time.perf_counter() - start)


@contextlib.contextmanager
def timed_inbound(channel: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        INBOUND.labels(channel).inc()
        INBOUND_SECONDS.labels(channel).observe(time.perf_counter() - start)


def reminder(channel: str, outcome: str) -> None:
    REMINDERS.labels(channel, outcome).inc()


def parse_outcome(outcome: str) -> None:
    PARSE_OUTCOMES.labels(outcome).inc()


def parsed(ambiguities: Iterable[str]) -> None:
    """A recorded reply: no information (nothing read but the text), asked back (a question for the contact
    to settle), or understood."""
    found = set(ambiguities)
    parse_outcome("no_information" if "no_information" in found else "asked_back" if found else "understood")
