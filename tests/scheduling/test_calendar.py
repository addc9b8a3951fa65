import logging
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordbot.plan.policy import QuietHours
from coordbot.scheduling.calendar import WorkCalendar, load_override_file, local

from . import CN_2026_MAKEUP, ref_add_workdays, ref_is_workday

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
REPO = Path(__file__).resolve().parents[2]
WINDOW = QuietHours(time(9), time(18))


def sh(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


# ---- the official 2026 schedule ---------------------------------------------------------------------


def test_2026_matches_the_hand_written_schedule(cal: WorkCalendar) -> None:
    day = date(2026, 1, 1)
    mismatches = []
    while day.year == 2026:
        if cal.is_workday(day) != ref_is_workday(day):
            mismatches.append(day)
        day += timedelta(days=1)
    assert mismatches == []


def test_national_day_2026_is_oct_1_to_7_with_make_up_days(cal: WorkCalendar) -> None:
    assert not any(cal.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert cal.is_workday(date(2026, 9, 30))
    assert cal.is_workday(date(2026, 10, 8))  # Thursday: back at work
    assert cal.is_workday(date(2026, 9, 20))  # make-up Sunday
    assert cal.is_workday(date(2026, 10, 10))  # make-up Saturday
    assert not cal.is_workday(date(2026, 10, 11))  # an ordinary Sunday


def test_reminder_due_during_national_day_fires_next_working_morning(cal: WorkCalendar) -> None:
    assert cal.next_send_time(sh(2026, 10, 3, 10, 0), WINDOW) == sh(2026, 10, 8, 9, 0)
    assert cal.next_send_time(sh(2026, 9, 30, 18, 0), WINDOW) == sh(2026, 10, 8, 9, 0)
    assert cal.next_send_time(sh(2026, 9, 30, 17, 59), WINDOW) == sh(2026, 9, 30, 17, 59)


def test_make_up_saturday_is_a_working_day_for_sending(cal: WorkCalendar) -> None:
    assert cal.is_workday(date(2026, 10, 10))
    assert cal.next_send_time(sh(2026, 10, 10, 10, 0), WINDOW) == sh(2026, 10, 10, 10, 0)
    # Friday evening before a make-up Saturday: the next morning, not Monday.
    assert cal.next_send_time(sh(2026, 10, 9, 18, 30), WINDOW) == sh(2026, 10, 10, 9, 0)
    assert cal.next_send_time(sh(2026, 2, 13, 20, 0), WINDOW) == sh(2026, 2, 14, 9, 0)


def test_spring_festival_2026(cal: WorkCalendar) -> None:
    assert not any(cal.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert cal.is_workday(date(2026, 2, 14)) and cal.is_workday(date(2026, 2, 28))
    assert cal.next_send_time(sh(2026, 2, 14, 18, 0), WINDOW) == sh(2026, 2, 24, 9, 0)
    assert cal.next_send_time(sh(2026, 2, 17, 11, 0), WINDOW) == sh(2026, 2, 24, 9, 0)
    assert cal.add_workdays(date(2026, 2, 13), 2) == date(2026, 2, 24)


# ---- quiet hours ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        (sh(2026, 3, 10, 17, 59), sh(2026, 3, 10, 17, 59)),  # Tuesday, inside the window
        (sh(2026, 3, 10, 18, 0), sh(2026, 3, 11, 9, 0)),  # end is exclusive
        (sh(2026, 3, 10, 8, 59), sh(2026, 3, 10, 9, 0)),  # before the window: same morning
        (sh(2026, 3, 10, 9, 0), sh(2026, 3, 10, 9, 0)),  # start is inclusive
        (sh(2026, 3, 13, 18, 0), sh(2026, 3, 16, 9, 0)),  # Friday evening: Monday
        (sh(2026, 3, 14, 8, 0), sh(2026, 3, 16, 9, 0)),  # Saturday morning: Monday
        (sh(2026, 3, 10, 23, 59, 59), sh(2026, 3, 11, 9, 0)),
    ],
)
def test_quiet_hours(cal: WorkCalendar, given_: datetime, expected: datetime) -> None:
    got = cal.next_send_time(given_, WINDOW)
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == timedelta(hours=8)


def test_next_send_time_converts_other_zones_to_local(cal: WorkCalendar) -> None:
    # 2026-10-07 16:00 UTC is 2026-10-08 00:00 in Shanghai: before the window on a working day.
    got = cal.next_send_time(datetime(2026, 10, 7, 16, 0, tzinfo=UTC), WINDOW)
    assert got == sh(2026, 10, 8, 9, 0)
    assert got.tzinfo == SH
    # 01:30 UTC on a Tuesday is 09:30 in Shanghai: allowed as is.
    assert cal.next_send_time(datetime(2026, 3, 10, 1, 30, tzinfo=UTC), WINDOW) == sh(2026, 3, 10, 9, 30)


def test_custom_window(cal: WorkCalendar) -> None:
    window = QuietHours(time(8, 30), time(17, 30))
    assert cal.next_send_time(sh(2026, 3, 10, 17, 30), window) == sh(2026, 3, 11, 8, 30)
    assert cal.next_send_time(sh(2026, 3, 10, 8, 0), window) == sh(2026, 3, 10, 8, 30)


@pytest.mark.parametrize(("start", "end"), [(time(18), time(9)), (time(9), time(9))])
def test_window_must_not_wrap(start: time, end: time) -> None:
    with pytest.raises(ValueError, match="before end"):
        QuietHours(start, end)


def test_naive_datetimes_are_refused(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cal.next_send_time(datetime(2026, 3, 10, 10, 0), WINDOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        local(datetime(2026, 3, 10, 10, 0))
    with pytest.raises(ValueError, match="takes a date"):
        cal.is_workday(sh(2026, 3, 10, 10, 0))  # type: ignore[arg-type]


def test_unknown_timezone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        WorkCalendar(tz="Asia/Shang_hai")


# ---- working-day arithmetic -------------------------------------------------------------------------


def test_add_workdays_across_holidays(cal: WorkCalendar) -> None:
    assert cal.add_workdays(date(2026, 9, 30), 1) == date(2026, 10, 8)
    assert cal.add_workdays(date(2026, 9, 30), 3) == date(2026, 10, 10)  # make-up Saturday counts
    assert cal.add_workdays(date(2026, 10, 8), -1) == date(2026, 9, 30)
    assert cal.add_workdays(date(2026, 10, 4), -1) == date(2026, 9, 30)  # from inside the holiday
    # 3 working days before Mon 2026-09-28: Thu 24th (Fri 25th - Sun 27th are Mid-Autumn), Wed 23rd, Tue 22nd.
    assert cal.add_workdays(date(2026, 9, 28), -3) == date(2026, 9, 22)
    assert cal.add_workdays(date(2026, 9, 22), -2) == date(2026, 9, 20)  # make-up Sunday counts
    assert cal.add_workdays(date(2026, 10, 4), 0) == date(2026, 10, 4)  # 0: unchanged, by definition


def test_next_and_previous_workday(cal: WorkCalendar) -> None:
    assert cal.next_workday(date(2026, 10, 1)) == date(2026, 10, 8)
    assert cal.next_workday(date(2026, 9, 30)) == date(2026, 9, 30)
    assert cal.next_workday(date(2026, 9, 30), include_today=False) == date(2026, 10, 8)
    assert cal.previous_workday(date(2026, 10, 7)) == date(2026, 9, 30)
    assert cal.previous_workday(date(2026, 10, 8), include_today=False) == date(2026, 9, 30)


def test_workdays_between(cal: WorkCalendar) -> None:
    assert cal.workdays_between(date(2026, 9, 30), date(2026, 10, 12)) == 4  # 8, 9, 10 (Sat), 12
    assert cal.workdays_between(date(2026, 10, 12), date(2026, 9, 30)) == -4  # 30, 8, 9, 10
    assert cal.workdays_between(date(2026, 10, 2), date(2026, 10, 2)) == 0
    assert list(cal.workdays_in(date(2026, 10, 5), date(2026, 10, 11))) == [
        date(2026, 10, 8),
        date(2026, 10, 9),
        date(2026, 10, 10),
    ]


days_2026 = st.dates(min_value=date(2026, 1, 20), max_value=date(2026, 12, 10))


@settings(max_examples=300, deadline=None)
@given(a=days_2026, n=st.integers(min_value=-10, max_value=10))
def test_add_workdays_matches_naive_stepping(a: date, n: int) -> None:
    assert WorkCalendar().add_workdays(a, n) == ref_add_workdays(a, n)


@settings(max_examples=300, deadline=None)
@given(a=days_2026, b=days_2026)
def test_workdays_between_inverts_add_workdays(a: date, b: date) -> None:
    cal = WorkCalendar()
    if cal.is_workday(b):
        assert cal.add_workdays(a, cal.workdays_between(a, b)) == b
    assert cal.workdays_between(a, b) * (1 if b >= a else -1) >= 0


@settings(max_examples=300, deadline=None)
@given(moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20)))
def test_next_send_time_is_the_earliest_allowed_moment(moment: datetime) -> None:
    cal = WorkCalendar()
    dt = moment.replace(tzinfo=SH)
    got = cal.next_send_time(dt, WINDOW)
    assert got >= dt
    assert ref_is_workday(got.date()) and time(9) <= got.time() < time(18)
    if got != dt:  # moved: to a window start, with no working day skipped in between
        assert got.time() == time(9)
        day = dt.date() + timedelta(days=1)
        while day < got.date():
            assert not ref_is_workday(day)
            day += timedelta(days=1)


# ---- DST: wall-clock times survive the change ---------------------------------------------------------


def test_fire_times_stay_at_local_0930_across_dst() -> None:
    # Europe/Berlin springs forward on 2026-03-29 and falls back on 2026-10-25. Adding days in UTC would
    # put the reminder at 10:30 (or 08:30) local: the "reminders an hour off" bug.
    cal = WorkCalendar(tz="Europe/Berlin")
    mondays = [date(2026, 3, 23), date(2026, 3, 30), date(2026, 10, 19), date(2026, 10, 26)]
    fired = [cal.next_send_time(cal.at(d, time(9, 30)), WINDOW) for d in mondays]
    assert [f.astimezone(BERLIN).time() for f in fired] == [time(9, 30)] * 4
    assert [f.utcoffset() for f in fired] == [timedelta(hours=h) for h in (1, 2, 2, 1)]
    # Saturday evening before the spring change: Monday 09:00 local, CEST.
    got = cal.next_send_time(datetime(2026, 3, 28, 19, 0, tzinfo=BERLIN), WINDOW)
    assert got == datetime(2026, 3, 30, 9, 0, tzinfo=BERLIN)
    assert got.astimezone(UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


# ---- years the package does not cover, and override files ----------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "coordbot.scheduling" and r.levelno == logging.WARNING]


def test_uncovered_year_falls_back_with_one_warning_and_honours_overrides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert not WorkCalendar.is_officially_covered(2027)  # if this fails, pick a later year for this test
    _write(
        tmp_path / "2027.yaml",
        "holidays:\n"
        "  - 2027-01-01\n"
        "  - {from: 2027-02-08, to: 2027-02-10, name: test range}\n"
        "workdays:\n"
        "  - 2027-02-06\n",
    )
    cal = WorkCalendar(overrides_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="coordbot.scheduling"):
        assert not cal.is_workday(date(2027, 1, 1))  # Friday, listed as holiday
        assert cal.is_workday(date(2027, 1, 4))  # Monday: Mon-Fri fallback
        assert not cal.is_workday(date(2027, 1, 9))  # Saturday
        assert cal.is_workday(date(2027, 2, 6))  # Saturday, listed as make-up day
        assert [cal.is_workday(date(2027, 2, d)) for d in (8, 9, 10, 11)] == [False, False, False, True]
        assert cal.add_workdays(date(2027, 2, 5), 2) == date(2027, 2, 11)  # Sat 6th, then Thu 11th
        cal.next_send_time(datetime(2027, 3, 1, 8, 0, tzinfo=SH), WINDOW)
    records = _warnings(caplog)
    assert len(records) == 1
    message = records[0].getMessage()
    assert "2027" in message and "Monday-Friday" in message and str(tmp_path / "2027.yaml") in message
    assert "4 holidays" in message and "1 make-up" in message

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="coordbot.scheduling"):
        WorkCalendar(overrides_dir=tmp_path).is_workday(date(2027, 5, 5))  # per calendar instance
        cal.is_workday(date(2027, 6, 1))  # same instance: no repeat
    assert len(_warnings(caplog)) == 1


def test_uncovered_year_without_file_says_which_file_to_fill(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="coordbot.scheduling"):
        assert WorkCalendar(overrides_dir=tmp_path).is_workday(date(2027, 10, 1))  # a Friday: Mon-Fri
        assert WorkCalendar().is_workday(date(2028, 10, 2))
    first, second = (r.getMessage() for r in _warnings(caplog))
    assert str(tmp_path / "2027.yaml") in first and "not found" in first
    assert "2028" in second and "config/holidays/2028.yaml" in second


def test_covered_year_is_silent_and_office_overrides_win(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path / "2026.yaml", "source: district notice\nholidays: [2026-10-08]\nworkdays: [2026-10-11]\n")
    cal = WorkCalendar(overrides_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="coordbot.scheduling"):
        assert not cal.is_workday(date(2026, 10, 8))
        assert cal.is_workday(date(2026, 10, 11))
        assert cal.is_workday(date(2026, 10, 9))
        assert cal.next_send_time(sh(2026, 10, 3, 12, 0), WINDOW) == sh(2026, 10, 9, 9, 0)
    assert _warnings(caplog) == []


def test_shipped_2027_template_is_valid_and_empty() -> None:
    assert load_override_file(REPO / "config" / "holidays" / "2027.yaml", 2027) == (set(), set())


def test_empty_override_file_is_fine(tmp_path: Path) -> None:
    assert load_override_file(_write(tmp_path / "2027.yaml", ""), 2027) == (set(), set())
    assert load_override_file(_write(tmp_path / "2027.yaml", "holidays:\nworkdays: []\n"), 2027) == (
        set(),
        set(),
    )


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("holidays: []\nworkday: []\n", 2, "one of the keys source, holidays, workdays"),
        ("holidays:\n  - 2027-13-01\n", 2, "no such day"),
        ("holidays:\n  - 2027/10/01\n", 2, "a date YYYY-MM-DD"),
        ("holidays:\n  - 2026-10-01\n", 2, "a date in 2027"),
        ("holidays:\n  - {from: 2027-10-07, to: 2027-10-01}\n", 2, "'from' (2027-10-07) on or before"),
        ("holidays:\n  - {from: 2027-10-01}\n", 2, "both 'from' and 'to'"),
        ("holidays:\n  - {from: 2027-10-01, until: 2027-10-03}\n", 2, "keys from, to, name"),
        ("holidays: 2027-10-01\n", 1, "'holidays' to be a list"),
        (
            "holidays:\n  - 2027-10-01\nworkdays:\n  - 2027-10-01\n",
            4,
            "only one of 'holidays' and 'workdays'",
        ),
        ("workdays:\n  - {from: 2027-10-01, to: 2027-10-02}\n", 2, "make-up working day"),
        ("- 2027-10-01\n", 1, "a mapping with keys"),
        ("holidays: [2027-10-01\n", 2, "not valid YAML"),
        ("holidays: []\nholidays: []\n", 2, "'holidays' only once"),
    ],
)
def test_bad_override_file_names_file_line_and_expectation(tmp_path: Path, text: str, line: int, expected: str) -> None:
    path = _write(tmp_path / "2027.yaml", text)
    with pytest.raises(ValueError) as info:
        WorkCalendar(overrides_dir=tmp_path).is_workday(date(2027, 3, 1))
    message = str(info.value)
    assert str(path) in message
    assert f"line {line}" in message
    assert expected in message


def test_make_up_days_are_weekend_days() -> None:
    # Guard on the reference data itself, so a typo in it cannot make the tests above vacuous.
    assert all(d.weekday() >= 5 for d in CN_2026_MAKEUP)
