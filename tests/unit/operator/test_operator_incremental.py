"""The loop plans batch Job changes with the Planner it kept, and anything else in full.

Against the in-memory cluster (the product's store, executor and loop with the gateway
fake). After every incremental pass a plan made from scratch, from what the API server
holds, must find nothing left to do: the incremental path and the full one agree.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta
from typing import Any

import pytest
from operator_fakes import NS, FakeCluster, jobdef, want

from databuild import domain
from databuild.adapters.gateway import Conflict
from databuild.operator import retention, snapshot
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import Executor
from databuild.operator.leader import AlwaysLeader
from databuild.operator.loop import Orchestrator
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway

pytestmark = pytest.mark.unit

N = 12


def _passes(c: FakeCluster) -> tuple[int, int]:
    """(full, incremental) plans so far."""
    return c.loop.stats.full_plans, c.loop.stats.incremental_plans


def _nothing_left(c: FakeCluster) -> None:
    """A full plan from a fresh read of the API server's objects has nothing to do."""
    store = WorldStore()
    for (kind, _, _), obj in c.gateway.objects.items():
        store.put(kind, copy.deepcopy(obj))
    snap = snapshot.build(store, NS, c.now)
    actions = domain.plan(snap.world, c.now).actions
    assert actions == (), actions


def _independent(c: FakeCluster, n: int = N) -> None:
    c.apply(jobdef("daily", ["daily/date={date}"]))
    for i in range(n):
        c.apply(want(f"w{i:02d}", [f"daily/date=2025-01-{i + 1:02d}"]))


@pytest.mark.parametrize("lanes", [1, 4])
def test_independent_builds_cost_one_full_pass_and_then_incremental_ones(lanes: int) -> None:
    c = FakeCluster(
        lambda gateway, store, bel: Executor(gateway, store, bel, write_concurrency=lanes)
    )
    _independent(c)
    c.reconcile()
    assert _passes(c) == (1, 0)
    assert len(c.jobs()) == N
    for i, job in enumerate(c.jobs()):
        c.finish_job(job["metadata"]["name"])
        result = c.reconcile()
        # The JobRun, its Partition and its Want, and the outcome finalizer's release.
        assert result.writes == 4
        assert _passes(c) == (1, i + 1)
        _nothing_left(c)
    assert c.states("Want") == {"Successful": N}
    assert c.states("Partition") == {"Live": N}


def test_a_want_changed_after_an_incremental_pass_is_planned_in_full() -> None:
    c = FakeCluster()
    _independent(c, 3)
    c.reconcile()
    c.finish_job(c.jobs()[0]["metadata"]["name"])
    c.reconcile()
    assert _passes(c) == (1, 1)
    # Somebody gives a Want still building a TTL it has already outlived.
    building = sorted(
        w["metadata"]["name"]
        for w in c.of_kind("Want")
        if (w.get("status") or {}).get("state") == "Building"
    )
    name = building[0]
    changed = asyncio.run(c.gateway.patch("Want", NS, name, {"spec": {"ttlSeconds": 60}}))
    c.store.put("Want", copy.deepcopy(changed))
    c.advance(120)
    c.reconcile()
    assert c.loop.stats.snapshots == 2  # read again from the store, a new Planner
    assert c.status("Want", name)["state"] == "Expired"
    cancelled = [r for r in c.of_kind("JobRun") if r["status"]["state"] == "Cancelled"]
    assert len(cancelled) == 1
    assert len(c.jobs()) == 2  # its batch Job went with it
    _nothing_left(c)
    # The new Planner goes on incrementally with the other build.
    [job] = [j for j in c.jobs() if not (j.get("status") or {}).get("conditions")]
    c.finish_job(job["metadata"]["name"])
    c.reconcile()
    assert c.loop.stats.snapshots == 2
    assert c.states("Want") == {"Successful": 2, "Expired": 1}
    _nothing_left(c)


