"""An in-memory namespace: applies plans to a world and plays batch Jobs.

Used by the tests (scenarios, property tests) and the benchmark. It applies actions the
way the operator does against the API: creations are idempotent (AlreadyExists is
ignored), every transition is checked against the state machine tables and its event is
appended to an in-memory Build Event Log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import assert_never

from databuild.domain.actions import (
    Action,
    CreateBatchJob,
    CreateJobRun,
    CreatePartition,
    CreateWant,
    DeleteBatchJob,
    FlagSlaBreach,
    HoldJobRun,
    RecordWant,
    TransitionJobRun,
    TransitionPartition,
    TransitionWant,
    UpdateJobDefinitionStatus,
    UpdateWantStatus,
)
from databuild.domain.events import EntityKind, Event
from databuild.domain.planner import Plan, plan
from databuild.domain.refs import PartitionRef, batch_job_name
from databuild.domain.states import transition
from databuild.domain.world import (
    JobDefinition,
    JobDefinitionStatus,
    JobOutcome,
    JobRun,
    OutcomeKind,
    Partition,
    Want,
    WantStatus,
    World,
)

__all__ = ["JobScript", "Simulator", "apply_actions"]


def apply_actions(world: World, actions: Iterable[Action], log: list[Event] | None = None) -> World:
    """The world after the operator executed ``actions`` in order.

    Raises IllegalTransition if an action is not on an edge, or ValueError when it
    references an entity that does not exist.
    """
    wants = dict(world.wants)
    parts = dict(world.partitions)
    runs = dict(world.job_runs)
    outcomes = dict(world.outcomes)
    definitions = dict(world.job_definition_statuses)
    events = log if log is not None else []
    for action in actions:
        _check_event(action)
        match action:
            case CreatePartition(name=_, ref=ref, event=event):
                if ref not in parts:
                    transition(EntityKind.PARTITION, None, event.to_state, event.name)
                    parts[ref] = Partition(ref)
                    events.append(event)
            case CreateJobRun():
                if action.name not in runs:
                    transition(EntityKind.JOB_RUN, None, action.event.to_state, action.name)
                    runs[action.name] = JobRun(
                        action.name,
                        action.job_definition,
                        action.partitions,
                        action.inputs,
                        action.created_at,
                        dict(action.captures),
                    )
                    events.append(action.event)
            case CreateWant():
                if action.name not in wants:
                    transition(EntityKind.WANT, None, action.event.to_state, action.name)
                    wants[action.name] = Want(
                        action.name,
                        action.partitions,
                        created_at=action.created_at,
                        source_job_run=action.source_job_run,
                    )
                    events.append(action.event)
            case RecordWant():
                transition(EntityKind.WANT, None, action.event.to_state, action.name)
                events.append(action.event)
            case CreateBatchJob():
                if action.job_run not in runs:
                    raise ValueError(f"batch Job for unknown JobRun {action.job_run}")
                key = (action.job_run, action.attempt)
                if key not in outcomes:
                    outcomes[key] = JobOutcome(action.job_run, action.attempt, OutcomeKind.RUNNING)
            case DeleteBatchJob():
                for key in [k for k in outcomes if batch_job_name(*k) == action.name]:
                    del outcomes[key]
            case TransitionPartition():
                old = parts.get(action.ref)
                if old is None:
                    raise ValueError(f"transition of unknown partition {action.ref}")
                transition(EntityKind.PARTITION, old.state.STATE, action.state.STATE, action.name)
                if action.from_state != old.state.STATE:
                    raise ValueError(f"stale transition of {action.ref}")
                parts[action.ref] = dataclasses.replace(old, state=action.state)
                events.append(action.event)
            case TransitionJobRun():
                run = runs.get(action.name)
                if run is None:
                    raise ValueError(f"transition of unknown JobRun {action.name}")
                transition(EntityKind.JOB_RUN, run.state.STATE, action.state.STATE, action.name)
                if action.from_state != run.state.STATE:
                    raise ValueError(f"stale transition of {action.name}")
                runs[action.name] = run.with_state(action.state)
                events.append(action.event)
            case TransitionWant():
                want = wants.get(action.name)
                if want is None:
                    raise ValueError(f"transition of unknown Want {action.name}")
                transition(EntityKind.WANT, want.state.STATE, action.state.STATE, action.name)
                wants[action.name] = dataclasses.replace(want, state=action.state)
                events.append(action.event)
            case UpdateWantStatus():
                want = wants[action.name]
                status = WantStatus(
                    dict(action.counts),
                    action.conditions,
                    action.observed_generation,
                    action.sla_breached,
                )
                wants[action.name] = dataclasses.replace(want, status=status)
            case FlagSlaBreach():
                want = wants[action.name]
                status = dataclasses.replace(want.status, sla_breached=True)
                wants[action.name] = dataclasses.replace(want, status=status)
            case HoldJobRun():
                runs[action.name] = dataclasses.replace(runs[action.name], hold=action.hold)
            case UpdateJobDefinitionStatus():
                old_status = definitions.get(action.name, JobDefinitionStatus())
                definitions[action.name] = dataclasses.replace(
                    old_status,
                    observed_generation=action.observed_generation,
                    conditions=action.conditions,
                )
            case unreachable:
                assert_never(unreachable)
    return dataclasses.replace(
        world,
        wants=wants,
        partitions=parts,
        job_runs=runs,
        outcomes=outcomes,
        job_definition_statuses=definitions,
    )


def _check_event(action: Action) -> None:
    """A transition's event describes exactly that transition (invariant 3)."""
    if isinstance(action, TransitionPartition | TransitionJobRun | TransitionWant):
        event = action.event
        if (event.name, event.from_state, event.to_state) != (
            action.name,
            action.from_state,
            action.state.STATE,
        ):
            raise ValueError(f"event {event} does not describe {action}")


