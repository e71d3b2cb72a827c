"""One test (or a few) per planner rule."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from domain_builders import T0, Script, active_runs_by_ref, chain_world, jd, kinds, states

from databuild.domain.actions import (
    CreateBatchJob,
    CreateJobRun,
    DeleteBatchJob,
    FlagSlaBreach,
    TransitionJobRun,
    TransitionWant,
    UpdateWantStatus,
)
from databuild.domain.planner import plan
from databuild.domain.refs import PartitionRef
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.states import (
    JobRunQueued,
    JobRunRunning,
    JobRunWaitingForUpstream,
    PartitionBuilding,
    PartitionLive,
    WantFailed,
    WantPending,
)
from databuild.domain.world import JobRun, Partition, Settings, WantStatus, World


def conditions(sim: Simulator, want: str) -> dict[str, tuple[str, str, str]]:
    return {
        c.type: (c.status, c.reason, c.message) for c in sim.world.wants[want].status.conditions
    }


# --- resolving refs to JobDefinitions ----------------------------------------------------------


def test_no_job_definition_waits_with_a_reason_and_recovers() -> None:
    sim = Simulator(World(), T0, Script())
    sim.add_want("w", ["daily/date=1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Pending"
    cond = conditions(sim, "w")
    assert cond["Stalled"][:2] == ("True", "NoJobDefinition")
    assert "daily/date=1" in cond["Stalled"][2]
    assert cond["Ready"][:2] == ("False", "NoJobDefinition")
    for name, definition in chain_world().job_definitions.items():
        del name
        sim.add_job_definition(definition)
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert "Stalled" not in conditions(sim, "w")


def test_ambiguous_job_definitions_name_the_candidates_and_recover() -> None:
    world = World(job_definitions={"a": jd("a", "x/{d}"), "b": jd("b", "{k}/1")})
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["x/1"])
    sim.run_until_quiet()
    status, reason, message = conditions(sim, "w")["Stalled"]
    assert (status, reason) == ("True", "AmbiguousJobDefinition")
    assert "a, b" in message
    assert not sim.world.job_runs
    sim.add_job_definition(jd("b", "y/{k}"))
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_invalid_job_definition_is_reported_and_recovers() -> None:
    world = World(job_definitions={"a": jd("a", "x/{d}", ["up/{day}"])})
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["x/1"])
    sim.run_until_quiet()
    _, reason, message = conditions(sim, "w")["Stalled"]
    assert reason == "InvalidJobDefinition"
    assert "unknown capture 'day'" in message and "'a'" in message
    sim.add_job_definition(jd("a", "x/{d}"))
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_outputs_with_different_captures_are_invalid() -> None:
    definition = jd("a", ["x/{d}", "y/{e}"])
    assert definition.error is not None and "capture different names" in definition.error
    assert jd("ok", ["x/{d}", "y/{d}"]).error is None


def test_unresolved_upstream_is_explained_on_the_want() -> None:
    world = World(job_definitions={"daily": jd("daily", "daily/{d}", ["raw/{d}"])})
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["daily/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "UpstreamBuilding"
    _, reason, message = conditions(sim, "w")["Stalled"]
    assert reason == "NoJobDefinition" and "raw/1" in message
    sim.add_job_definition(jd("raw", "raw/{d}"))
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_multi_output_job_builds_every_output_in_one_run() -> None:
    world = World(job_definitions={"pair": jd("pair", ["left/{d}", "right/{d}"])})
    script = Script(hold=["left/1"])
    sim = Simulator(world, T0, script)
    sim.add_want("a", ["left/1"])
    sim.plan()
    sim.add_want("b", ["right/1"])
    sim.plan()
    assert len(sim.world.job_runs) == 1
    (run,) = sim.world.job_runs.values()
    assert run.partitions == ("left/1", "right/1")
    script.hold.clear()
    sim.run_until_quiet()
    assert {w.state.STATE for w in sim.world.wants.values()} == {"Successful"}


# --- invariant 1 and crashes between writes ---------------------------------------------------


def _final(sim: Simulator) -> tuple[dict[str, str], int]:
    sim.run_until_quiet()
    return states(sim.world), len(sim.world.outcomes)


@pytest.mark.parametrize("step", [0, 2, 3])
def test_replanning_from_any_partially_applied_plan_converges(step: int) -> None:
    """A crash between any two actions: re-planning gives the same end, no duplicates."""
    reference = Simulator(chain_world(), T0, Script())
    reference.add_want("w", ["daily/date=1"])
    for _ in range(step):
        reference.plan()
        reference.finish_jobs()
    start = reference.world
    expected = _final(dataclasses.replace(reference, log=[]))
    actions = plan(start, T0).actions
    assert actions
    for cut in range(len(actions) + 1):
        sim = Simulator(apply_actions(start, actions[:cut]), T0, Script())
        while True:
            assert all(len(v) == 1 for v in active_runs_by_ref(sim.world).values())
            if not sim.plan().actions and not sim.finish_jobs():
                break
        assert _final(sim) == expected, f"crash after action {cut}"


def test_a_duplicate_active_run_is_cancelled() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    ref = PartitionRef("raw/1")
    runs = {
        name: JobRun(name, "raw", (ref,), (), T0 + timedelta(seconds=i))
        for i, name in enumerate(["old", "new"])
    }
    world = dataclasses.replace(world, job_runs=runs)
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["raw/1"])
    result = plan(sim.world, T0 + timedelta(seconds=5))
    cancelled = [
        a.name
        for a in result.actions
        if isinstance(a, TransitionJobRun) and a.state.STATE == "Cancelled"
    ]
    assert cancelled == ["new"]


def test_running_run_without_its_batch_job_gets_it_recreated() -> None:
    ref = PartitionRef("raw/1")
    run = JobRun("r", "raw", (ref,), (), T0, {}, JobRunRunning(attempt=2, batch_job="r-2"))
    world = World(
        job_definitions={"raw": jd("raw", "raw/{d}")},
        partitions={ref: Partition(ref, PartitionBuilding(built_by="r"))},
        job_runs={"r": run},
    )
    world = apply_actions(world, plan(world, T0).actions)  # the Want-less run is cancelled
    assert world.job_runs["r"].state.STATE == "Cancelled"
    world = dataclasses.replace(
        world,
        job_runs={"r": run},
        partitions={ref: Partition(ref, PartitionBuilding(built_by="r"))},
    )
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["raw/1"])
    jobs = [a for a in plan(sim.world, T0).actions if isinstance(a, CreateBatchJob)]
    assert [(j.name, j.attempt) for j in jobs] == [("r-2", 2)]


def test_partition_building_by_a_vanished_run_is_reset_and_rebuilt() -> None:
    ref = PartitionRef("raw/1")
    world = World(
        job_definitions={"raw": jd("raw", "raw/{d}")},
        partitions={ref: Partition(ref, PartitionBuilding(built_by="gone"))},
    )
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["raw/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    reasons = [e.reason for e in sim.log if e.kind == "Partition"]
    assert reasons[0] == "BuildVanished"


# --- dependency misses --------------------------------------------------------------------


def test_dependency_miss_creates_a_derived_want_and_waits_without_spending_a_retry() -> None:
    world = World(job_definitions={"a": jd("a", "a/{d}"), "b": jd("b", "b/{d}")})
    sim = Simulator(world, T0, Script(miss={"a/1": {1: ["b/1"]}}, hold=["b/1"]))
    sim.add_want("w", ["a/1"])
    sim.plan()
    sim.finish_jobs()
    result = sim.plan()
    assert kinds(result.actions)[:2] == ["CreateWant", "TransitionJobRun"]
    run = next(r for r in sim.world.job_runs.values() if r.partitions == ("a/1",))
    assert isinstance(run.state, JobRunWaitingForUpstream)
    assert (run.state.attempt, run.state.failed_attempts) == (1, 0)
    assert run.state.missing_partitions == ("b/1",)
    derived = [w for w in sim.world.wants.values() if w.source_job_run == run.name]
    assert [w.partitions for w in derived] == [("b/1",)]
    assert sim.world.wants["w"].state.STATE == "UpstreamBuilding"


def test_reporting_a_partition_missing_again_after_it_is_live_fails() -> None:
    world = World(job_definitions={"a": jd("a", "a/{d}", retries=5), "b": jd("b", "b/{d}")})
    sim = Simulator(world, T0, Script(miss={"a/1": {1: ["b/1"], 2: ["b/1"]}}))
    sim.add_want("w", ["a/1"])
    sim.run_until_quiet()
    run = next(r for r in sim.world.job_runs.values() if r.partitions == ("a/1",))
    assert run.state.STATE == "Failed"
    assert "missing again" in run.state.message
    assert run.state.attempt == 2
    assert sim.world.wants["w"].state.STATE == "Failed"


def test_reporting_its_own_output_missing_fails() -> None:
    world = World(job_definitions={"a": jd("a", "a/{d}")})
    sim = Simulator(world, T0, Script(miss={"a/1": {1: ["a/1"]}}))
    sim.add_want("w", ["a/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Failed"


def test_derived_want_expires_when_its_job_run_is_cancelled() -> None:
    world = World(job_definitions={"a": jd("a", "a/{d}"), "b": jd("b", "b/{d}")})
    sim = Simulator(world, T0, Script(miss={"a/1": {1: ["b/1"]}}, hold=["b/1"]))
    sim.add_want("w", ["a/1"])
    for _ in range(3):
        sim.plan()
        sim.finish_jobs()
    sim.delete_want("w")
    sim.plan()
    derived = [w for w in sim.world.wants.values() if w.source_job_run is not None]
    assert [w.state.STATE for w in derived] == ["Expired"]
    assert derived[0].state.reason == "SourceJobRunEnded"
    assert not active_runs_by_ref(sim.world)
    assert plan(sim.world, sim.now).actions == ()


# --- failures ---------------------------------------------------------------------------------


def test_a_failed_partition_is_rebuilt_for_a_newer_want() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    script = Script(fail={"raw/1": [1]})
    sim = Simulator(world, T0, script)
    sim.add_want("old", ["raw/1"])
    sim.run_until_quiet()
    assert sim.world.wants["old"].state.STATE == "Failed"
    assert sim.world.partitions["raw/1"].state.STATE == "Failed"
    script.fail.clear()
    sim.advance(5)
    sim.add_want("new", ["raw/1"])
    sim.run_until_quiet()
    assert sim.world.wants["new"].state.STATE == "Successful"
    assert sim.world.wants["old"].state.STATE == "Failed"  # terminal stays
    assert len(sim.world.job_runs) == 2


def test_a_want_made_in_the_second_its_partition_failed_rebuilds_it() -> None:
    # The API server cuts creation times to the second: a retry made 0.3 s after the
    # failure carries a creation time 0.7 s before it.
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    script = Script(fail={"raw/1": [1]})
    sim = Simulator(world, T0, script)
    sim.add_want("old", ["raw/1"])
    sim.run_until_quiet()
    failed_at = sim.world.partitions["raw/1"].state.failed_at  # type: ignore[union-attr]
    assert failed_at is not None
    script.fail.clear()
    sim.now = failed_at + timedelta(seconds=0.3)
    sim.add_want("retry", ["raw/1"])
    sim.add_want("neighbour", ["raw/2"])
    retry = sim.world.wants["retry"]
    wants = {
        **sim.world.wants,
        "retry": dataclasses.replace(retry, created_at=failed_at - timedelta(seconds=0.7)),
    }
    sim.world = dataclasses.replace(sim.world, wants=wants)
    sim.run_until_quiet()
    assert sim.world.wants["retry"].state.STATE == "Successful"
    assert sim.world.wants["neighbour"].state.STATE == "Successful"
    assert sim.world.wants["old"].state.STATE == "Failed"
    assert len([r for r in sim.world.job_runs.values() if "raw/1" in r.partitions]) == 2


def test_a_want_whose_status_was_never_written_is_failed_by_a_later_failure() -> None:
    # Its status writes all failed, so every pass sees it for the first time: a failure a
    # second or more after its creation still fails it (no rebuild on every pass).
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    sim = Simulator(world, T0, Script(fail={"raw/1": [1, 2, 3]}))
    sim.add_want("w", ["raw/1"])
    sim.add_want("neighbour", ["raw/2"])
    sim.run_until_quiet()
    failed_at = sim.world.partitions["raw/1"].state.failed_at  # type: ignore[union-attr]
    assert failed_at is not None and failed_at >= T0 + timedelta(seconds=1)
    unwritten = dataclasses.replace(sim.world.wants["w"], state=WantPending(), status=WantStatus())
    sim.world = dataclasses.replace(sim.world, wants={**sim.world.wants, "w": unwritten})
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Failed"
    assert sim.world.wants["neighbour"].state.STATE == "Successful"
    assert len([r for r in sim.world.job_runs.values() if "raw/1" in r.partitions]) == 1


def test_a_tainted_partition_is_rebuilt_when_wanted() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    sim = Simulator(world, T0, Script())
    sim.add_want("w1", ["raw/1"])
    sim.run_until_quiet()
    part = sim.world.partitions["raw/1"]
    assert isinstance(part.state, PartitionLive)
    tainted, _ = part.state.taint("raw/1", at=sim.now, message="bad data")
    sim.world = dataclasses.replace(
        sim.world, partitions={"raw/1": dataclasses.replace(part, state=tainted)}
    )
    sim.run_until_quiet()
    assert sim.world.wants["w1"].state.STATE == "Successful"  # terminal: no rebuild
    assert sim.world.partitions["raw/1"].state.STATE == "Tainted"
    sim.add_want("w2", ["raw/1"])
    sim.run_until_quiet()
    assert sim.world.partitions["raw/1"].state.STATE == "Live"
    assert sim.world.wants["w2"].state.STATE == "Successful"


# --- limits -----------------------------------------------------------------------------------


def test_max_concurrent_runs_per_job_definition() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}", max_runs=2)})
    script = Script(hold=[f"raw/{i}" for i in range(5)])
    sim = Simulator(world, T0, script)
    sim.add_want("w", [f"raw/{i}" for i in range(5)])
    sim.plan()
    running = [r for r in sim.world.job_runs.values() if isinstance(r.state, JobRunRunning)]
    assert len(running) == 2
    assert sorted(r.partitions[0] for r in running) == ["raw/0", "raw/1"]  # oldest first
    script.hold.discard("raw/0")
    sim.finish_jobs()
    sim.plan()
    running = [r for r in sim.world.job_runs.values() if isinstance(r.state, JobRunRunning)]
    assert sorted(r.partitions[0] for r in running) == ["raw/1", "raw/2"]
    script.hold.clear()
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_global_max_concurrent_runs() -> None:
    world = World(
        job_definitions={"a": jd("a", "a/{d}"), "b": jd("b", "b/{d}")},
        settings=Settings(max_concurrent_runs=3),
    )
    sim = Simulator(world, T0, Script(hold=["a/1", "a/2", "b/1", "b/2"]))
    sim.add_want("w", ["a/1", "a/2", "b/1", "b/2"])
    sim.plan()
    running = [r for r in sim.world.job_runs.values() if isinstance(r.state, JobRunRunning)]
    queued = [r for r in sim.world.job_runs.values() if isinstance(r.state, JobRunQueued)]
    assert (len(running), len(queued)) == (3, 1)
    assert plan(sim.world, sim.now).actions == ()


def test_a_run_whose_job_definition_vanished_waits() -> None:
    sim = Simulator(World(job_definitions={"a": jd("a", "a/{d}", max_runs=0)}), T0, Script())
    sim.add_want("w", ["a/1"])
    sim.plan()
    sim.world = dataclasses.replace(sim.world, job_definitions={})
    result = sim.plan()
    assert not any(isinstance(a, CreateBatchJob) for a in result.actions)
    (run,) = sim.world.job_runs.values()
    assert isinstance(run.state, JobRunQueued)


# --- Wants: state derivation, conditions, TTL and SLA ----------------------------------------


def test_a_want_for_live_partitions_goes_through_building_to_successful() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("first", ["raw/date=1"])
    sim.run_until_quiet()
    sim.add_want("second", ["raw/date=1"])
    result = sim.plan()
    moves = [(a.from_state, a.state.STATE) for a in result.actions if isinstance(a, TransitionWant)]
    assert moves == [("Pending", "Building"), ("Building", "Successful")]


def test_want_conditions_keep_their_transition_time() -> None:
    sim = Simulator(World(), T0, Script())
    sim.add_want("w", ["nothing/1"])
    sim.plan()
    first = sim.world.wants["w"].status.conditions
    sim.advance(100)
    sim.add_job_definition(jd("other", "other/{d}"))  # an unrelated change
    assert plan(sim.world, sim.now).actions == ()
    assert sim.world.wants["w"].status.conditions == first


def test_want_status_counts_partitions_by_state() -> None:
    sim = Simulator(chain_world(), T0, Script(hold=["raw/date=2"]))
    sim.add_want("w", ["raw/date=1", "raw/date=2", "daily/date=1"])
    for _ in range(4):
        sim.plan()
        sim.finish_jobs()
        sim.advance(1)
    status = sim.world.wants["w"].status
    assert status.counts == {"Building": 1, "Live": 2}
    assert status.observed_generation == 1


def test_sla_breach_is_flagged_once_and_scheduled() -> None:
    sim = Simulator(chain_world(), T0, Script(hold=["raw/date=1"]))
    sim.add_want("w", ["raw/date=1"], sla_seconds=60, ttl_seconds=600)
    result = sim.plan()
    assert result.next_wakeup == T0 + timedelta(seconds=60)  # SLA before TTL
    sim.now = T0 + timedelta(seconds=60)
    result = sim.plan()
    flags = [a for a in result.actions if isinstance(a, FlagSlaBreach)]
    assert [f.deadline for f in flags] == [T0 + timedelta(seconds=60)]
    assert sim.world.wants["w"].status.sla_breached
    assert sim.world.wants["w"].state.STATE == "Building"  # SLA only flags
    result = plan(sim.world, sim.now)
    assert result.actions == ()
    assert result.next_wakeup == T0 + timedelta(seconds=600)


def test_ttl_counts_from_the_data_timestamp() -> None:
    sim = Simulator(chain_world(), T0, Script(hold=["raw/date=1"]))
    sim.add_want("w", ["raw/date=1"], ttl_seconds=3600)
    want = sim.world.wants["w"]
    early = dataclasses.replace(want, data_timestamp=T0 - timedelta(hours=2))
    sim.world = dataclasses.replace(sim.world, wants={"w": early})
    sim.plan()
    assert sim.world.wants["w"].state.STATE == "Expired"
    assert conditions(sim, "w")["Stalled"][0] == "True"


def test_deleted_wants_are_ignored() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", ["raw/date=1"])
    gone = dataclasses.replace(sim.world.wants["w"], deleted=True)
    sim.world = dataclasses.replace(sim.world, wants={"w": gone})
    assert plan(sim.world, T0).actions == ()


def test_status_update_only_when_it_changes() -> None:
    sim = Simulator(chain_world(), T0, Script(hold=["raw/date=1"]))
    sim.add_want("w", ["raw/date=1"])
    result = sim.plan()
    assert sum(isinstance(a, UpdateWantStatus) for a in result.actions) == 1
    sim.advance(10)
    assert plan(sim.world, sim.now).actions == ()


def test_a_want_failed_by_a_partition_names_it() -> None:
    sim = Simulator(chain_world(), T0, Script(fail={"raw/date=1": [1]}))
    sim.add_want("w", ["daily/date=1", "raw/date=3"])
    sim.run_until_quiet()
    state = sim.world.wants["w"].state
    assert isinstance(state, WantFailed)
    assert state.reason == "PartitionFailed" and "daily/date=1" in state.message
    # kstatus reads a finished failure as Stalled, not as still in progress.
    cond = conditions(sim, "w")
    assert cond["Ready"][:2] == ("False", "PartitionFailed")
    assert cond["Stalled"] == ("True", "PartitionFailed", state.message)


def test_next_wakeup_is_the_earliest_deadline() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}", retries=1, backoff=100)})
    sim = Simulator(world, T0, Script(fail={"raw/1": [1]}, hold=["raw/2"]))
    sim.add_want("w", ["raw/1", "raw/2"], ttl_seconds=500)
    sim.plan()
    sim.finish_jobs()
    result = sim.plan()
    assert result.next_wakeup == T0 + timedelta(seconds=100)


def test_plan_is_deterministic_and_idempotent() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", [f"daily/date={i}" for i in range(5)])
    first = plan(sim.world, T0)
    assert plan(sim.world, T0) == first
    names = {a.name for a in first.actions if isinstance(a, CreateJobRun)}
    assert len(names) == 15
    after = apply_actions(sim.world, first.actions)
    assert plan(after, T0).actions == ()
    assert not any(isinstance(a, DeleteBatchJob) for a in first.actions)


def test_only_wants_reaching_a_cycle_fail() -> None:
    world = World(
        job_definitions={
            "top": jd("top", "top/{d}", ["mid/{d}"]),
            "mid": jd("mid", "mid/{d}", ["loop/{d}"]),
            "loop": jd("loop", "loop/{d}", ["mid/{d}"]),
            "fine": jd("fine", "fine/{d}"),
        }
    )
    sim = Simulator(world, T0, Script())
    sim.add_want("doomed", ["top/1"])
    sim.add_want("ok", ["fine/1"])
    sim.run_until_quiet()
    doomed = sim.world.wants["doomed"].state
    assert doomed.STATE == "Failed" and doomed.reason == "DependencyCycle"
    assert "mid/1 -> loop/1 -> mid/1" in doomed.message
    assert sim.world.wants["ok"].state.STATE == "Successful"
    assert not any(
        r.partitions[0].startswith(("top", "mid", "loop")) for r in sim.world.job_runs.values()
    )


def test_plan_time_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        plan(World(), T0.replace(tzinfo=None))
