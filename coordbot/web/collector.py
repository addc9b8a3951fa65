"""The garbage collector's youngest threshold, raised where the desk is served (measured by bench/web.py).

A dashboard or task page allocates tens of thousands of short-lived objects (rows, template output, ORM
rows). With CPython's default threshold (700 net allocations) one request ran some eight young collections;
objects still alive in the middle of the request were promoted to the old generation, and every quarter of
the old generation's size so promoted set off a *full* collection, which walks the whole process: its modules,
the bot, and the kept week roll-up (some 200,000 objects, ~90 ms of CPU; 400-700 ms of wall time on the loaded
benchmark machine; the dashboard's p99). Reference counting frees a request's objects anyway (they are
acyclic), so a larger youngest threshold lets them die before any collection sees them: on the province-size
plan, bench/web.py measured 0 collections in 300 dashboard requests and a p99 of 24 ms, against 12 full ones
and 396 ms at the default (neither freezing anything).

Only the youngest threshold changes and only upwards (a threshold the operator set higher, or a disabled
collector, is left alone); cycles are still collected, a little later. This replaces a ``gc.freeze()`` after
each roll-up build, which moved the whole process's objects, the bot's included, out of collection.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # net allocations of container objects between young collections


def raise_young_threshold(young: int = YOUNG_THRESHOLD) -> tuple[int, int, int]:
    """Raise the youngest generation's threshold to ``young`` (never lower it); return the thresholds now."""
    t0, t1, t2 = gc.get_threshold()
    if gc.isenabled() and 0 < t0 < young:
        gc.set_threshold(young, t1, t2)
    return gc.get_threshold()
