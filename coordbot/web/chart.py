"""A target's small chart, drawn on the server as SVG: the counted value over its period against the straight
line from where counting starts to the goal (the trajectory ``plan.progress`` calls "expected")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from markupsafe import Markup, escape

from coordbot.plan.progress import ObservationLike

WIDTH, HEIGHT, PAD = 320, 150, 28


def progress_svg(
    *,
    observations: Iterable[ObservationLike],
    start: date,
    end: date,
    today: date,
    goal: float,
    baseline: float = 0.0,
    label: str = "",
) -> Markup:
    """Steps of the counted value (a total replaces, an increment adds, as ``plan.progress.actual_value``)
    and the dashed straight line from (start, baseline) to (end, goal); a vertical mark at today."""
    rows = sorted(
        (o for o in observations if not o.voided and start <= o.observed_on <= min(end, today)),
        key=lambda o: (o.observed_on, o.recorded_at, o.id or 0),
    )
    value, points = baseline, [(start, baseline)]
    for o in rows:
        points.append((o.observed_on, value))  # a step: flat until the day it was reported
        value = o.value if o.mode == "total" else value + o.value
        points.append((o.observed_on, value))
    points.append((min(today, end), value))
    top = max([goal, baseline, *(v for _, v in points)]) or 1.0
    low = min(baseline, 0.0)
    span = max((end - start).days, 1)

    def x(d: date) -> float:
        return PAD + (WIDTH - 2 * PAD) * max(0, min((d - start).days, span)) / span

    def y(v: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v - low) / ((top - low) or 1.0)

    steps = [f"{x(d):.1f},{y(v):.1f}" for d, v in points]
    tx = x(min(max(today, start), end))
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>',
        f'<line x1="{x(start):.1f}" y1="{y(baseline):.1f}" x2="{x(end):.1f}" y2="{y(goal):.1f}" '
        'stroke="#888" stroke-dasharray="4 3" class="trajectory"/>',
        f'<polyline fill="none" stroke="#0b5cad" stroke-width="2" class="actual" points="{" ".join(steps)}"/>',
        f'<line x1="{tx:.1f}" y1="{PAD / 2}" x2="{tx:.1f}" y2="{HEIGHT - PAD}" stroke="#c60" stroke-width="1"/>',
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="10">{start.isoformat()}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="10" text-anchor="end">{end.isoformat()}</text>',
        f'<text x="{PAD}" y="{PAD / 2 + 4}" font-size="10">{_num(value)} / {_num(goal)}</text>',
        "</svg>",
    ]
    return Markup("".join(parts))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"
