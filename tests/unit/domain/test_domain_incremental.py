"""The incremental Planner: local passes for outcomes, full passes for the rest."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from domain_builders import T0, Script, chain_world, jd

from databuild.domain.planner import Planner, plan
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.world import JobOutcome, OutcomeKind, World


def _running(world: World) -> list[tuple[str, int]]:
    return sorted(k for k, o in world.outcomes.items() if o.kind is OutcomeKind.RUNNING)


def test_outcomes_are_planned_locally_and_match_the_full_plan() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", ["daily/date=1", "daily/date=2"])
    planner = Planner(sim.world)
    first = planner.plan(T0)
    assert first == plan(sim.world, T0)
    world = apply_actions(sim.world, first.actions)
    assert planner.world() == world
    now = T0
    while _running(world):
        now += timedelta(seconds=1)
        for name, attempt in _running(world):
            done = JobOutcome(name, attempt, OutcomeKind.SUCCEEDED)
            world = dataclasses.replace(world, outcomes={**world.outcomes, (name, attempt): done})
            planner.observe_outcome(done)
        result = planner.plan(now)
        expected = plan(world, now)
        assert sorted(map(repr, result.actions)) == sorted(map(repr, expected.actions))
        world = apply_actions(world, result.actions)
        assert planner.world() == world
    assert world.wants["w"].state.STATE == "Successful"
    assert planner.full_passes == 1  # only the first plan looked at everything


def test_echoes_of_its_own_writes_are_no_ops() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", ["raw/date=1"])
    planner = Planner(sim.world)
    world = apply_actions(sim.world, planner.plan(T0).actions)
    for want in world.wants.values():
        planner.observe_want(want)
    for run in world.job_runs.values():
        planner.observe_job_run(run)
    for part in world.partitions.values():
        planner.observe_partition(part)
    for outcome in world.outcomes.values():
        planner.observe_outcome(outcome)
    for definition in world.job_definitions.values():
        planner.observe_job_definition(definition)
    assert planner.plan(T0).actions == ()
    assert planner.full_passes == 1


def test_changes_that_alter_needs_run_the_full_pass() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", ["raw/date=1"])
    planner = Planner(sim.world)
    world = apply_actions(sim.world, planner.plan(T0).actions)
    planner.forget_want("w")
    result = planner.plan(T0)
    assert planner.full_passes == 2
    assert [a.state.STATE for a in result.actions if type(a).__name__ == "TransitionJobRun"] == [
        "Cancelled"
    ]
    del world
    planner.observe_job_definition(jd("new", "new/{d}"))
    planner.plan(T0)
    assert planner.full_passes == 3


def test_a_failure_for_good_falls_back_to_the_full_pass() -> None:
    world = World(job_definitions={"raw": jd("raw", "raw/{d}")})
    sim = Simulator(world, T0, Script())
    sim.add_want("w", ["raw/1"])
    planner = Planner(sim.world)
    world = apply_actions(sim.world, planner.plan(T0).actions)
    (key,) = _running(world)
    failed = JobOutcome(key[0], key[1], OutcomeKind.FAILED, 1, "boom")
    planner.observe_outcome(failed)
    result = planner.plan(T0 + timedelta(seconds=1))
    assert planner.full_passes == 2
    world = dataclasses.replace(world, outcomes={**world.outcomes, key: failed})
    assert result == plan(world, T0 + timedelta(seconds=1))
