"""The basic flow: a Want for a partition with upstream inputs gets built, upstream first."""

from __future__ import annotations

from domain_builders import T0, chain_world, kinds

from databuild.domain.actions import CreateBatchJob, CreateJobRun, TransitionWant
from databuild.domain.planner import plan
from databuild.domain.refs import PartitionRef
from databuild.domain.simulation import Simulator
from databuild.domain.states import JobRunSucceeded, PartitionLive, WantSuccessful
from databuild.domain.world import Want, World


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
