"""Schedules on the real control plane: catch-up, kill -9, suspend, bad input.

kwok simulates the pods (DESIGN.md section 6): they succeed about a second after they
start.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from e2e_support import Scenario, jobdef

from databuild.adapters.kinds import KINDS
from databuild.domain.schedule import Calendar, want_name
from databuild.testing.demo import KubeError, request, wait_until

SCHEDULE_LABEL = "databuild.dev/schedule"


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": spec,
    }


def due_names(name: str, expression: str, start: datetime, now: datetime) -> list[str]:
    """The pinned names of every tick from ``start`` (inclusive) to ``now``."""
    out = []
    for tick in Calendar.parse(expression).ticks_after(start - timedelta(microseconds=1)):
        if tick > now:
            return out
        out.append(want_name(name, tick))
    raise AssertionError("unreachable")


def wants_of(sc: Scenario, name: str) -> dict[str, dict[str, Any]]:
    return {
        w["metadata"]["name"]: w
        for w in sc.list("Want")
        if (w["metadata"].get("labels") or {}).get(SCHEDULE_LABEL) == name
    }


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {}
    )


def wait_for_ready(sc: Scenario, name: str, reason: str, timeout: float = 60) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = sc.get("Schedule", name)
        return obj if obj is not None and ready(obj).get("reason") == reason else None

    return wait_until(
        check, timeout=timeout, what=f"Schedule {name} Ready reason {reason}", describe=sc.describe
    )


def patch_spec(sc: Scenario, name: str, spec: dict[str, Any]) -> None:
    request(
        sc.kube,
        "PATCH",
        f"{KINDS['Schedule'].collection(sc.namespace)}/{name}",
        {"spec": spec},
        content_type="application/merge-patch+json",
    )


def midnight(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def test_daily_schedule_three_days_back_creates_the_due_wants_and_they_succeed(
    scenario: Scenario,
) -> None:
    sc = scenario
    start = midnight(3)
    sc.apply(
        jobdef("daily", ["daily/date={date}"]),
        schedule(
            "daily",
            schedule="@daily",
            partitions=["daily/date={date}"],
            startTime=start.isoformat().replace("+00:00", "Z"),
            want={"ttlSeconds": 30 * 86400},
        ),
        # A neighbour whose time zone does not exist: it stalls, the other one builds.
        schedule("broken", schedule="@daily", timeZone="Mars/Olympus", partitions=["x/{date}"]),
    )
    sc.start_operator()
    sched = wait_for_ready(sc, "daily", "UpToDate")
    expected = due_names("daily", "@daily", start, datetime.now(UTC))
    assert len(expected) == 4  # three days back, and today's midnight
    wants = wants_of(sc, "daily")
    assert sorted(wants) == expected
    for name, want in wants.items():
        [owner] = want["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Schedule",
            "daily",
            sched["metadata"]["uid"],
        )
        day = datetime.strptime(name.rsplit("-", 1)[1], "%Y%m%d%H%M").replace(tzinfo=UTC)
        assert want["spec"]["partitions"] == [f"daily/date={day:%Y-%m-%d}"]
        assert want["spec"]["dataTimestamp"] == day.isoformat().replace("+00:00", "Z")
    for name in expected:
        sc.wait_for_want(name, "Successful", timeout=90)

    def all_counted() -> dict[str, Any] | None:
        obj = sc.get("Schedule", "daily")
        counts = ((obj or {}).get("status") or {}).get("wants") or {}
        return obj if counts.get("successful") == len(expected) else None

    status = wait_until(all_counted, timeout=30, what="counts", describe=sc.describe)["status"]
    assert status["lastTick"] == midnight(0).isoformat().replace("+00:00", "Z")
    assert status["nextTick"] == midnight(-1).isoformat().replace("+00:00", "Z")
    broken = wait_for_ready(sc, "broken", "InvalidSpec")
    assert "spec.timeZone 'Mars/Olympus'" in ready(broken)["message"]
    assert wants_of(sc, "broken") == {}
    sc.wait_for_event("broken", "InvalidSpec")


def test_kill_9_during_catch_up_creates_no_second_want(scenario: Scenario) -> None:
    sc = scenario
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=299)
    sc.apply(
        schedule(
            "hourly",
            schedule="@hourly",
            partitions=["hourly/at={datetime}"],
            startTime=start.isoformat().replace("+00:00", "Z"),
        )
    )
    operator = sc.start_operator()
    first = wait_until(
        lambda: wants_of(sc, "hourly") or None,
        timeout=60,
        what="the first Wants",
        describe=sc.describe,
    )
    operator.kill()
    assert len(first) < 300, "the catch-up finished before the kill; nothing was tested"
    uids = {name: w["metadata"]["uid"] for name, w in first.items()}
    restarted = datetime.now(UTC)
    sc.start_operator()
    wait_for_ready(sc, "hourly", "UpToDate", timeout=120)
    wants = wants_of(sc, "hourly")
    # Exactly the due ticks: all of those due at the restart, none not yet due.
    assert set(due_names("hourly", "@hourly", start, restarted)) <= set(wants)
    assert set(wants) <= set(due_names("hourly", "@hourly", start, datetime.now(UTC)))
    # The Wants created before the kill are the very same objects, not re-created ones.
    assert {name: wants[name]["metadata"]["uid"] for name in uids} == uids


def test_suspended_schedule_skips_its_ticks_and_resumes_at_the_next_one(
    scenario: Scenario,
) -> None:
    sc = scenario
    start = midnight(3)
    sc.apply(
        jobdef("daily", ["daily/date={date}"]),
        schedule(
            "paused",
            schedule="@daily",
            partitions=["daily/date={date}"],
            startTime=start.isoformat().replace("+00:00", "Z"),
            suspend=True,
        ),
    )
    sc.start_operator()
    status = wait_for_ready(sc, "paused", "Suspended")["status"]
    assert wants_of(sc, "paused") == {}
    assert status["handledThrough"] == midnight(0).isoformat().replace("+00:00", "Z")
    patch_spec(sc, "paused", {"suspend": False})
    status = wait_for_ready(sc, "paused", "UpToDate")["status"]
    # The four ticks passed while suspended: none of them comes back on resume.
    assert wants_of(sc, "paused") == {}
    assert status["nextTick"] == midnight(-1).isoformat().replace("+00:00", "Z")
    # Moving startTime earlier does not back-fill handled ticks (a backfill does that).
    patch_spec(sc, "paused", {"startTime": midnight(10).isoformat().replace("+00:00", "Z")})
    wait_until(
        lambda: (
            (sc.get("Schedule", "paused") or {}).get("status", {}).get("observedGeneration") == 3
        ),
        timeout=30,
        what="the new generation seen",
        describe=sc.describe,
    )
    assert wants_of(sc, "paused") == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"schedule": "0 0 * * * *"}, "five fields"),
        ({"schedule": "@yearly"}, "five fields"),
        ({"partitions": []}, "spec.partitions"),
        ({"timeZone": "Europe/Berlin; rm -rf"}, "spec.timeZone"),
        ({"startTime": "2025-02-01T00:00:00Z", "endTime": "2025-01-01T00:00:00Z"}, "endTime"),
        ({"historyLimit": -1}, "spec.historyLimit"),
    ],
)
def test_the_api_server_rejects_invalid_schedules(
    scenario: Scenario, spec: dict[str, Any], message: str
) -> None:
    sc = scenario
    good = {"schedule": "@daily", "partitions": ["daily/date={date}"]}
    with pytest.raises(KubeError, match=message) as caught:
        sc.apply(schedule("bad", **{**good, **spec}))
    assert caught.value.status == 422
    sc.apply(schedule("good", **good))
    assert sc.get("Schedule", "good") is not None
