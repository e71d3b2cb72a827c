"""End-to-end scenarios on the in-memory simulator: plan, apply, play jobs, repeat."""

from __future__ import annotations

from datetime import timedelta

from domain_builders import T0, Script, active_runs_by_ref, chain_world, jd, states

from databuild.domain.actions import CreateBatchJob, DeleteBatchJob
from databuild.domain.events import EntityKind
from databuild.domain.planner import plan
from databuild.domain.replay import replay
from databuild.domain.simulation import Simulator
from databuild.domain.states import (
    JobRunCancelled,
    JobRunFailed,
    JobRunQueued,
    JobRunSucceeded,
    PartitionLive,
    PartitionMissing,
)
from databuild.domain.world import World


def assert_bel_replays(sim: Simulator) -> None:
    """Invariant 4: replaying the event log from empty gives the current states.

    Deleting a Want is not a transition, so a deleted Want keeps its last state in the log.
    """
    replayed = {k: v for k, v in replay(sim.log).items() if k[1] not in sim.deleted}
    current = {(EntityKind.WANT, n): w.state.STATE for n, w in sim.world.wants.items()}
    current |= {(EntityKind.JOB_RUN, n): r.state.STATE for n, r in sim.world.job_runs.items()}
    current |= {
        (EntityKind.PARTITION, p.name): p.state.STATE for p in sim.world.partitions.values()
    }
    assert dict(replayed) == current


def runs_for(sim: Simulator, ref: str) -> list[str]:
    return sorted(n for n, r in sim.world.job_runs.items() if ref in r.partitions)


def test_three_level_chain() -> None:
    script = Script()
    sim = Simulator(chain_world(), T0, script)
    sim.add_want("w", ["daily/date=1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert script.calls == [("raw/date=1", 1), ("clean/date=1", 1), ("daily/date=1", 1)]
    for ref in ("raw/date=1", "clean/date=1", "daily/date=1"):
        assert len(runs_for(sim, ref)) == 1
    daily = sim.world.partitions["daily/date=1"].state
    assert isinstance(daily, PartitionLive)
    assert daily.inputs == ("clean/date=1", "raw/date=1")  # lineage
    status = sim.world.wants["w"].status
    assert status.counts == {"Live": 1}
    assert [(c.type, c.status) for c in status.conditions] == [("Ready", "True")]
    assert_bel_replays(sim)


def test_diamond_builds_the_shared_base_once() -> None:
    world = World(
        job_definitions={
            "base": jd("base", "base/{d}"),
            "left": jd("left", "left/{d}", ["base/{d}"]),
            "right": jd("right", "right/{d}", ["base/{d}"]),
            "top": jd("top", "top/{d}", ["left/{d}", "right/{d}"]),
        }
    )
    script = Script()
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["top/1", "top/2"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert sorted(script.calls).count(("base/1", 1)) == 1
    assert len(script.calls) == 8
    assert len(sim.world.job_runs) == 8
    assert_bel_replays(sim)


def test_dependency_miss_chain() -> None:
    world = World(
        job_definitions={
            "daily": jd("daily", "daily/{d}"),
            "extra": jd("extra", "extra/{d}"),
            "deep": jd("deep", "deep/{d}"),
        }
    )
    script = Script(miss={"daily/1": {1: ["extra/1"]}, "extra/1": {1: ["deep/1"]}})
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["daily/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert script.calls == [
        ("daily/1", 1),
        ("extra/1", 1),
        ("deep/1", 1),
        ("extra/1", 2),
        ("daily/1", 2),
    ]
    (daily_run,) = runs_for(sim, "daily/1")
    state = sim.world.job_runs[daily_run].state
    assert isinstance(state, JobRunSucceeded)
    assert (state.attempt, state.failed_attempts, state.ever_missing) == (2, 0, ("extra/1",))
    derived = [w for w in sim.world.wants.values() if w.source_job_run is not None]
    assert sorted((w.source_job_run or "", w.partitions) for w in derived) == sorted(
        [(daily_run, ("extra/1",)), (runs_for(sim, "extra/1")[0], ("deep/1",))]
    )
    assert all(w.state.STATE == "Successful" for w in derived)
    assert_bel_replays(sim)


def test_failure_then_retry_after_backoff_then_success() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}", retries=2, backoff=10)})
    script = Script(fail={"raw/1": [1]})
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["raw/1"])
    sim.plan()
    sim.finish_jobs()
    sim.advance(1)
    result = sim.plan()  # the failure: Running -> Queued with a retry-after time
    (run_name,) = runs_for(sim, "raw/1")
    state = sim.world.job_runs[run_name].state
    assert isinstance(state, JobRunQueued)
    assert state.retry_after == T0 + timedelta(seconds=11)
    assert (state.attempt, state.failed_attempts) == (1, 1)
    assert result.next_wakeup == state.retry_after
    assert not any(isinstance(a, CreateBatchJob) for a in result.actions)
    sim.advance(5)
    assert plan(sim.world, sim.now).actions == ()  # still backing off
    sim.now = T0 + timedelta(seconds=11)
    result = sim.plan()
    jobs = [a for a in result.actions if isinstance(a, CreateBatchJob)]
    assert [(j.attempt, j.name) for j in jobs] == [(2, f"{run_name}-2")]
    sim.run_until_quiet()
    state = sim.world.job_runs[run_name].state
    assert isinstance(state, JobRunSucceeded)
    assert (state.attempt, state.failed_attempts) == (2, 1)
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert_bel_replays(sim)


def test_retries_spent_fails_the_run_downstream_and_the_want() -> None:
    world = chain_world()
    world = World(
        job_definitions={
            **world.job_definitions,
            "raw": jd("raw", "raw/date={date}", retries=1, backoff=1),
        }
    )
    script = Script(fail={"raw/date=1": Script.ALWAYS})
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["daily/date=1"])
    sim.run_until_quiet()
    assert script.calls == [("raw/date=1", 1), ("raw/date=1", 2)]
    (raw_run,) = runs_for(sim, "raw/date=1")
    state = sim.world.job_runs[raw_run].state
    assert isinstance(state, JobRunFailed)
    assert (state.attempt, state.failed_attempts) == (2, 2)
    assert "1 retries spent" in state.message and "exit code 2" in state.message
    for ref in ("raw/date=1", "clean/date=1", "daily/date=1"):
        assert sim.world.partitions[ref].state.STATE == "Failed"
        assert all(
            isinstance(sim.world.job_runs[r].state, JobRunFailed) for r in runs_for(sim, ref)
        )
    want = sim.world.wants["w"]
    assert want.state.STATE == "Failed"
    assert want.state.reason == "PartitionFailed"
    assert "daily/date=1" in want.state.message
    assert_bel_replays(sim)


