"""The Schedule controller against the in-memory gateway: Wants, status, crashes, history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from databuild.adapters.gateway import Conflict, Invalid
from databuild.adapters.schedules import SCHEDULE_LABEL
from databuild.operator.metrics import OperatorMetrics
from databuild.operator.schedules import ScheduleController
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway

NS = "data"
NOW = datetime(2025, 1, 10, 12, tzinfo=UTC)


def schedule(name: str = "daily", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "schedule": "@daily",
            "partitions": ["daily/date={date}"],
            "startTime": "2025-01-08T00:00:00Z",
            **spec,
        },
    }


class Harness:
    def __init__(self) -> None:
        self.gateway = FakeGateway()
        self.store = WorldStore()
        self.controller = ScheduleController(self.gateway, self.store, is_leading=lambda: True)

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        created = asyncio.run(self.gateway.create(body))
        self.store.put("Schedule", created)
        return created

    def reconcile(self, now: datetime = NOW) -> None:
        asyncio.run(self.controller.reconcile_all(now))

    def wants(self) -> dict[str, dict[str, Any]]:
        return {w["metadata"]["name"]: w for w in self.gateway.of_kind("Want", NS)}

    def status(self, name: str = "daily") -> dict[str, Any]:
        obj = self.gateway.stored("Schedule", NS, name)
        assert obj is not None
        return dict(obj.get("status") or {})

    def set_want_state(self, name: str, state: str) -> None:
        want = self.gateway.stored("Want", NS, name)
        assert want is not None
        written = asyncio.run(self.gateway.patch_status("Want", NS, name, {"state": state}))
        self.store.put("Want", written)


def test_due_wants_carry_the_pinned_name_label_owner_and_data_time() -> None:
    h = Harness()
    sched = h.add(schedule(want={"ttlSeconds": 864000, "slaSeconds": 3600, "priority": -2}))
    h.reconcile()
    wants = h.wants()
    assert sorted(wants) == ["daily-202501080000", "daily-202501090000", "daily-202501100000"]
    want = wants["daily-202501090000"]
    assert want["metadata"]["labels"][SCHEDULE_LABEL] == "daily"
    [owner] = want["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "Schedule",
        "daily",
        sched["metadata"]["uid"],
    )
    assert want["spec"] == {
        "partitions": ["daily/date=2025-01-09"],
        "dataTimestamp": "2025-01-09T00:00:00Z",
        "ttlSeconds": 864000,
        "slaSeconds": 3600,
        "priority": -2,
    }
    status = h.status()
    assert status["lastTick"] == "2025-01-10T00:00:00Z"
    assert status["nextTick"] == "2025-01-11T00:00:00Z"
    assert status["wants"]["total"] == 3
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "UpToDate")


def test_a_second_pass_writes_nothing() -> None:
    h = Harness()
    h.add(schedule())
    h.reconcile()
    writes = h.gateway.stats.total_writes
    h.reconcile()
    assert h.gateway.stats.total_writes == writes


def test_a_crash_before_the_status_write_never_makes_a_second_want() -> None:
    h = Harness()
    h.add(schedule())
    h.gateway.fail_next("patch_status", "Schedule", Conflict("stale", status=409))
    h.reconcile()  # Wants created, status lost
    assert len(h.wants()) == 3
    assert "lastTick" not in h.status()
    # A fresh operator: an empty store, filled from the API.
    fresh = Harness()
    fresh.gateway = h.gateway
    fresh.controller = ScheduleController(fresh.gateway, fresh.store, is_leading=lambda: True)
    for kind in ("Schedule", "Want"):
        fresh.store.load(kind, h.gateway.of_kind(kind, NS))
    fresh.reconcile()
    assert fresh.controller.wants_created == 0
    assert len(fresh.wants()) == 3
    assert fresh.status()["lastTick"] == "2025-01-10T00:00:00Z"


def test_history_limit_deletes_the_oldest_terminal_wants() -> None:
    h = Harness()
    h.add(schedule(historyLimit=1))
    h.reconcile()
    for name in ("daily-202501080000", "daily-202501090000"):
        h.set_want_state(name, "Successful")
    h.reconcile()
    assert sorted(h.wants()) == ["daily-202501090000", "daily-202501100000"]


def test_an_invalid_time_zone_stalls_with_one_warning_and_a_neighbour_still_runs() -> None:
    h = Harness()
    h.add(schedule("broken", timeZone="Mars/Olympus"))
    h.add(schedule("healthy"))
    h.reconcile()
    h.reconcile(NOW.replace(hour=13))
    broken = h.status("broken")
    conditions = {c["type"]: c for c in broken["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "InvalidSpec"
    assert "spec.timeZone 'Mars/Olympus'" in conditions["Ready"]["message"]
    assert conditions["Stalled"]["status"] == "True"
    assert [e.reason for e in h.gateway.events] == ["InvalidSpec"]
    assert sorted(h.wants()) == [
        "healthy-202501080000",
        "healthy-202501090000",
        "healthy-202501100000",
    ]


def test_a_want_the_api_server_rejects_is_reported_and_nothing_is_handled() -> None:
    h = Harness()
    h.add(schedule())
    h.gateway.fail_next("create", "Want", Invalid("spec.partitions[0]: bad ref", status=422))
    h.reconcile()
    status = h.status()
    [ready] = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "WantRejected")
    assert "bad ref" in ready["message"]
    assert "handledThrough" not in status


def test_metrics_count_wants_created_reasons_and_how_far_behind_a_schedule_is() -> None:
    metrics = OperatorMetrics()
    h = Harness()
    h.controller.on_created = lambda ns: metrics.schedule_wants_created.labels(ns).inc()
    metrics.watch_store(h.store, clock=lambda: NOW)
    value = metrics.registry.get_sample_value
    # 100 days back: a pass creates at most 50 Wants, so the Schedule is catching up.
    h.add(schedule("behind", startTime="2024-10-02T00:00:00Z"))
    h.add(schedule("broken", timeZone="Mars/Olympus"))
    h.add(schedule("healthy"))
    h.reconcile()
    assert value("databuild_schedule_wants_created_total", {"namespace": NS}) == 53
    reasons = {
        r: value("databuild_schedules", {"namespace": NS, "reason": r})
        for r in ("CatchingUp", "InvalidSpec", "UpToDate", "Suspended")
    }
    assert reasons == {"CatchingUp": 1, "InvalidSpec": 1, "UpToDate": 1, "Suspended": 0}
    # The oldest due tick without a Want: 2024-10-02 + 50 days.
    oldest = datetime(2024, 11, 21, tzinfo=UTC)
    assert (
        value("databuild_schedule_lag_seconds", {"namespace": NS}) == (NOW - oldest).total_seconds()
    )
    h.reconcile()
    h.reconcile()
    assert value("databuild_schedule_lag_seconds", {"namespace": NS}) == 0
    assert value("databuild_schedules", {"namespace": NS, "reason": "UpToDate"}) == 2
