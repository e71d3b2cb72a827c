"""Priorities: which Queued run starts first when a concurrency limit holds runs back."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from domain_builders import T0, Script, chain_world, jd

from databuild.domain.actions import TransitionJobRun
from databuild.domain.planner import Planner, plan
from databuild.domain.priority import inherited_priorities, queue_key
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.world import JobOutcome, OutcomeKind, Settings, World


def _started(sim: Simulator) -> list[str]:
    """Output refs of the runs the next plan starts, in the order it starts them."""
    result = sim.plan()
    return [
        sim.world.job_runs[a.name].partitions[0]
        for a in result.actions
        if isinstance(a, TransitionJobRun) and a.state.STATE == "Running"
    ]


def _release(sim: Simulator, script: Script, ref: str) -> None:
    script.hold.discard(ref)
    sim.finish_jobs()
    sim.advance(1)


def test_a_later_high_priority_want_starts_before_earlier_low_ones() -> None:
    script = Script(hold=[f"a/{i}" for i in range(4)])
    world = World(job_definitions={"a": jd("a", "a/{d}")}, settings=Settings(max_concurrent_runs=1))
    sim = Simulator(world, T0, script)
    sim.add_want("first", ["a/0"])
    assert _started(sim) == ["a/0"]
    for i in (1, 2):
        sim.advance(1)
        sim.add_want(f"low{i}", [f"a/{i}"])
    sim.advance(1)
    sim.add_want("urgent", ["a/3"], priority=5)
    assert _started(sim) == []  # the limit holds all three back
    order = []
    for ref in ("a/0", "a/3", "a/1"):
        _release(sim, script, ref)
        order += _started(sim)
    assert order == ["a/3", "a/1", "a/2"]  # highest first, then oldest


def test_upstream_runs_inherit_the_priority_of_the_wants_that_need_them() -> None:
    world = dataclasses.replace(chain_world(), settings=Settings(max_concurrent_runs=1))
    script = Script(hold=["raw/date=0", "raw/date=1", "raw/date=2"])
    sim = Simulator(world, T0, script)
    sim.add_want("low", ["raw/date=0", "raw/date=1"])
    assert _started(sim) == ["raw/date=0"]
    sim.advance(1)
    sim.add_want("high", ["daily/date=2"], priority=10)  # raw/date=2 is two levels up
    assert _started(sim) == []
    _release(sim, script, "raw/date=0")
    result = sim.plan()
    (start,) = [
        a for a in result.actions if isinstance(a, TransitionJobRun) and a.state.STATE == "Running"
    ]
    assert sim.world.job_runs[start.name].partitions == ("raw/date=2",)
    assert start.event.details["priority"] == "10"  # the BEL says why it went first


def test_a_run_takes_the_highest_priority_of_the_wants_needing_it_and_ties_go_by_age() -> None:
    script = Script(hold=[f"a/{i}" for i in range(5)])
    world = World(job_definitions={"a": jd("a", "a/{d}")}, settings=Settings(max_concurrent_runs=1))
    sim = Simulator(world, T0, script)
    sim.add_want("busy", ["a/0"])
    sim.plan()
    for name, ref, priority in [
        ("older", "a/1", 3),
        ("plain", "a/4", 0),
        ("newer", "a/3", 3),
        ("shared-low", "a/2", -7),
        ("shared-high", "a/2", 3),  # a/2's run now ties with a/1 and a/3, and is youngest
    ]:
        sim.advance(1)
        sim.add_want(name, [ref], priority=priority)
        sim.plan()
    order = []
    for ref in ("a/0", "a/1", "a/3", "a/2"):
        _release(sim, script, ref)
        order += _started(sim)
    assert order == ["a/1", "a/3", "a/2", "a/4"]


def test_negative_priorities_start_after_the_default() -> None:
    script = Script(hold=["a/0", "a/1", "a/2"])
    world = World(job_definitions={"a": jd("a", "a/{d}")}, settings=Settings(max_concurrent_runs=1))
    sim = Simulator(world, T0, script)
    sim.add_want("busy", ["a/0"])
    sim.plan()
    sim.advance(1)
    sim.add_want("backfill", ["a/1"], priority=-1)
    sim.advance(1)
    sim.add_want("daily", ["a/2"])
    sim.plan()
    _release(sim, script, "a/0")
    assert _started(sim) == ["a/2"]


def test_priority_orders_runs_within_a_job_definition_limit() -> None:
    script = Script(hold=["a/0", "a/1", "a/2", "b/0"])
    world = World(job_definitions={"a": jd("a", "a/{d}", max_runs=1), "b": jd("b", "b/{d}")})
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["a/0", "a/1"])
    sim.plan()
    sim.advance(1)
    sim.add_want("urgent", ["a/2"], priority=1)
    sim.add_want("other", ["b/0"], priority=-5)  # not held by a's limit: starts at once
    assert _started(sim) == ["b/0"]
    _release(sim, script, "a/0")
    assert _started(sim) == ["a/2"]


def test_the_incremental_planner_orders_like_the_full_plan() -> None:
    sim = Simulator(
        dataclasses.replace(chain_world(), settings=Settings(max_concurrent_runs=2)), T0, Script()
    )
    for i in range(6):
        sim.add_want(f"w{i}", [f"daily/date={i}"], priority=(i * 7) % 5 - 2)
    planner = Planner(sim.world)
    world = sim.world
    now = T0
    for _ in range(60):
        result = planner.plan(now)
        expected = plan(world, now)
        assert list(map(repr, result.actions)) == list(map(repr, expected.actions))
        world = apply_actions(world, result.actions)
        running = sorted(k for k, o in world.outcomes.items() if o.kind is OutcomeKind.RUNNING)
        if not running and not result.actions:
            break
        for name, attempt in running:
            done = JobOutcome(name, attempt, OutcomeKind.SUCCEEDED)
            world = dataclasses.replace(world, outcomes={**world.outcomes, (name, attempt): done})
            planner.observe_outcome(done)
        now += timedelta(seconds=1)
    assert {w.state.STATE for w in world.wants.values()} == {"Successful"}
    assert planner.full_passes == 1


def test_inherited_priorities_walk_each_ref_once_and_survive_cycles() -> None:
    inputs = {"d": ("c", "b"), "c": ("a",), "b": ("a",), "a": ("d",), "x": ("a",)}
    runs = {r: f"run-{r}" for r in inputs}
    found = inherited_priorities(
        [(1, ["x"]), (4, ["d"]), (-2, ["x"])], runs.get, lambda r: inputs.get(r, ())
    )
    assert found == {"run-d": 4, "run-c": 4, "run-b": 4, "run-a": 4, "run-x": 1}
    # Every Want at the default: nothing to walk, every run has the default.
    assert inherited_priorities([(0, ["d"])], runs.get, lambda r: inputs[r]) == {}


def test_queue_key_orders_by_priority_then_age_then_name() -> None:
    keys = [
        queue_key(0, T0, "b"),
        queue_key(0, T0, "a"),
        queue_key(2, T0 + timedelta(hours=1), "z"),
        queue_key(0, T0 - timedelta(seconds=1), "y"),
    ]
    assert [k[2] for k in sorted(keys)] == ["z", "y", "a", "b"]
