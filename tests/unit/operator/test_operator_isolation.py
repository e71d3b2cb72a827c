"""Errors stay with their object: planning, writes and outcome finalizers, per object.

Against the in-memory cluster (the gateway fake plus the store): a Want the planner
cannot plan, a write the API server refuses for good, a write that fails for a while,
each next to a healthy Want that must build all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from operator_fakes import FakeCluster, jobdef, want

from databuild import domain
from databuild.adapters.gateway import GatewayError, Invalid
from databuild.adapters.labels import OUTCOME_FINALIZER
from databuild.operator import isolation, retention, stalls
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import Executor
from databuild.operator.finalizer import releasable
from databuild.operator.leader import AlwaysLeader
from databuild.operator.loop import Orchestrator
from databuild.operator.retries import RetryQueue, permanent
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway

pytestmark = pytest.mark.unit

GOOD = "daily/date=2025-01-01"
BAD = "daily/date=2025-01-02"


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def _before_planning(
    monkeypatch: pytest.MonkeyPatch, before: Callable[[domain.World], None]
) -> None:
    """Call ``before`` with the world ahead of every plan, whether made at once
    (``domain.plan``) or by the Planner the loop keeps (``domain.Planner.plan``)."""
    real_plan, real_planner_plan = domain.plan, domain.Planner.plan

    def plan(world: domain.World, now: datetime) -> domain.Plan:
        before(world)
        return real_plan(world, now)

    def planner_plan(self: domain.Planner, now: datetime) -> domain.Plan:
        before(self.world())
        return real_planner_plan(self, now)

    monkeypatch.setattr(domain, "plan", plan)
    monkeypatch.setattr(domain.Planner, "plan", planner_plan)


def _build(c: FakeCluster, ref: str) -> None:
    """Finish the batch Job building ``ref`` and let the plans settle."""
    slug = ref.rsplit("=", 1)[1]
    [job] = [j for j in c.jobs() if slug in j["metadata"]["name"]]
    c.finish_job(job["metadata"]["name"])
    c.settle()


def test_a_want_whose_planning_raises_is_stalled_and_the_others_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The parsers are meant never to let a real object make the planner raise; this
    # checks the safety net behind them with a planner that raises for one ref.
    def before(world: domain.World) -> None:
        if any(BAD in w.partitions for w in world.wants.values()):
            raise RecursionError("maximum recursion depth exceeded")

    _before_planning(monkeypatch, before)
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("bad", [BAD]))
    c.apply(want("good", [GOOD]))
    c.settle()
    stalled = _condition(c.status("Want", "bad"), "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", isolation.PLANNING_FAILED)
    assert "RecursionError" in stalled["message"]
    assert "edit or delete it" in stalled["message"]
    warnings = [e for e in c.gateway.events if e.reason == isolation.PLANNING_FAILED]
    assert [e.regarding.name for e in warnings] == ["bad"]  # once, not on every plan
    _build(c, GOOD)
    assert c.status("Want", "good")["state"] == "Successful"
    assert c.settle() == 0


def test_a_want_with_a_number_the_planner_cannot_handle_leaves_the_others_alone() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("bad", [BAD], ttlSeconds=10**15))
    c.apply(want("good", [GOOD]))
    c.settle()
    _build(c, GOOD)
    assert c.status("Want", "good")["state"] == "Successful"
    bad = c.status("Want", "bad")
    assert bad.get("state") != "Successful" or _condition(bad, "Ready")["status"] == "True"


def test_planning_runs_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    _before_planning(monkeypatch, lambda world: threads.append(threading.get_ident()))
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("good", [GOOD]))
    c.reconcile()
    assert threads
    assert threading.get_ident() not in threads


def test_a_write_refused_for_good_stalls_that_object_and_the_plan_goes_on() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("first", [BAD]))
    c.apply(want("second", [GOOD]))
    c.gateway.fail_next(
        "patch_status",
        "Want",
        Invalid("Want.databuild.dev is invalid: status.message: Too long", status=422),
    )
    c.reconcile()
    refused = [
        w["metadata"]["name"]
        for w in c.of_kind("Want")
        if any(
            x.get("reason") == "WriteRefused"
            for x in (w.get("status") or {}).get("conditions") or []
        )
    ]
    assert len(refused) == 1
    assert [e.regarding.name for e in c.gateway.events if e.reason == "WriteRefused"] == refused
    # Both builds started anyway: one Want's refused status held up nothing else.
    assert len(c.jobs()) == 2
    # The refused object waits long before it is tried again; the rest settles.
    assert c.executor.retries.waiting("data", ("Want", refused[0]), c.now + timedelta(seconds=60))
    c.advance(301)
    c.settle()
    assert c.status("Want", refused[0])["state"] == "Building"


def test_a_failing_write_backs_off_that_object_alone() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("good", [GOOD]))
    c.gateway.fail_next("patch_status", "Want", GatewayError("HTTP 500: etcd timeout", status=500))
    c.reconcile()
    assert c.status("Want", "good").get("state") in (None, "Pending")
    c.apply(want("other", [BAD]))
    result = c.reconcile()
    # The first Want's status waits out its backoff; the second Want is not held up.
    assert result.deferred >= 1
    assert c.status("Want", "other")["state"] == "Building"
    assert c.loop._deadlines["data"] <= c.now + timedelta(seconds=1)
    c.advance(1)
    c.settle()
    assert c.status("Want", "good")["state"] == "Building"
    assert len(c.executor.retries) == 0


def test_a_create_that_failed_without_an_answer_but_was_made_is_not_made_twice() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("good", [GOOD]))
    real_create = c.gateway.create
    lost: list[str] = []

    async def create_then_time_out(manifest: dict[str, Any]) -> dict[str, Any]:
        made = await real_create(manifest)
        if manifest["kind"] == "JobRun" and not lost:
            lost.append(manifest["metadata"]["name"])
            raise GatewayError("timed out waiting for the response", status=0)
        return made

    c.gateway.create = create_then_time_out  # type: ignore[method-assign,assignment]
    c.settle()
    # The JobRun the API server made although the answer was lost is the one that builds:
    # the next plan, at a later time, would have named (and built) another one.
    assert [r["metadata"]["name"] for r in c.of_kind("JobRun")] == lost
    assert len(c.jobs()) == 1


def test_the_outcome_finalizer_goes_only_after_the_outcome_is_recorded() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("good", [GOOD]))
    c.settle()
    [job] = c.jobs()
    assert job["metadata"]["finalizers"] == [OUTCOME_FINALIZER]
    c.finish_job(job["metadata"]["name"])
    c.reconcile()
    [run] = c.of_kind("JobRun")
    assert run["status"]["state"] == "Succeeded"
    [job] = c.jobs()
    assert not job["metadata"].get("finalizers")


def _job(*, finished: bool = False, deleting: bool = False, attempt: int = 1) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"r-{attempt}",
        "resourceVersion": "7",
        "finalizers": ["foregroundDeletion", OUTCOME_FINALIZER],
        "labels": {"databuild.dev/job-run": "r"},
        "annotations": {"databuild.dev/attempt": str(attempt)},
    }
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    status = {"conditions": [{"type": "Complete", "status": "True"}]} if finished else {}
    return {"kind": "Job", "metadata": meta, "status": status}


def _run(state: str, attempt: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "r"}, "status": {"state": state, "attempt": attempt}}


@pytest.mark.parametrize(
    ("job", "run", "released"),
    [
        (_job(), _run("Running"), False),  # running: nothing to record yet
        (_job(finished=True), _run("Running"), False),  # finished, not recorded yet
        (_job(finished=True, deleting=True), _run("Running"), False),  # TTL: wait for it
        (_job(finished=True), _run("Succeeded"), True),  # recorded
        (_job(finished=True), _run("Queued", attempt=1), True),  # failed attempt recorded
        (_job(finished=True), _run("Running", attempt=2), True),  # the run moved on
        (_job(finished=True), None, True),  # the JobRun is gone
        (_job(deleting=True), _run("Running"), True),  # deleted unfinished: nothing to keep
        (_job(deleting=True), _run("Cancelled"), True),  # cancelled
        (_job(), _run("Cancelled"), False),  # not yet deleted: the delete comes first
    ],
)
def test_when_the_outcome_finalizer_may_go(
    job: dict[str, Any], run: dict[str, Any] | None, released: bool
) -> None:
    release = releasable(job, run)
    assert (release is not None) == released
    if release is not None:
        assert release.finalizers == ("foregroundDeletion",)  # others' finalizers stay
        assert release.resource_version == "7"


def test_retry_queue_backs_off_per_object_and_forgets() -> None:
    q = RetryQueue(base=0.5, cap=4.0, refused=300.0)
    t = datetime(2025, 1, 1, tzinfo=UTC)
    assert [q.failed("ns", ("Want", "a"), t) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert q.waiting("ns", ("Want", "a"), t + timedelta(seconds=3))
    assert not q.waiting("ns", ("Want", "b"), t)
    assert not q.waiting("other", ("Want", "a"), t)
    assert q.next_due("ns", t) == t + timedelta(seconds=4)
    assert q.next_due("ns", t + timedelta(seconds=5)) is None  # due: no wake-up in the past
    assert q.give_up("ns", ("JobRun", "r"), t) == 300.0
    assert not q.marked("ns", ("JobRun", "r"), "refused")
    assert q.marked("ns", ("JobRun", "r"), "refused")
    q.forget("ns", ("Want", "a"))
    q.forget("ns", ("JobRun", "r"))
    assert len(q) == 0
    q.failed("ns", ("Want", "gone"), t)
    q.next_due("ns", t + timedelta(hours=1))
    assert len(q) == 0  # long past due: its object is no longer written


def test_permanent_errors_are_the_ones_a_retry_cannot_fix() -> None:
    assert permanent(Invalid("x", status=422))
    assert permanent(GatewayError("too large", status=413))
    assert not permanent(GatewayError("unavailable", status=503))
    assert not permanent(GatewayError("forbidden", status=403))
    assert not permanent(GatewayError("no response"))


def _stuck_job(c: FakeCluster, minutes_ago: float) -> dict[str, Any]:
    [job] = c.jobs()
    created = c.now - timedelta(minutes=minutes_ago)
    job["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    c.gateway.bump(job)
    c.store.put("Job", job)
    return job


def test_a_job_whose_pod_is_refused_stalls_its_run_until_a_pod_appears() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", [GOOD]))
    c.settle()
    job = _stuck_job(c, minutes_ago=0)
    c.reconcile()
    [run] = c.of_kind("JobRun")
    assert stalls.stalled_condition(run) is None  # too early to tell
    refused = 'pods "x" is forbidden: exceeded quota: q, requested: pods=1, limited: pods=0'
    c.gateway.objects["Event", "data", "e1"] = {
        "kind": "Event",
        "metadata": {"name": "e1", "namespace": "data"},
        "involvedObject": {"kind": "Job", "name": job["metadata"]["name"]},
        "reason": "FailedCreate",
        "message": refused,
        "lastTimestamp": "2025-01-01T00:00:00Z",
    }
    _stuck_job(c, minutes_ago=1)
    c.reconcile()
    [run] = c.of_kind("JobRun")
    stalled = stalls.stalled_condition(run)
    assert stalled is not None
    assert refused in stalled["message"]
    assert run["status"]["state"] == "Running"  # a stall is not a failure
    assert [e.reason for e in c.gateway.events if e.regarding.name == run["metadata"]["name"]][
        -1:
    ] == ["FailedCreate"]
    assert c.settle() == 0  # said once
    c.finish_job(job["metadata"]["name"])  # the quota went away and the pod ran
    c.settle()
    [run] = c.of_kind("JobRun")
    assert run["status"]["state"] == "Succeeded"
    assert stalls.stalled_condition(run) is None


def test_review_finds_only_running_runs_whose_job_has_no_pod() -> None:
    now = datetime(2025, 1, 1, 0, 10, tzinfo=UTC)
    old, new = "2025-01-01T00:00:00Z", "2025-01-01T00:09:58Z"

    def job(name: str, created: str) -> dict[str, Any]:
        return {
            "metadata": {
                "name": name,
                "creationTimestamp": created,
                "annotations": {"databuild.dev/attempt": "1"},
            }
        }

    def run(job_name: str, state: str = "Running") -> dict[str, Any]:
        return {"status": {"state": state, "jobName": job_name}}

    pod = {"metadata": {"annotations": {"databuild.dev/attempt": "1"}}}
    found = stalls.review(
        {"a": run("a-1"), "b": run("b-1"), "c": run("c-1"), "d": run("d-1", "Queued")},
        {"a-1": job("a-1", old), "b-1": job("b-1", old), "c-1": job("c-1", new)},
        lambda name: [pod] if name == "b" else [],
        now,
    )
    assert found.suspects == (stalls.Suspect("a", "a-1"),)
    assert found.next_look == datetime(2025, 1, 1, 0, 10, 8, tzinfo=UTC)  # c's turn


def test_retention_keeps_builds_of_record_and_recent_runs() -> None:
    now = datetime(2025, 1, 10, tzinfo=UTC)
    age = timedelta(days=7)

    def run(state: str, finished: str | None, uid: str, out: str = "") -> dict[str, Any]:
        return {
            "metadata": {"uid": uid},
            "spec": {"jobDefinition": "jd", "partitions": [out or uid]},
            "status": {"state": state, "finishedAt": finished},
        }

    runs = {
        "old-failed": run("Failed", "2025-01-01T00:00:00Z", "u1"),
        "old-of-record": run("Succeeded", "2025-01-01T00:00:00Z", "u2"),
        "old-superseded": run("Succeeded", "2025-01-01T00:00:00Z", "u3"),
        "old-running": run("Running", None, "u4"),
        "recent": run("Cancelled", "2025-01-05T00:00:00Z", "u5"),
        # Two runs of the same outputs both go: a new run's name never reuses theirs.
        "old-twin-1": run("Failed", "2025-01-01T00:00:00Z", "u6", out="twin"),
        "old-twin-2": run("Failed", "2025-01-01T00:00:00Z", "u7", out="twin"),
    }
    partitions = {
        "p": {"status": {"state": "Live", "jobRun": "old-of-record"}},
        "q": {"status": {"state": "Tainted", "jobRun": "old-superseded"}},
    }
    found = retention.retire(runs, partitions, now, age)
    assert found.job_runs == (
        ("old-failed", "u1"),
        ("old-superseded", "u3"),
        ("old-twin-1", "u6"),
        ("old-twin-2", "u7"),
    )
    assert found.next_due == datetime(2025, 1, 12, tzinfo=UTC)


def test_the_executor_deletes_old_finished_runs_and_keeps_the_build_of_record() -> None:
    c = FakeCluster()
    c.executor.job_run_retention = timedelta(days=7)
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(jobdef("flaky", ["flaky/date={date}"], retry={"limit": 0}))
    c.apply(want("w", [GOOD]))
    c.apply(want("f", ["flaky/date=2025-01-01"]))
    c.settle()
    for job in c.jobs():
        c.finish_job(
            job["metadata"]["name"], exit_code=0 if "daily" in job["metadata"]["name"] else 3
        )
    c.settle()
    names = {r["metadata"]["name"]: r["status"]["state"] for r in c.of_kind("JobRun")}
    assert sorted(names.values()) == ["Failed", "Succeeded"]
    c.advance(8 * 86400)
    c.settle()
    left = {r["status"]["state"] for r in c.of_kind("JobRun")}
    assert left == {"Succeeded"}  # the Live partition's build of record stays


def test_a_namespace_that_plans_slowly_holds_up_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def before(world: domain.World) -> None:
        if "slow" in world.wants:
            release.wait(10)  # a huge namespace, still planning in its worker thread

    _before_planning(monkeypatch, before)
    gateway = FakeGateway()
    store = WorldStore()
    executor = Executor(gateway, store, BuildEventLog())
    loop = Orchestrator(
        store, executor, AlwaysLeader(), debounce_seconds=0.001, max_debounce_seconds=0.01
    )

    async def jobs_in(ns: str) -> bool:
        for _ in range(500):
            if gateway.of_kind("Job", ns):
                return True
            await asyncio.sleep(0.01)
        return False

    async def scenario() -> None:
        for ns, name in (("a", "slow"), ("b", "fast")):
            for manifest in (jobdef("daily", ["daily/date={date}"]), want(name, [GOOD])):
                manifest["metadata"]["namespace"] = ns
                store.put(manifest["kind"], await gateway.create(manifest))
        task = asyncio.create_task(loop.run())
        try:
            assert await jobs_in("b"), "the fast namespace waited for the slow one"
            assert not gateway.of_kind("Job", "a")
            release.set()
            assert await jobs_in("a")
        finally:
            release.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(scenario())


def test_a_pod_the_scheduler_cannot_place_makes_its_run_a_suspect_with_the_reason() -> None:
    now = datetime(2025, 1, 1, 0, 10, tzinfo=UTC)
    pod = {
        "kind": "Pod",
        "metadata": {
            "name": "a-1-xyz",
            "namespace": "data",
            "resourceVersion": "3",
            "labels": {"databuild.dev/job-run": "a"},
            "annotations": {"databuild.dev/attempt": "1"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "Ready", "status": "False"},
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 node(s) didn't match selector",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                },
            ],
        },
    }
    store = WorldStore()
    store.put("Pod", pod)
    job = {
        "metadata": {
            "name": "a-1",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {"databuild.dev/attempt": "1"},
        }
    }
    found = stalls.review(
        {"a": {"status": {"state": "Running", "jobName": "a-1"}}},
        {"a-1": job},
        lambda run: store.pods_of("data", run),
        now,
    )
    [suspect] = found.suspects
    assert "didn't match selector" in suspect.unscheduled


def test_a_termination_message_that_breaks_the_json_parser_fails_only_that_attempt() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"], retry={"limit": 0}))
    c.apply(want("bad", [BAD]))
    c.apply(want("good", [GOOD]))
    c.settle()
    slug = BAD.rsplit("=", 1)[1]
    [job] = [j for j in c.jobs() if slug in j["metadata"]["name"]]
    deep = '{"missingPartitions":' + "[" * 5000 + "]" * 5000 + "}"
    c.finish_job(job["metadata"]["name"], exit_code=1, message=deep)
    c.settle()
    assert c.status("Want", "bad")["state"] == "Failed"
    _build(c, GOOD)
    assert c.status("Want", "good")["state"] == "Successful"


def test_a_known_unplannable_want_is_not_searched_for_on_every_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def before(world: domain.World) -> None:
        calls.append(len(world.wants))
        if any(BAD in w.partitions for w in world.wants.values()):
            raise OverflowError("date value out of range")

    _before_planning(monkeypatch, before)
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    for i in range(8):
        c.apply(want(f"good{i}", [f"daily/date=2025-02-0{i + 1}"]))
    c.apply(want("bad", [BAD]))
    c.settle()
    calls.clear()
    c.store.mark_dirty("data")
    c.reconcile()
    assert calls == [8]  # one plan without the known bad Want, no search
    entries = c.loop._unplannable["data"]  # as if a minute had passed
    entries.update({n: (v, why, 0.0) for n, (v, why, _) in entries.items()})
    calls.clear()
    c.reconcile()
    assert len(calls) > 1  # tried again: it may have been fixed meanwhile
