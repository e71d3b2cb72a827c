"""Named concurrency pools: one limit shared by several JobDefinitions."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from domain_builders import T0, Script

from databuild.domain.actions import HoldJobRun, TransitionJobRun
from databuild.domain.concurrency import POOL_NOT_FOUND, ConcurrencyPool, pool_usage
from databuild.domain.planner import Planner, plan
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.world import JobDefinition, JobOutcome, OutcomeKind, World


def _member(name: str, pool: str | None = "shared") -> JobDefinition:
    return JobDefinition(name, (f"{name}/{{d}}",), concurrency_pool=pool)


def _world(pools: dict[str, int] | None = None) -> World:
    return World(
        job_definitions={"a": _member("a"), "b": _member("b"), "free": _member("free", None)},
        concurrency_pools={
            n: ConcurrencyPool(n, m)
            for n, m in (pools if pools is not None else {"shared": 1}).items()
        },
    )


def _running(sim: Simulator) -> list[str]:
    return sorted(
        r.partitions[0] for r in sim.world.job_runs.values() if r.state.STATE == "Running"
    )


def test_runs_of_all_members_count_against_the_pool_and_outsiders_do_not() -> None:
    script = Script(hold=["a/1", "b/1", "a/2", "free/1", "free/2"])
    sim = Simulator(_world(), T0, script)
    sim.add_want("w", ["a/1", "b/1", "a/2", "free/1", "free/2"])
    sim.plan()
    assert _running(sim) == ["a/1", "free/1", "free/2"]  # one of the pool, every outsider
    pooled = []
    for _ in range(3):
        (current,) = [r for r in _running(sim) if not r.startswith("free/")]
        pooled.append(current)
        script.hold.discard(current)
        sim.finish_jobs()
        sim.advance(1)
        sim.plan()
    assert pooled == ["a/1", "a/2", "b/1"]  # one at a time, across both definitions
    script.hold.clear()
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_priority_orders_runs_within_a_pool() -> None:
    script = Script(hold=["a/0", "a/1", "b/1"])
    sim = Simulator(_world(), T0, script)
    sim.add_want("busy", ["a/0"])
    sim.plan()
    sim.advance(1)
    sim.add_want("low", ["a/1"])
    sim.advance(1)
    sim.add_want("high", ["b/1"], priority=2)
    sim.plan()
    script.hold.discard("a/0")
    sim.finish_jobs()
    sim.advance(1)
    sim.plan()
    assert _running(sim) == ["b/1"]


def test_a_missing_pool_holds_its_members_back_and_their_wants_say_why() -> None:
    sim = Simulator(_world(pools={}), T0, Script())
    sim.add_want("pooled", ["a/1"])
    sim.add_want("neighbour", ["free/1"])
    sim.run_until_quiet()
    assert sim.world.wants["neighbour"].state.STATE == "Successful"
    assert [r.state.STATE for r in sim.world.job_runs.values() if r.job_definition == "a"] == [
        "Queued"
    ]
    conditions = {c.type: c for c in sim.world.wants["pooled"].status.conditions}
    assert conditions["Ready"].reason == POOL_NOT_FOUND
    assert conditions["Stalled"].status == "True"
    assert "'shared', which does not exist" in conditions["Ready"].message
    # The pool appears: the run starts and the Want recovers.
    sim.world = dataclasses.replace(
        sim.world, concurrency_pools={"shared": ConcurrencyPool("shared", 1)}
    )
    sim.run_until_quiet()
    assert sim.world.wants["pooled"].state.STATE == "Successful"
    assert [c.type for c in sim.world.wants["pooled"].status.conditions] == ["Ready"]


def test_the_incremental_planner_agrees_with_the_full_plan_on_pools() -> None:
    sim = Simulator(_world(pools={"shared": 2}), T0, Script())
    for i in range(4):
        sim.add_want(f"w{i}", [f"a/{i}", f"b/{i}", f"free/{i}"], priority=i % 3 - 1)
    planner = Planner(sim.world)
    world = sim.world
    now = T0
    for step in range(40):
        if step == 2:  # the pool shrinks mid-way
            pools = {"shared": ConcurrencyPool("shared", 1)}
            world = dataclasses.replace(world, concurrency_pools=pools)
            planner.observe_concurrency_pools(pools)
        result = planner.plan(now)
        expected = plan(world, now)
        assert list(map(repr, result.actions)) == list(map(repr, expected.actions))
        world = apply_actions(world, result.actions)
        running = [r for r in world.job_runs.values() if r.state.STATE == "Running"]
        assert sum(r.job_definition in ("a", "b") for r in running) <= 2
        keys = sorted(k for k, o in world.outcomes.items() if o.kind is OutcomeKind.RUNNING)
        if not keys and not result.actions:
            break
        for name, attempt in keys:
            done = JobOutcome(name, attempt, OutcomeKind.SUCCEEDED)
            world = dataclasses.replace(world, outcomes={**world.outcomes, (name, attempt): done})
            planner.observe_outcome(done)
        now += timedelta(seconds=1)
    assert {w.state.STATE for w in world.wants.values()} == {"Successful"}
    assert planner.world() == world


def test_pool_usage_counts_running_and_queued_runs_of_members_only() -> None:
    usage = pool_usage(
        {("a", "Running"): 1, ("b", "Queued"): 2, ("free", "Running"): 3, ("a", "Failed"): 4},
        {"a": "shared", "b": "shared", "free": None},
    )
    assert {n: (u.running, u.waiting) for n, u in usage.items()} == {"shared": (1, 2)}


def test_started_runs_never_exceed_the_pool_at_any_step() -> None:
    script = Script(hold=[f"{j}/{i}" for j in ("a", "b") for i in range(3)])
    sim = Simulator(_world(pools={"shared": 2}), T0, script)
    sim.add_want("w", [f"{j}/{i}" for j in ("a", "b") for i in range(3)])
    for ref in ["a/0", "b/0", "a/1", "b/1", "a/2", "b/2"]:
        result = sim.plan()
        starts = [
            a
            for a in result.actions
            if isinstance(a, TransitionJobRun) and a.state.STATE == "Running"
        ]
        assert len(_running(sim)) <= 2, starts
        script.hold.discard(ref)
        sim.finish_jobs()
        sim.advance(1)
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_a_run_held_by_a_missing_pool_says_so_once_and_stops_when_the_pool_exists() -> None:
    sim = Simulator(_world(pools={}), T0, Script())
    sim.add_want("pooled", ["a/1"])
    first = sim.plan()
    holds = [a for a in first if isinstance(a, HoldJobRun)]
    assert [h.hold[0] if h.hold else None for h in holds] == [POOL_NOT_FOUND]
    [run] = sim.world.job_runs.values()
    assert run.hold is not None and "shared" in run.hold[1]
    assert not [a for a in plan(sim.world, sim.now) if isinstance(a, HoldJobRun)]  # once
    # The pool appears: the run starts (its status says Running), no hold is left.
    sim.world = dataclasses.replace(
        sim.world, concurrency_pools={"shared": ConcurrencyPool("shared", 1)}
    )
    sim.advance(1)
    sim.plan()
    [run] = sim.world.job_runs.values()
    assert (run.state.STATE, run.hold) == ("Running", None)


def test_a_hold_is_cleared_when_the_pool_exists_but_the_run_cannot_start() -> None:
    busy = _world(pools={})
    sim = Simulator(busy, T0, Script(hold=["free/1"]))
    sim.add_want("pooled", ["a/1"])
    sim.plan()
    # Every slot taken by an outsider: the pooled run stays Queued when the pool appears.
    limited = dataclasses.replace(sim.world.settings, max_concurrent_runs=1)
    sim.world = dataclasses.replace(sim.world, settings=limited)
    sim.add_want("outsider", ["free/1"])
    sim.plan()
    sim.world = dataclasses.replace(
        sim.world, concurrency_pools={"shared": ConcurrencyPool("shared", 1)}
    )
    sim.advance(1)
    actions = sim.plan()
    pooled = next(r for r in sim.world.job_runs.values() if r.job_definition == "a")
    assert pooled.state.STATE == "Queued"
    assert [a.hold for a in actions if isinstance(a, HoldJobRun)] == [None]
    assert pooled.hold is None


def test_a_run_its_upstream_releases_into_a_missing_pool_says_so_on_the_incremental_path() -> None:
    # "a" reads "free": its run waits, the upstream completes (a local pass), and the
    # run, now Queued, is held by the missing pool: the local pass notes the hold as
    # the full pass would, instead of leaving it to the next full pass.
    defs = {
        "a": JobDefinition("a", ("a/{d}",), ("free/{d}",), concurrency_pool="shared"),
        "free": _member("free", None),
    }
    sim = Simulator(World(job_definitions=defs), T0, Script())
    sim.add_want("pooled", ["a/1"])
    sim.add_want("neighbour", ["free/2"])
    planner = Planner(sim.world)
    world = apply_actions(sim.world, planner.plan(T0).actions)
    keys = sorted(k for k, o in world.outcomes.items() if o.kind is OutcomeKind.RUNNING)
    assert len(keys) == 2  # free/1 and the neighbour's free/2
    for name, attempt in keys:
        done = JobOutcome(name, attempt, OutcomeKind.SUCCEEDED)
        world = dataclasses.replace(world, outcomes={**world.outcomes, (name, attempt): done})
        planner.observe_outcome(done)
    now = T0 + timedelta(seconds=1)
    full_passes = planner.full_passes
    result = planner.plan(now)
    assert planner.full_passes == full_passes  # it stayed local
    expected = plan(world, now)
    assert list(map(repr, result.actions)) == list(map(repr, expected.actions))
    holds = [a.hold[0] for a in result.actions if isinstance(a, HoldJobRun) and a.hold]
    assert holds == [POOL_NOT_FOUND]
    world = apply_actions(world, result.actions)
    assert world.wants["neighbour"].state.STATE == "Successful"
