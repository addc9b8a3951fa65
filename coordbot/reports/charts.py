"""Charts for the briefing as PNG bytes (matplotlib, Agg backend): quota progress against its trajectory,
task colours per group, response rate per department.

Chinese labels need a CJK font. The first installed one from ``CJK_FONTS`` is used; with none, the charts
still render (CJK glyphs show as boxes) and one warning says which package to install; a font installed after
matplotlib cached its font list is found by rebuilding that cache.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: never pick an interactive backend

from matplotlib import font_manager
from matplotlib.figure import Figure

from coordbot.reports.rollup import DepartmentLine, GroupLine, QuotaLine

# Families in order of preference: Debian's fonts-noto-cjk / fonts-wqy-microhei / fonts-wqy-zenhei, then the
# usual Windows and macOS ones.
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Serif CJK SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Source Han Sans SC",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
)
INSTALL_HINT = "apt-get install fonts-noto-cjk (or fonts-wqy-microhei)"
COLOURS = {"red": "#d62728", "yellow": "#e6b800", "green": "#2ca02c"}
MAX_BARS = 30  # beyond this a chart shows the lowest values only (a province has hundreds of departments)


def _fontconfig_families() -> set[str]:
    """CJK families fontconfig lists (empty where there is no fc-list: Windows, macOS)."""
    fc_list = shutil.which("fc-list")
    if not fc_list:
        return set()
    out = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=30, check=False)
    return {name.strip() for line in out.stdout.splitlines() for name in line.split(",") if name.strip()}


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The CJK font family charts use, or None (warned about once).

    matplotlib caches its font list (~/.cache/matplotlib/fontlist-*.json) and does not notice a font installed
    after the cache was written: when fontconfig lists one of ``CJK_FONTS`` that matplotlib does not know, the
    cache is rebuilt once."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    missing = [name for name in CJK_FONTS if name in _fontconfig_families() and name not in installed]
    if not any(name in installed for name in CJK_FONTS) and missing:
        font_manager.fontManager = font_manager._load_fontmanager(  # type: ignore[attr-defined]
            try_read_cache=False
        )  # rewrites the cache
        installed = {f.name for f in font_manager.fontManager.ttflist}
        warnings.warn(
            f"matplotlib's font cache did not know the installed CJK font {missing[0]!r}; rebuilt it "
            f"({matplotlib.get_cachedir()})",
            RuntimeWarning,
            stacklevel=2,
        )
    for name in CJK_FONTS:
        if name in installed:
            return name
    warnings.warn(
        f"no CJK font found for chart labels; charts render with boxes for Chinese text. Install one: {INSTALL_HINT}",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def _rc() -> Any:
    font = cjk_font()
    return matplotlib.rc_context(
        {
            "font.family": "sans-serif",
            "font.sans-serif": [*([font] if font else []), "DejaVu Sans"],
            "axes.unicode_minus": False,
        }
    )


def _figure(height: float) -> Figure:
    fig = Figure(figsize=(7.5, height), dpi=110)
    fig.set_layout_engine("tight")
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # without a CJK font every Chinese glyph warns; cjk_font() already said so once
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buf, format="png")
    return buf.getvalue()


def short(text: str, n: int = 16) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def quota_chart(quotas: Sequence[QuotaLine], *, title: str, actual_label: str, expected_label: str) -> bytes | None:
    """Horizontal bars: share of each quota reached, with a tick where the trajectory says it should be."""
    rows = [q for q in quotas if q.goal][:MAX_BARS]
    if not rows:
        return None
    with _rc():
        fig = _figure(1.0 + 0.38 * len(rows))
        ax = fig.add_subplot()
        labels = [short(f"{q.task_code or ''} {q.name}".strip(), 22) for q in rows]
        ys = range(len(rows))
        shares = [min(q.share or 0.0, 1.5) * 100 for q in rows]
        colours = [COLOURS["green"] if q.reached else COLOURS["red"] if q.behind else "#1f77b4" for q in rows]
        ax.barh(list(ys), shares, color=colours, label=actual_label)
        exp = [
            (y, (q.expected_share or 0) * 100) for y, q in zip(ys, rows, strict=True) if q.expected_share is not None
        ]
        if exp:
            ax.scatter([e[1] for e in exp], [e[0] for e in exp], marker="|", s=300, color="black", label=expected_label)
        for y, q in zip(ys, rows, strict=True):
            ax.text(min(q.share or 0.0, 1.5) * 100 + 1, y, f"{q.actual:g}/{q.goal:g}", va="center", fontsize=7)
        ax.set_yticks(list(ys), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 115)
        ax.set_xlabel("%")
        ax.set_title(title, fontsize=11)
        ax.legend(fontsize=7, loc="lower right")
        return _png(fig)


def colour_chart(
    groups: Sequence[GroupLine], *, title: str, names: dict[str, str], labels: Sequence[str] | None = None
) -> bytes | None:
    """Stacked bars: red, yellow and green tasks in each task group (labelled ``labels``, default the
    group's number or short title)."""
    if not groups:
        return None
    with _rc():
        fig = _figure(3.2)
        ax = fig.add_subplot()
        xs = list(range(len(groups)))
        bottom = [0] * len(groups)
        for colour in ("red", "yellow", "green"):
            values = [g.colours[colour] for g in groups]
            ax.bar(xs, values, bottom=bottom, color=COLOURS[colour], label=names.get(colour, colour))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ticks = list(labels) if labels is not None else [g.number or short(g.title, 6) for g in groups]
        ax.set_xticks(xs, ticks, fontsize=8)
        ax.set_ylabel(names.get("tasks", ""))
        ax.set_title(title, fontsize=11)
        ax.legend(fontsize=7)
        return _png(fig)


def response_chart(departments: Sequence[DepartmentLine], *, title: str) -> bytes | None:
    """Horizontal bars: share of reminders answered, per department (lowest first when there are many)."""
    rows = sorted((d for d in departments if d.rate is not None), key=lambda d: (d.rate, d.code))[:MAX_BARS]
    if not rows:
        return None
    with _rc():
        fig = _figure(1.0 + 0.32 * len(rows))
        ax = fig.add_subplot()
        ys = list(range(len(rows)))
        rates = [(d.rate or 0.0) * 100 for d in rows]
        colours = [COLOURS["red"] if r < 50 else COLOURS["yellow"] if r < 80 else COLOURS["green"] for r in rates]
        ax.barh(ys, rates, color=colours)
        for y, d in zip(ys, rows, strict=True):
            ax.text((d.rate or 0) * 100 + 1, y, f"{d.reminders_answered}/{d.reminders_sent}", va="center", fontsize=7)
        ax.set_yticks(ys, [short(d.name, 14) for d in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 115)
        ax.set_xlabel("%")
        ax.set_title(title, fontsize=11)
        return _png(fig)
