"""The planner says whether each JobDefinition is usable, once per generation and verdict."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from databuild.domain import (
    JobDefinition,
    JobDefinitionStatus,
    Planner,
    UpdateJobDefinitionStatus,
    Want,
    World,
    plan,
)
from databuild.domain.simulation import apply_actions

T0 = datetime(2025, 1, 1, tzinfo=UTC)
GOOD = JobDefinition("good", ("good/{d}",))
BAD = JobDefinition("bad", ("bad/{d}",), ("raw/{nope}",))


def _reports(world: World, now: datetime = T0) -> dict[str, UpdateJobDefinitionStatus]:
    return {a.name: a for a in plan(world, now) if isinstance(a, UpdateJobDefinitionStatus)}


def _world(*statuses: tuple[JobDefinition, JobDefinitionStatus]) -> World:
    return World(
        job_definitions={jd.name: jd for jd, _ in statuses},
        job_definition_statuses={jd.name: status for jd, status in statuses},
        wants={"w": Want("w", ("good/1",), created_at=T0)},
    )


def test_each_definition_gets_its_verdict_once() -> None:
    world = _world((GOOD, JobDefinitionStatus(3)), (BAD, JobDefinitionStatus(1)))
    reports = _reports(world)
    good, bad = reports["good"], reports["bad"]
    assert [(c.type, c.status, c.reason) for c in good.conditions] == [("Ready", "True", "Valid")]
    assert good.observed_generation == 3 and good.warning is None
    assert [(c.type, c.status) for c in bad.conditions] == [("Ready", "False"), ("Stalled", "True")]
    assert bad.conditions[0].reason == "InvalidJobDefinition"
    assert "nope" in bad.conditions[0].message
    assert bad.warning is not None and bad.warning[0] == "InvalidJobDefinition"
    # Applied, the statuses say so: the next plan writes nothing about them (the Want
    # next door builds as usual).
    after = apply_actions(world, plan(world, T0))
    assert _reports(after, T0 + timedelta(seconds=1)) == {}


def test_a_new_generation_is_acknowledged_and_an_unchanged_verdict_keeps_its_time() -> None:
    world = _world((GOOD, JobDefinitionStatus(1)))
    world = apply_actions(world, plan(world, T0))
    status = world.job_definition_statuses["good"]
    later = T0 + timedelta(hours=1)
    # The spec changed (generation 2), still valid: written again, Ready keeps its time.
    bumped = dataclasses.replace(
        world, job_definition_statuses={"good": dataclasses.replace(status, generation=2)}
    )
    [report] = _reports(bumped, later).values()
    assert report.observed_generation == 2
    assert report.conditions[0].last_transition_time == T0
    # It broke: the verdict changes, and so does the time.
    broken = dataclasses.replace(
        bumped,
        job_definitions={"good": JobDefinition("good", ("good/{d}",), ("raw/{nope}",))},
    )
    [report] = _reports(broken, later).values()
    assert report.conditions[0].status == "False"
    assert report.conditions[0].last_transition_time == later


def test_only_definitions_with_a_status_are_reported_and_the_planner_agrees() -> None:
    world = _world((BAD, JobDefinitionStatus(1)))
    untracked = dataclasses.replace(world, job_definition_statuses={})
    assert _reports(untracked) == {}
    incremental = Planner(world)
    assert incremental.plan(T0) == plan(world, T0)
    assert _reports(incremental.world(), T0) == {}  # it believes its own write
    # The echo of that write (times as the API stores them) plans nothing more.
    echo = incremental.world().job_definition_statuses["bad"]
    incremental.observe_job_definition_status("bad", echo)
    assert incremental.plan(T0 + timedelta(seconds=1)).actions == ()