JobScript = Callable[[JobRun, int], JobOutcome | None]
"""Decides the outcome of a running batch Job (run, attempt); None: still running."""


def _always_succeed(run: JobRun, attempt: int) -> JobOutcome:
    return JobOutcome(run.name, attempt, OutcomeKind.SUCCEEDED)


@dataclass
class Simulator:
    """A namespace in memory: plan, apply, let batch Jobs finish, advance the clock."""

    world: World
    now: datetime
    script: JobScript = _always_succeed
    log: list[Event] = field(default_factory=list)
    plans: int = 0
    deleted: set[str] = field(default_factory=set)
    """Names of Wants deleted so far."""

    def add_job_definition(self, jd: JobDefinition) -> None:
        defs = dict(self.world.job_definitions)
        defs[jd.name] = jd
        self.world = dataclasses.replace(self.world, job_definitions=defs)

    def add_want(
        self,
        name: str,
        partitions: Iterable[str],
        *,
        ttl_seconds: float | None = None,
        sla_seconds: float | None = None,
        priority: int = 0,
    ) -> None:
        wants = dict(self.world.wants)
        wants[name] = Want(
            name,
            tuple(PartitionRef(p) for p in partitions),
            created_at=self.now,
            ttl_seconds=ttl_seconds,
            sla_seconds=sla_seconds,
            priority=priority,
        )
        self.world = dataclasses.replace(self.world, wants=wants)

    def delete_want(self, name: str) -> None:
        wants = dict(self.world.wants)
        del wants[name]
        self.deleted.add(name)
        self.world = dataclasses.replace(self.world, wants=wants)

    def plan(self) -> Plan:
        """Plan once and apply every action."""
        result = plan(self.world, self.now)
        self.plans += 1
        self.world = apply_actions(self.world, result.actions, self.log)
        return result

    def finish_jobs(self) -> int:
        """Let the script decide the outcome of every running batch Job; count changes."""
        outcomes = dict(self.world.outcomes)
        changed = 0
        for key, outcome in sorted(self.world.outcomes.items()):
            if outcome.kind is not OutcomeKind.RUNNING:
                continue
            decided = self.script(self.world.job_runs[key[0]], key[1])
            if decided is not None and decided.kind is not OutcomeKind.RUNNING:
                outcomes[key] = decided
                changed += 1
        self.world = dataclasses.replace(self.world, outcomes=outcomes)
        return changed

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def run_until_quiet(self, max_steps: int = 200, step_seconds: float = 1.0) -> int:
        """Plan, finish jobs and advance time until nothing changes and nothing waits.

        Returns the number of steps; raises RuntimeError if it does not settle.
        """
        for step in range(max_steps):
            result = self.plan()
            changed = self.finish_jobs()
            if not result.actions and not changed:
                if result.next_wakeup is None:
                    return step
                self.now = max(self.now + timedelta(seconds=step_seconds), result.next_wakeup)
                continue
            self.advance(step_seconds)
        raise RuntimeError(f"the simulation did not settle in {max_steps} steps")
