"""Planning stays bounded and confined: budgets, overflow-free time, names, checked requests."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from domain_builders import T0, Script, jd

from databuild.domain import (
    Action,
    JobDefinition,
    PartitionRef,
    Settings,
    TaintRequest,
    Want,
    WantFailed,
    World,
    plan,
)
from databuild.domain.actions import (
    CreateJobRun,
    TransitionJobRun,
    TransitionWant,
    UpdateWantStatus,
)
from databuild.domain.limits import MAX_EVER_MISSING
from databuild.domain.simulation import Simulator


def _ready(actions: Iterable[Action], want: str) -> tuple[str, str]:
    updates = [a for a in actions if isinstance(a, UpdateWantStatus) and a.name == want]
    ready = updates[-1].conditions[0]
    return ready.reason, ready.message


def _healthy() -> dict[str, JobDefinition]:
    return {"ok": jd("ok", "ok/{d}", ["okraw/{d}"]), "okraw": jd("okraw", "okraw/{d}")}


def test_a_self_feeding_chain_fails_its_want_and_builds_nothing() -> None:
    # a/1 <- a/10 <- a/100 <- ... until refs reach 1024 characters: 1,021 runs before.
    sim = Simulator(World(job_definitions={"a": jd("a", "a/{x}", ["a/{x}0"]), **_healthy()}), T0)
    sim.add_want("bomb", ["a/1"])
    sim.add_want("fine", ["ok/1"])
    sim.run_until_quiet()
    bomb = sim.world.wants["bomb"]
    assert isinstance(bomb.state, WantFailed)
    assert bomb.state.reason == "NeedBudgetExceeded"
    assert "500 levels of inputs per Want" in bomb.state.message
    assert {r.job_definition for r in sim.world.job_runs.values()} == {"ok", "okraw"}
    assert sim.world.wants["fine"].state.STATE == "Successful"


def test_an_exploding_graph_is_cut_at_the_refs_budget() -> None:
    # b/{x} <- b/{x}0, b/{x}1: 2^depth refs; the walk would never end before.
    defs = {"b": jd("b", "b/{x}", ["b/{x}0", "b/{x}1"]), **_healthy()}
    world = World(
        job_definitions=defs,
        wants={
            "bomb": Want("bomb", (PartitionRef("b/1"),), T0),
            "fine": Want("fine", (PartitionRef("ok/1"),), T0),
        },
        settings=Settings(need_refs_per_want=1000, need_depth_per_want=10_000),
    )
    result = plan(world, T0)
    reason, message = _ready(result.actions, "bomb")
    assert reason == "NeedBudgetExceeded" and "1000 partitions per Want" in message
    created = [a for a in result.actions if isinstance(a, CreateJobRun)]
    assert {a.job_definition for a in created} == {"ok", "okraw"}


def test_the_namespace_budget_stops_the_want_that_crosses_it() -> None:
    wants = {
        f"w{i}": Want(f"w{i}", tuple(PartitionRef(f"ok/{i}-{k}") for k in range(10)), T0)
        for i in range(5)
    }
    world = World(
        job_definitions=_healthy(),
        wants=wants,
        settings=Settings(need_refs_per_namespace=50),
    )
    result = plan(world, T0)
    failed = {
        a.name
        for a in result.actions
        if isinstance(a, TransitionWant) and a.state.STATE == "Failed"
    }
    assert failed == {"w2", "w3", "w4"}  # 20 refs each: w0 and w1 fit in 50
    assert "50 partitions per namespace" in _ready(result.actions, "w2")[1]
    assert sum(isinstance(a, CreateJobRun) for a in result.actions) == 40


def test_times_at_their_limits_never_overflow() -> None:
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    world = World(
        job_definitions=_healthy(),
        wants={
            "ttl": Want("ttl", (PartitionRef("ok/1"),), T0, ttl_seconds=1e15, sla_seconds=1e300),
            "date": Want("date", (PartitionRef("ok/2"),), T0, ttl_seconds=60, data_timestamp=far),
            "nan": Want("nan", (PartitionRef("ok/3"),), T0, ttl_seconds=float("inf")),
        },
    )
    sim = Simulator(world, T0)
    sim.run_until_quiet()
    assert {w.state.STATE for w in sim.world.wants.values()} == {"Successful"}


def test_run_names_do_not_depend_on_how_many_runs_exist() -> None:
    script = Script(fail={"raw/1": Script.ALWAYS})
    sim = Simulator(World(job_definitions={"raw": jd("raw", "raw/{d}")}), T0, script)
    sim.add_want("first", ["raw/1"])
    sim.run_until_quiet()
    (old,) = sim.world.job_runs
    sim.advance(60)
    sim.add_want("second", ["raw/1"])  # rebuilds raw/1: a second run
    sim.run_until_quiet()
    names = set(sim.world.job_runs)
    assert len(names) == 2
    # The first run is deleted (retention, a user): the next build still gets a new name.
    runs = {n: r for n, r in sim.world.job_runs.items() if n != old}
    sim.world = dataclasses.replace(sim.world, job_runs=runs)
    sim.advance(60)
    sim.add_want("third", ["raw/1"])
    sim.run_until_quiet()
    assert len(set(sim.world.job_runs) | names) == 3
    assert sim.world.wants["third"].state.STATE == "Failed"
    assert "boom" in sim.world.wants["third"].state.message  # its own failure


def test_a_miss_on_a_ref_nothing_builds_fails_the_run() -> None:
    script = Script(miss={"top/1": {1: ["nowhere/1"]}})
    defs = {"top": jd("top", "top/{d}"), **_healthy()}
    sim = Simulator(World(job_definitions=defs), T0, script)
    sim.add_want("w", ["top/1"])
    sim.add_want("fine", ["ok/1"])
    sim.run_until_quiet()
    (run,) = [r for r in sim.world.job_runs.values() if r.job_definition == "top"]
    assert run.state.STATE == "Failed"
    failed = [e for e in sim.log if e.to_state == "Failed" and e.name == run.name]
    assert failed[0].reason == "UnbuildableDependency"
    assert "nowhere/1" in run.state.message
    assert sim.world.wants["w"].state.STATE == "Failed"
    assert sim.world.wants["fine"].state.STATE == "Successful"


def test_too_many_reported_misses_fail_the_run_before_the_status_overflows() -> None:
    first = [f"up/{i}" for i in range(600)]
    second = [f"up/{i}" for i in range(600, 1200)]
    script = Script(miss={"top/1": {1: first, 2: second}})
    defs = {"top": jd("top", "top/{d}"), "up": jd("up", "up/{d}")}
    sim = Simulator(World(job_definitions=defs), T0, script)
    sim.add_want("w", ["top/1"])
    sim.run_until_quiet(max_steps=400)
    (run,) = [r for r in sim.world.job_runs.values() if r.job_definition == "top"]
    assert run.state.STATE == "Failed"
    assert f"more than {MAX_EVER_MISSING}" in run.state.message
    assert len(run.state.ever_missing) == 600


def _settle(sim: Simulator) -> None:
    for _ in range(50):
        result = sim.plan()
        changed = sim.finish_jobs()
        sim.advance(1)
        if not result.actions and not changed:
            return
    raise AssertionError("did not settle")


def test_a_future_taint_request_waits_for_its_time_and_taints_once() -> None:
    sim = Simulator(World(job_definitions={"raw": jd("raw", "raw/{d}")}), T0)
    sim.add_want("w", ["raw/1"])
    sim.run_until_quiet()
    part = sim.world.partitions["raw/1"]
    forged = TaintRequest("from the future", datetime(2100, 1, 1, tzinfo=UTC))
    parts = {"raw/1": dataclasses.replace(part, taint_request=forged)}
    sim.world = dataclasses.replace(sim.world, partitions=parts)
    for hour in range(1, 4):  # rebuild after rebuild: never tainted before 2100
        sim.add_want(f"again{hour}", ["raw/1"])
        sim.advance(3600)
        _settle(sim)  # not run_until_quiet: it would jump to the next wakeup, in 2100
        assert sim.world.partitions["raw/1"].state.STATE == "Live"
    assert plan(sim.world, sim.now).next_wakeup == forged.requested_at
    sim.now = forged.requested_at
    sim.plan()
    assert sim.world.partitions["raw/1"].state.STATE == "Tainted"
    sim.add_want("after", ["raw/1"])
    sim.advance(1)
    sim.run_until_quiet()
    assert sim.world.partitions["raw/1"].state.STATE == "Live"
    assert sum(e.to_state == "Tainted" for e in sim.log) == 1


def test_a_want_claiming_someone_elses_run_cannot_fail_it() -> None:
    script = Script(hold=["top/1"])
    defs = {"top": jd("top", "top/{d}", ["mid/{d}"]), "mid": jd("mid", "mid/{d}")}
    sim = Simulator(World(job_definitions=defs), T0, script)
    sim.add_want("victim", ["top/1"])
    sim.run_until_quiet()
    (victim,) = [n for n, r in sim.world.job_runs.items() if r.job_definition == "top"]
    # A user writes a Want that names the victim's run as its source, for the run's own
    # output: honoured, it would make a cycle top/1 -> top/1 and fail the run.
    forged = Want("forged", (PartitionRef("top/1"),), sim.now, source_job_run=victim)
    sim.world = dataclasses.replace(sim.world, wants={**sim.world.wants, "forged": forged})
    result = sim.plan()
    assert not any(isinstance(a, TransitionJobRun) and a.name == victim for a in result.actions)
    reason, message = _ready(result.actions, "forged")
    assert reason == "UnverifiedSource" and victim in message
    script.hold.clear()
    sim.run_until_quiet()
    assert sim.world.job_runs[victim].state.STATE == "Succeeded"
    assert sim.world.wants["victim"].state.STATE == "Successful"
    assert sim.world.wants["forged"].state.STATE == "Successful"  # top/1 is Live


def test_budget_planning_stays_fast() -> None:
    """Not a timing test: the budget bounds the work, so a generous bound cannot flake."""
    world = World(
        job_definitions={"b": jd("b", "b/{x}", ["b/{x}0", "b/{x}1"])},
        wants={f"w{i}": Want(f"w{i}", (PartitionRef(f"b/{i}"),), T0) for i in range(3)},
    )
    started = datetime.now(UTC)
    result = plan(world, T0)
    assert datetime.now(UTC) - started < timedelta(seconds=60)
    failed = [a for a in result.actions if isinstance(a, TransitionWant)]
    assert [a.state.STATE for a in failed] == ["Failed"] * 3