def test_a_conflict_in_an_incremental_pass_makes_the_next_one_full() -> None:
    c = FakeCluster()
    _independent(c, 2)
    c.reconcile()
    first, second = (j["metadata"]["name"] for j in c.jobs())
    c.finish_job(first)
    c.gateway.fail_next("patch_status", "JobRun", Conflict("changed meanwhile", status=409))
    c.reconcile()
    # Re-planned at once from a fresh snapshot, so the build finished all the same.
    assert c.loop.stats.snapshots == 2
    assert c.states("Want") == {"Successful": 1, "Building": 1}
    c.finish_job(second)
    c.reconcile()
    assert c.states("Want") == {"Successful": 2}
    _nothing_left(c)


def test_a_batch_job_deleted_under_a_running_build_is_made_again_incrementally() -> None:
    c = FakeCluster()
    _independent(c, 2)
    c.reconcile()
    victim = c.jobs()[0]["metadata"]["name"]
    c.delete("Job", victim)
    c.reconcile()
    assert _passes(c) == (1, 1)
    assert victim in {j["metadata"]["name"] for j in c.jobs()}  # the same attempt, again
    _nothing_left(c)


def test_an_unreadable_want_is_reported_once_while_its_neighbour_builds_incrementally() -> None:
    c = FakeCluster()
    _independent(c, 1)
    c.apply(want("bad", ["daily/date=2025-03-01"], ttlSeconds=10**15))  # over the schema's cap
    c.reconcile()
    for job in c.jobs():
        c.finish_job(job["metadata"]["name"])
        c.reconcile()
    assert _passes(c) == (1, 1)
    assert c.status("Want", "w00")["state"] == "Successful"
    stalled = next(x for x in c.status("Want", "bad")["conditions"] if x["type"] == "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec")
    assert [e.regarding.name for e in c.gateway.events if e.reason == "InvalidSpec"] == ["bad"]


def _pod_finishes(store: WorldStore, gateway: FakeGateway, job: dict[str, Any]) -> None:
    """The job controller and the kubelet finish ``job`` (the watch delivers both)."""
    job = copy.deepcopy(job)
    job["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 1000)
    gateway.objects["Job", job["metadata"]["namespace"], job["metadata"]["name"]] = job
    store.put("Job", copy.deepcopy(job))


def test_the_running_loop_plans_each_change_once_and_no_echo_wakes_it() -> None:
    gateway, store = FakeGateway(), WorldStore()
    loop = Orchestrator(
        store,
        Executor(gateway, store, BuildEventLog()),
        AlwaysLeader(),
        debounce_seconds=0.001,
        max_debounce_seconds=0.01,
    )

    async def settle() -> None:
        await asyncio.sleep(0.05)
        await asyncio.wait_for(loop.idle.wait(), 10)
        await asyncio.sleep(0.05)  # an echo would have woken it by now
        await asyncio.wait_for(loop.idle.wait(), 10)

    async def scenario() -> list[int]:
        task = asyncio.create_task(loop.run())
        plans = []
        try:
            for manifest in (jobdef("daily", ["daily/date={date}"]), want("w", ["daily/date=x"])):
                store.put(manifest["kind"], await gateway.create(copy.deepcopy(manifest)))
            await settle()
            plans.append(loop.stats.plans)
            for job in gateway.of_kind("Job", NS):
                _pod_finishes(store, gateway, job)
            await settle()
            plans.append(loop.stats.plans)
        finally:
            task.cancel()
        return plans

    assert asyncio.run(scenario()) == [1, 2]
    assert loop.stats.incremental_plans == 1
    [done] = gateway.of_kind("Want", NS)
    assert done["status"]["state"] == "Successful"


def test_a_pass_cut_short_by_a_lost_lease_makes_the_next_one_full() -> None:
    leading = [True]

    def executor(gateway: FakeGateway, store: WorldStore, bel: BuildEventLog) -> Executor:
        return Executor(gateway, store, bel, is_leading=lambda: leading[0])

    c = FakeCluster(make_executor=executor)
    _independent(c, 2)
    c.reconcile()
    first, second = (j["metadata"]["name"] for j in c.jobs())
    c.finish_job(first)
    leading[0] = False  # lost between planning and writing: nothing is written
    assert c.reconcile().abandoned
    leading[0] = True  # leading again: what the Planner counted on never happened
    c.reconcile()
    assert c.loop.stats.snapshots == 2
    c.finish_job(second)
    c.reconcile()
    assert c.states("Want") == {"Successful": 2}
    _nothing_left(c)


def test_a_failed_job_whose_pod_never_said_why_fails_its_attempt_after_the_grace() -> None:
    c = FakeCluster()
    _independent(c, 1)
    c.reconcile()
    [job] = c.jobs()
    job = copy.deepcopy(job)
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    job["status"] = {"conditions": [{**failed, "lastTransitionTime": _stamp(c.now)}]}
    job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 1000)
    c.gateway.objects["Job", NS, job["metadata"]["name"]] = job
    c.store.put("Job", copy.deepcopy(job))  # no pod: its exit code may still come
    c.reconcile()
    [run] = c.of_kind("JobRun")
    assert run["status"]["state"] == "Running"
    c.advance(10)  # the grace is over (the loop would wake for it)
    c.reconcile()
    [run] = c.of_kind("JobRun")
    assert run["status"]["state"] == "Failed"  # the retry budget is 0
    # Read again by the kept Planner (a failure for good is its own full pass).
    assert c.loop.stats.snapshots == 1
    _nothing_left(c)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_incremental_passes_sweep_for_old_runs_only_when_one_is_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweeps: list[int] = []
    real_retire = retention.retire

    def retire(*args: Any) -> retention.Retirement:
        sweeps.append(1)
        return real_retire(*args)

    monkeypatch.setattr(retention, "retire", retire)
    c = FakeCluster()
    c.executor.job_run_retention = timedelta(days=7)
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(jobdef("flaky", ["flaky/date={date}"], retry={"limit": 0}))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.apply(want("f", ["flaky/date=2025-01-01"]))
    c.reconcile()
    assert len(sweeps) == 1  # the full pass
    for job in c.jobs():
        failed = "flaky" in job["metadata"]["name"]
        c.finish_job(job["metadata"]["name"], exit_code=3 if failed else 0)
        c.reconcile()
    assert len(sweeps) == 1  # nothing due: the incremental passes read no JobRun for it
    c.advance(8 * 86400)
    c.reconcile()  # the failed run is due (the loop wakes for it)
    c.reconcile()
    assert {r["status"]["state"] for r in c.of_kind("JobRun")} == {"Succeeded"}  # of record
    assert c.status("Want", "w")["state"] == "Successful"


