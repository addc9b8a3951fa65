"""Scheduling tests. The 2026 schedule below is written out by hand from the State Council notice
(国务院办公厅关于2026年部分节假日安排的通知) so tests check the code against an independent source,
not against the chinesecalendar package the code itself reads."""

from datetime import date, timedelta

# Days off in 2026 as inclusive ranges (weekends inside them included).
CN_2026_DAYS_OFF = (
    (date(2026, 1, 1), date(2026, 1, 3)),  # 元旦
    (date(2026, 2, 15), date(2026, 2, 23)),  # 春节 (9 days)
    (date(2026, 4, 4), date(2026, 4, 6)),  # 清明节
    (date(2026, 5, 1), date(2026, 5, 5)),  # 劳动节
    (date(2026, 6, 19), date(2026, 6, 21)),  # 端午节
    (date(2026, 9, 25), date(2026, 9, 27)),  # 中秋节
    (date(2026, 10, 1), date(2026, 10, 7)),  # 国庆节
)
# Make-up working days (调休上班) in 2026: all on a Saturday or Sunday.
CN_2026_MAKEUP = (
    date(2026, 1, 4),  # Sun
    date(2026, 2, 14),  # Sat
    date(2026, 2, 28),  # Sat
    date(2026, 5, 9),  # Sat
    date(2026, 9, 20),  # Sun
    date(2026, 10, 10),  # Sat
)


def ref_is_workday(d: date) -> bool:
    """Reference model for 2026 only: weekdays, minus days off, plus make-up days."""
    assert d.year == 2026, f"reference schedule only covers 2026, asked for {d}"
    if d in CN_2026_MAKEUP:
        return True
    if any(a <= d <= b for a, b in CN_2026_DAYS_OFF):
        return False
    return d.weekday() < 5


def ref_add_workdays(d: date, n: int) -> date:
    """Naive stepping: the n-th working day after (n > 0) or before (n < 0) d."""
    step = timedelta(days=1 if n > 0 else -1)
    while n:
        d += step
        if ref_is_workday(d):
            n -= 1 if n > 0 else -1
    return d
