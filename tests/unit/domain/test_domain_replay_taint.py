"""Replaying the event log; tainting along lineage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from domain_builders import T0, Script, chain_world, jd

from databuild.domain.events import EntityKind, Event, IllegalTransition
from databuild.domain.planner import plan
from databuild.domain.replay import replay
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.taint import taint
from databuild.domain.world import World


def ev(kind: EntityKind, name: str, source: str | None, target: str) -> Event:
    return Event(T0, kind, name, source, target, "Test")


def test_replay_reproduces_states_from_empty() -> None:
    events = [
        ev(EntityKind.JOB_RUN, "r", None, "Queued"),
        ev(EntityKind.JOB_RUN, "r", "Queued", "Running"),
        ev(EntityKind.WANT, "w", None, "Pending"),
        ev(EntityKind.JOB_RUN, "r", "Running", "Queued"),
        ev(EntityKind.JOB_RUN, "r", "Queued", "Running"),
        ev(EntityKind.JOB_RUN, "r", "Running", "Succeeded"),
        ev(EntityKind.WANT, "w", "Pending", "Building"),
    ]
    assert replay(events) == {
        (EntityKind.JOB_RUN, "r"): "Succeeded",
        (EntityKind.WANT, "w"): "Building",
    }
    assert replay(events[:3])[(EntityKind.JOB_RUN, "r")] == "Running"  # state at time T


@pytest.mark.parametrize(
    "events",
    [
        [ev(EntityKind.JOB_RUN, "r", None, "Running")],  # created in a non-initial state
        [ev(EntityKind.JOB_RUN, "r", "Queued", "Running")],  # never created
        [
            ev(EntityKind.JOB_RUN, "r", None, "Queued"),
            ev(EntityKind.JOB_RUN, "r", "Queued", "Succeeded"),
        ],
        [
            ev(EntityKind.WANT, "w", None, "Pending"),
            ev(EntityKind.WANT, "w", "Building", "Successful"),
        ],
        [
            ev(EntityKind.PARTITION, "p", None, "Missing"),
            ev(EntityKind.PARTITION, "p", None, "Missing"),
            ev(EntityKind.PARTITION, "p", "Missing", "Building"),
            ev(EntityKind.PARTITION, "p", None, "Missing"),
        ],
    ],
)
def test_replay_rejects_events_off_the_edges(events: list[Event]) -> None:
    with pytest.raises(IllegalTransition):
        replay(events)


def test_replay_skips_a_transition_delivered_twice() -> None:
    created = ev(EntityKind.PARTITION, "p", None, "Missing")
    start = ev(EntityKind.PARTITION, "p", "Missing", "Building")
    assert replay([created, created, start, start]) == {(EntityKind.PARTITION, "p"): "Building"}


def test_replay_of_a_simulated_history_matches_the_world() -> None:
    sim = Simulator(chain_world(), T0, Script(fail={"raw/date=2": [1]}))
    sim.add_want("w", ["daily/date=1", "daily/date=2"])
    sim.run_until_quiet()
    replayed = replay(sim.log)
    assert replayed[(EntityKind.WANT, "w")] == "Failed"
    for part in sim.world.partitions.values():
        assert replayed[(EntityKind.PARTITION, part.name)] == part.state.STATE
    assert len(sim.log) == len({id(e) for e in sim.log})


def test_taint_follows_lineage_and_rebuilds_for_a_new_want() -> None:
    sim = Simulator(chain_world(), T0, Script())
    sim.add_want("w", ["daily/date=1", "raw/date=2"])
    sim.run_until_quiet()
    actions = taint(sim.world, "raw/date=1", sim.now, "bad source file")
    assert [a.ref for a in actions] == ["raw/date=1", "clean/date=1", "daily/date=1"]
    assert actions[2].state.message == "built from tainted raw/date=1: bad source file"
    sim.world = apply_actions(sim.world, actions, sim.log)
    assert sim.world.partitions["raw/date=2"].state.STATE == "Live"  # other lineage
    # The Want is Successful (terminal): no rebuild, only its counts change.
    after = plan(sim.world, sim.now).actions
    assert [type(a).__name__ for a in after] == ["UpdateWantStatus"]
    sim.world = apply_actions(sim.world, after, sim.log)
    sim.advance(10)
    sim.add_want("again", ["daily/date=1"])
    sim.run_until_quiet()
    assert sim.world.wants["again"].state.STATE == "Successful"
    assert all(
        sim.world.partitions[r].state.STATE == "Live"
        for r in ("raw/date=1", "clean/date=1", "daily/date=1")
    )
    assert replay(sim.log)[(EntityKind.WANT, "again")] == "Successful"


def test_taint_refuses_what_is_not_live() -> None:
    world = World(job_definitions={"a": jd("a", "a/{d}")})
    with pytest.raises(ValueError, match="no Partition"):
        taint(world, "a/1", T0, "x")
    sim = Simulator(world, T0, Script(hold=["a/1"]))
    sim.add_want("w", ["a/1"])
    sim.plan()
    with pytest.raises(ValueError, match="is Building, not Live"):
        taint(sim.world, "a/1", T0 + timedelta(seconds=1), "x")