def test_an_exception_on_the_incremental_path_falls_back_to_a_full_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = FakeCluster()
    _independent(c, 2)
    c.reconcile()

    def broken(self: domain.Planner, now: datetime) -> domain.Plan:
        raise RuntimeError("a bug on the incremental path")

    first, second = (j["metadata"]["name"] for j in c.jobs())
    c.finish_job(first)
    with monkeypatch.context() as patch:
        patch.setattr(domain.Planner, "plan", broken)
        c.reconcile()  # the kept Planner raises, then a new one: the one-shot plan serves
    assert c.loop.stats.snapshots == 2
    assert c.states("Want") == {"Successful": 1, "Building": 1}  # in the same pass
    c.finish_job(second)
    c.reconcile()
    assert c.states("Want") == {"Successful": 2}
    _nothing_left(c)


def test_a_completion_that_readies_a_waiting_run_stays_incremental() -> None:
    c = FakeCluster()
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("daily", ["daily/date={date}"], ["raw/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    assert _passes(c) == (1, 0)
    (raw,) = c.jobs()
    c.finish_job(raw["metadata"]["name"])
    c.reconcile()
    # The daily run, never started, goes WaitingForUpstream -> Queued -> Running in the
    # kept Planner's pass (its snapshot reads no batch Job for an attempt it never had).
    assert _passes(c) == (1, 1)
    assert len(c.jobs()) == 2
    daily = next(j for j in c.jobs() if j["metadata"]["name"] != raw["metadata"]["name"])
    c.finish_job(daily["metadata"]["name"])
    c.reconcile()
    assert _passes(c) == (1, 2)
    assert c.states("Want") == {"Successful": 1}
    _nothing_left(c)
