"""Schedules in the domain: due ticks, DST, placeholders, names, suspend, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from databuild.domain.schedule import (
    Calendar,
    OwnedWant,
    ScheduleError,
    ScheduleProgress,
    ScheduleSpec,
    data_time,
    decide,
    render_partitions,
    tick_of,
    want_name,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def spec(**overrides: object) -> ScheduleSpec:
    values: dict[str, object] = {
        "name": "daily",
        "expression": "@daily",
        "partitions": ("daily/date={date}",),
        "created_at": utc(2025, 1, 10, 12),
    }
    values.update(overrides)
    return ScheduleSpec(**values)  # type: ignore[arg-type]


def ticks(calendar: Calendar, after: datetime, until: datetime) -> list[datetime]:
    out = []
    for tick in calendar.ticks_after(after):
        if tick > until:
            return out
        out.append(tick)
    raise AssertionError("unreachable")


# -- calendar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * * *", "five fields"),
        ("0 0 * * * *", "five fields"),
        ("61 * * * *", "spec.schedule"),
        ("@yearly", "shorthands"),
        ("0 25 * * *", "spec.schedule"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        Calendar.parse(expression)


def test_an_unknown_time_zone_is_named_in_the_error() -> None:
    with pytest.raises(ScheduleError, match=r"spec.timeZone 'Mars/Olympus'"):
        Calendar.parse("@daily", "Mars/Olympus")


@pytest.mark.parametrize(
    ("macro", "first"),
    [
        ("@hourly", utc(2025, 1, 1, 1)),
        ("@daily", utc(2025, 1, 2)),
        ("@weekly", utc(2025, 1, 5)),  # a Sunday
        ("@monthly", utc(2025, 2, 1)),
    ],
)
def test_shorthands(macro: str, first: datetime) -> None:
    assert next(Calendar.parse(macro).ticks_after(utc(2025, 1, 1))) == first


def test_spring_forward_runs_a_skipped_time_right_after_the_jump() -> None:
    # 2025-03-30 02:00 CET jumps to 03:00 CEST: 02:30 does not exist that day.
    calendar = Calendar.parse("30 2 * * *", "Europe/Berlin")
    got = ticks(calendar, utc(2025, 3, 28, 12), utc(2025, 4, 1, 12))
    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in got] == [
        "03-29 02:30 CET",
        "03-30 03:00 CEST",
        "03-31 02:30 CEST",
        "04-01 02:30 CEST",
    ]


def test_fall_back_runs_a_repeated_time_once() -> None:
    # 2025-10-26 03:00 CEST falls back to 02:00 CET: 02:30 happens twice, runs once.
    calendar = Calendar.parse("30 2 * * *", "Europe/Berlin")
    got = ticks(calendar, utc(2025, 10, 25, 12), utc(2025, 10, 27, 12))
    assert [t.astimezone(BERLIN).strftime("%m-%d %H:%M %Z") for t in got] == [
        "10-26 02:30 CEST",
        "10-27 02:30 CET",
    ]


def test_hourly_runs_on_real_time_across_both_changes() -> None:
    calendar = Calendar.parse("0 * * * *", "America/New_York")
    # Spring forward 2025-03-09 02:00 EST -> 03:00 EDT: 23 ticks that day.
    spring = ticks(
        calendar,
        datetime(2025, 3, 9, tzinfo=NEW_YORK) - timedelta(seconds=1),
        datetime(2025, 3, 10, tzinfo=NEW_YORK) - timedelta(seconds=1),
    )
    assert len(spring) == 23
    # Fall back 2025-11-02 02:00 EDT -> 01:00 EST: 25 ticks, 01:00 twice, distinct names.
    fall = ticks(
        calendar,
        datetime(2025, 11, 2, tzinfo=NEW_YORK) - timedelta(seconds=1),
        datetime(2025, 11, 3, tzinfo=NEW_YORK) - timedelta(seconds=1),
    )
    assert len(fall) == 25
    ones = [t for t in fall if t.astimezone(NEW_YORK).hour == 1]
    assert len(ones) == 2
    assert len({want_name("hourly", t) for t in fall}) == 25


def test_daily_midnight_in_a_zone_is_one_tick_per_local_day_across_both_changes() -> None:
    calendar = Calendar.parse("@daily", "Europe/Berlin")
    for start in (utc(2025, 3, 25), utc(2025, 10, 22)):
        got = ticks(calendar, start, start + timedelta(days=7))
        local = [t.astimezone(BERLIN) for t in got]
        assert all((d.hour, d.minute) == (0, 0) for d in local)
        assert len({d.date() for d in local}) == len(local) == 7


# -- names and placeholders ----------------------------------------------------------------


def test_want_names_are_the_tick_in_utc_and_read_back() -> None:
    tick = datetime(2025, 1, 2, 0, 0, tzinfo=BERLIN)
    assert want_name("daily", tick) == "daily-202501012300"
    assert tick_of("daily", "daily-202501012300") == tick
    assert tick_of("daily", "daily-2025") is None
    assert tick_of("daily", "other-202501012300") is None
    assert tick_of("daily", "daily-209913991299") is None


def test_every_placeholder() -> None:
    moment = datetime(2025, 1, 6, 7, 5, tzinfo=BERLIN)
    refs = render_partitions(
        [
            "a/date={date}/hour={hour}/minute={minute}",
            "b/month={month}/week={week}",
            "c/at={datetime}",
            "d/day={time:%j}",
        ],
        moment,
    )
    assert refs == (
        "a/date=2025-01-06/hour=07/minute=05",
        "b/month=2025-01/week=2025-W02",
        "c/at=2025-01-06T07:05",
        "d/day=006",
    )


def test_iso_week_at_a_year_boundary() -> None:
    assert render_partitions(["w/{week}"], datetime(2024, 12, 30, tzinfo=UTC)) == ("w/2025-W01",)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("x/{day}", r"spec.partitions\[0\] 'x/\{day\}': unknown placeholder \{day\}"),
        ("x/{time:%d %H}", "whitespace"),
        ("x/{time:}", "unknown placeholder"),
    ],
)
def test_bad_templates_say_which_and_why(template: str, problem: str) -> None:
    with pytest.raises(ScheduleError, match=problem):
        render_partitions([template], utc(2025, 1, 1))


def test_data_time_is_the_tick_minus_the_offset_in_the_zone() -> None:
    moment = data_time(utc(2025, 1, 2), 86400, BERLIN)
    assert moment == datetime(2025, 1, 1, 1, 0, tzinfo=BERLIN)
    assert render_partitions(["d/{date}"], moment) == ("d/2025-01-01",)


# -- decide --------------------------------------------------------------------------------


def test_start_time_in_the_past_back_fills_every_tick_inclusive() -> None:
    now = utc(2025, 1, 10, 12)
    decision = decide(spec(start_time=utc(2025, 1, 7)), ScheduleProgress(), [], now)
    assert [w.name for w in decision.create] == [
        "daily-202501070000",
        "daily-202501080000",
        "daily-202501090000",
        "daily-202501100000",
    ]
    assert decision.create[0].partitions == ("daily/date=2025-01-07",)
    assert decision.progress == ScheduleProgress(utc(2025, 1, 10), utc(2025, 1, 10))
    assert decision.next_tick == utc(2025, 1, 11)
    assert decision.wake_at == utc(2025, 1, 11)
    assert (decision.ready, decision.reason) == (True, "UpToDate")
    assert decision.counts["pending"] == decision.counts["total"] == 4


def test_without_start_time_the_first_tick_is_after_creation() -> None:
    s = spec(created_at=utc(2025, 1, 10, 0, 0))  # exactly on a tick: not due
    assert decide(s, ScheduleProgress(), [], utc(2025, 1, 10, 12)).create == ()
    later = decide(s, ScheduleProgress(), [], utc(2025, 1, 11, 0, 0, 30))
    assert [w.name for w in later.create] == ["daily-202501110000"]


def test_missed_ticks_after_downtime_are_created_once() -> None:
    s = spec(start_time=utc(2025, 1, 7))
    first = decide(s, ScheduleProgress(), [], utc(2025, 1, 7, 1))
    assert [w.name for w in first.create] == ["daily-202501070000"]
    # Down for three days: the status says what was handled.
    later = decide(
        s, first.progress, [OwnedWant("daily-202501070000", "Successful")], now=utc(2025, 1, 10, 1)
    )
    assert [w.name for w in later.create] == [
        "daily-202501080000",
        "daily-202501090000",
        "daily-202501100000",
    ]


def test_a_want_that_exists_but_the_status_missed_is_not_created_again() -> None:
    # A crash after the create and before the status write.
    s = spec(start_time=utc(2025, 1, 7))
    existing = [OwnedWant("daily-202501070000", None), OwnedWant("daily-202501080000", None)]
    decision = decide(s, ScheduleProgress(), existing, utc(2025, 1, 8, 12))
    assert decision.create == ()
    assert decision.progress.handled_through == utc(2025, 1, 8)


def test_catch_up_is_bounded_per_pass_and_continues() -> None:
    s = spec(expression="* * * * *", start_time=utc(2025, 1, 1), partitions=("m/{datetime}",))
    now = utc(2025, 1, 1, 2)
    decision = decide(s, ScheduleProgress(), [], now, max_creates=50)
    assert len(decision.create) == 50
    assert (decision.ready, decision.reason, decision.wake_at) == (False, "CatchingUp", now)
    again = decide(s, decision.progress, [], now, max_creates=50)
    assert again.create[0].name == "daily-202501010050"


def test_end_time_stops_the_ticks() -> None:
    s = spec(start_time=utc(2025, 1, 1), end_time=utc(2025, 1, 3, 12))
    decision = decide(s, ScheduleProgress(), [], utc(2025, 1, 10))
    assert [w.name for w in decision.create] == [
        "daily-202501010000",
        "daily-202501020000",
        "daily-202501030000",
    ]
    assert (decision.reason, decision.next_tick, decision.wake_at) == ("Ended", None, None)


def test_suspended_skips_ticks_and_a_resume_starts_at_the_next_one() -> None:
    s = spec(start_time=utc(2025, 1, 1))
    running = decide(s, ScheduleProgress(), [], utc(2025, 1, 2, 12))
    assert [w.name for w in running.create] == ["daily-202501010000", "daily-202501020000"]
    suspended = spec(start_time=utc(2025, 1, 1), suspend=True)
    paused = decide(suspended, running.progress, [], utc(2025, 1, 5, 12))
    assert paused.create == ()
    assert (paused.ready, paused.reason) == (True, "Suspended")
    assert paused.progress.handled_through == utc(2025, 1, 5)
    assert paused.progress.last_tick == utc(2025, 1, 2)
    resumed = decide(s, paused.progress, [], utc(2025, 1, 6, 0, 1))
    assert [w.name for w in resumed.create] == ["daily-202501060000"]


def test_history_limit_deletes_the_oldest_terminal_wants_only() -> None:
    s = spec(start_time=utc(2025, 1, 1), history_limit=2)
    wants = [
        OwnedWant("daily-202501010000", "Successful"),
        OwnedWant("daily-202501020000", "Failed"),
        OwnedWant("daily-202501030000", "Building"),
        OwnedWant("daily-202501040000", "Successful"),
        OwnedWant("hand-made", "Successful"),
    ]
    progress = ScheduleProgress(utc(2025, 1, 4), utc(2025, 1, 4))
    decision = decide(s, progress, wants, utc(2025, 1, 4, 12))
    assert decision.delete == ("daily-202501010000",)
    assert decision.counts == {
        "pending": 0,
        "building": 1,
        "successful": 2,
        "failed": 1,
        "expired": 0,
        "total": 4,
    }


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"expression": "0 0 * *"}, "five fields"),
        ({"time_zone": "Nowhere/Town"}, "spec.timeZone"),
        ({"partitions": ("x/{nope}",)}, "unknown placeholder"),
        ({"name": "n" * 241}, "metadata.name"),
    ],
)
def test_an_invalid_spec_creates_nothing_and_says_why(
    overrides: dict[str, object], problem: str
) -> None:
    decision = decide(
        spec(start_time=utc(2025, 1, 1), **overrides), ScheduleProgress(), [], utc(2025, 1, 3)
    )
    assert decision.create == ()
    assert (decision.ready, decision.reason) == (False, "InvalidSpec")
    assert problem in decision.message