def test_two_wants_for_one_partition_share_the_build() -> None:
    script = Script(hold=["daily/date=1"])
    sim = Simulator(chain_world(), T0, script)
    sim.add_want("first", ["daily/date=1"])
    for _ in range(4):
        sim.plan()
        sim.finish_jobs()
        sim.advance(1)
    sim.add_want("second", ["daily/date=1", "raw/date=1"])
    sim.plan()
    assert {n: w.state.STATE for n, w in sim.world.wants.items()} == {
        "first": "Building",
        "second": "Building",
    }
    script.hold.clear()
    sim.run_until_quiet()
    assert all(len(v) <= 1 for v in active_runs_by_ref(sim.world).values())
    assert len(runs_for(sim, "daily/date=1")) == 1
    assert [c for c in script.calls if c[0] == "daily/date=1"] == [("daily/date=1", 1)]
    assert {w.state.STATE for w in sim.world.wants.values()} == {"Successful"}
    assert_bel_replays(sim)


def test_cancellation_when_the_want_is_deleted() -> None:
    script = Script(hold=["raw/date=1"])
    sim = Simulator(chain_world(), T0, script)
    sim.add_want("w", ["daily/date=1"])
    sim.add_want("other", ["raw/date=2"])
    for _ in range(3):
        sim.plan()
        sim.finish_jobs()
        sim.advance(1)
    (raw_run,) = runs_for(sim, "raw/date=1")
    sim.delete_want("w")
    result = sim.plan()
    deletes = [a for a in result.actions if isinstance(a, DeleteBatchJob)]
    assert [(d.job_run, d.name) for d in deletes] == [(raw_run, f"{raw_run}-1")]
    for ref in ("raw/date=1", "clean/date=1", "daily/date=1"):
        assert isinstance(sim.world.partitions[ref].state, PartitionMissing)
        assert all(
            isinstance(sim.world.job_runs[r].state, JobRunCancelled) for r in runs_for(sim, ref)
        )
    assert sim.world.partitions["raw/date=2"].state.STATE == "Live"  # other Want untouched
    assert plan(sim.world, sim.now).actions == ()
    assert_bel_replays(sim)


def test_static_dependency_cycle_fails_the_want_naming_the_cycle() -> None:
    world = World(
        job_definitions={
            "a": jd("a", "a/{d}", ["b/{d}"]),
            "b": jd("b", "b/{d}", ["c/{d}"]),
            "c": jd("c", "c/{d}", ["a/{d}"]),
            "ok": jd("ok", "ok/{d}"),
        }
    )
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["ok/1", "a/1"])
    sim.run_until_quiet()
    want = sim.world.wants["w"]
    assert want.state.STATE == "Failed"
    assert want.state.reason == "DependencyCycle"
    assert "a/1 -> b/1 -> c/1 -> a/1" in want.state.message
    assert not runs_for(sim, "a/1")  # nothing is built for a cycle
    assert all(r.state.STATE in ("Cancelled", "Succeeded") for r in sim.world.job_runs.values())
    assert_bel_replays(sim)


def test_dependency_miss_cycle_fails_instead_of_waiting_forever() -> None:
    world = World(job_definitions={"x": jd("x", "x/{d}"), "y": jd("y", "y/{d}")})
    script = Script(miss={"x/1": {1: ["y/1"]}, "y/1": {1: ["x/1"]}})
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["x/1"])
    sim.run_until_quiet()
    want = sim.world.wants["w"]
    assert want.state.STATE == "Failed"
    assert "x/1" in want.state.message
    assert not active_runs_by_ref(sim.world)
    assert_bel_replays(sim)


def test_ttl_expires_the_want_and_cancels_its_builds() -> None:
    script = Script(hold=["raw/date=1"])
    sim = Simulator(chain_world(), T0, script)
    sim.add_want("w", ["daily/date=1"], ttl_seconds=30)
    result = sim.plan()
    assert result.next_wakeup == T0 + timedelta(seconds=30)
    sim.now = T0 + timedelta(seconds=29)
    sim.plan()
    assert sim.world.wants["w"].state.STATE == "UpstreamBuilding"
    sim.now = T0 + timedelta(seconds=30)
    sim.plan()
    want = sim.world.wants["w"]
    assert want.state.STATE == "Expired" and want.state.reason == "TTLExpired"
    assert not active_runs_by_ref(sim.world)
    assert plan(sim.world, sim.now).actions == ()
    assert states(sim.world)["part:raw/date=1"] == "Missing"
    assert_bel_replays(sim)
