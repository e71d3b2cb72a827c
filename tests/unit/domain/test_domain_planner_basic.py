"""The basic flow: a Want for a partition with upstream inputs gets built, upstream first."""

from __future__ import annotations

import dataclasses

from domain_builders import T0, chain_world, kinds

from databuild.domain.actions import (
    CreateBatchJob,
    CreateJobRun,
    TransitionPartition,
    TransitionWant,
)
from databuild.domain.planner import plan
from databuild.domain.refs import PartitionRef
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.states import JobRunSucceeded, PartitionLive, WantSuccessful
from databuild.domain.world import JobOutcome, OutcomeKind, Want, World


def test_empty_world_plans_nothing() -> None:
    result = plan(World(), T0)
    assert result.actions == ()
    assert result.next_wakeup is None


def test_first_plan_creates_every_run_upstream_first_and_starts_the_leaf() -> None:
    world = chain_world()
    want = Want("w", (PartitionRef("daily/date=1"),), created_at=T0)
    world = World(job_definitions=world.job_definitions, wants={"w": want})
    result = plan(world, T0)
    created = [a.partitions for a in result.actions if isinstance(a, CreateJobRun)]
    assert created == [("raw/date=1",), ("clean/date=1",), ("daily/date=1",)]
    jobs = [a for a in result.actions if isinstance(a, CreateBatchJob)]
    assert [j.partitions for j in jobs] == [("raw/date=1",)]
    assert jobs[0].attempt == 1 and jobs[0].name.endswith("-1")
    want_moves = [a.state.STATE for a in result.actions if isinstance(a, TransitionWant)]
    assert want_moves == ["UpstreamBuilding"]
    assert plan(world, T0) == result  # deterministic


def test_chain_reaches_success_and_is_quiet_after_each_plan(sim: Simulator) -> None:
    sim.add_want("w", ["daily/date=1"])
    for _ in range(10):
        sim.plan()
        assert plan(sim.world, sim.now).actions == ()  # fixpoint after applying
        sim.finish_jobs()
        sim.advance(1)
    assert isinstance(sim.world.wants["w"].state, WantSuccessful)
    for ref in ("raw/date=1", "clean/date=1", "daily/date=1"):
        part = sim.world.partitions[ref].state
        assert isinstance(part, PartitionLive)
        assert isinstance(sim.world.job_runs[part.built_by or ""].state, JobRunSucceeded)
    assert kinds(plan(sim.world, sim.now).actions) == []


def _writes_of(actions: tuple[object, ...], ref: str, run: str) -> list[str]:
    """The kinds of the actions about ``ref``'s Partition or ``run`` (JobRun, batch Job)."""
    out = []
    for a in actions:
        about = getattr(a, "ref", None) == ref
        about = about or run in (getattr(a, "name", None), getattr(a, "job_run", None))
        if about:
            out.append(type(a).__name__)
    return out


def test_a_started_run_gets_its_batch_job_before_its_partitions_are_claimed() -> None:
    world = chain_world()
    want = Want("w", (PartitionRef("daily/date=1"),), created_at=T0)
    world = World(job_definitions=world.job_definitions, wants={"w": want})
    actions = plan(world, T0).actions
    raw = next(
        a for a in actions if isinstance(a, CreateJobRun) and a.partitions[0] == "raw/date=1"
    )
    clean = next(
        a for a in actions if isinstance(a, CreateJobRun) and a.partitions[0] != "raw/date=1"
    )
    # The started run: its status and batch Job first, then its partition's claim.
    assert _writes_of(actions, "raw/date=1", raw.name) == [
        "CreateJobRun",
        "TransitionJobRun",
        "CreateBatchJob",
        "CreatePartition",
        "TransitionPartition",
    ]
    # A run that waits for upstream has no batch Job: its claim keeps its place.
    assert _writes_of(actions, str(clean.partitions[0]), clean.name) == [
        "CreateJobRun",
        "CreatePartition",
        "TransitionPartition",
        "TransitionJobRun",
    ]


def test_a_build_that_succeeds_before_its_claim_was_written_goes_live_once() -> None:
    """Killed after the batch Job and before the claim, the operator restarts after the
    job succeeded: the partition is claimed, then Live, and built by no second run."""
    world = World(job_definitions=chain_world().job_definitions)
    world = dataclasses.replace(
        world, wants={"w": Want("w", (PartitionRef("raw/date=1"),), created_at=T0)}
    )
    actions = plan(world, T0).actions
    cut = next(i for i, a in enumerate(actions) if isinstance(a, CreateBatchJob)) + 1
    assert not any(isinstance(a, TransitionPartition) for a in actions[:cut])
    world = apply_actions(world, actions[:cut], [])
    (run,) = world.job_runs.values()
    done = JobOutcome(run.name, 1, OutcomeKind.SUCCEEDED)
    world = dataclasses.replace(world, outcomes={(run.name, 1): done})
    world = apply_actions(world, plan(world, T0).actions, [])
    part = world.partitions["raw/date=1"]
    assert isinstance(part.state, PartitionLive)
    assert part.state.built_by == run.name
    assert list(world.job_runs) == [run.name]
    assert world.wants["w"].state.STATE == "Successful"
