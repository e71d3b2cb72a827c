"""The planner: ``plan(world, now) -> Plan``, a pure, deterministic function.

It looks at every entity of one namespace and decides every transition (see
docs/domain.md for the rules in prose). It works on a private mutable copy of the world,
applying its own decisions as it goes, so one plan reaches a fixpoint: applying its
actions and planning again yields nothing until something external changes (a batch Job
finishes, time passes a deadline, a Want or JobDefinition changes).

The phases live in :mod:`databuild.domain.planning`, one module each: ``state`` (the
working set and the transitions every phase applies), ``resolution``, ``outcomes``,
``taints``, ``needs``, ``runs``, ``wants``, ``definitions`` and ``deadlines``;
``passes`` holds the two drivers over them, the full pass (:func:`plan`) and the local
pass of the incremental :class:`Planner` here.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Mapping
from datetime import datetime

from databuild.domain.concurrency import ConcurrencyPool
from databuild.domain.planning.outcomes import MAX_BACKOFF_SECONDS
from databuild.domain.planning.passes import Plan, full_pass, local_pass
from databuild.domain.planning.resolution import Blocker, Resolution, Resolver
from databuild.domain.planning.state import PlanningState, add_refused
from databuild.domain.refs import PartitionRef
from databuild.domain.world import (
    JobDefinition,
    JobDefinitionStatus,
    JobOutcome,
    JobRun,
    Partition,
    Settings,
    Want,
    World,
)

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "Blocker",
    "Plan",
    "Planner",
    "Resolution",
    "Resolver",
    "plan",
]


def plan(world: World, now: datetime) -> Plan:
    """Decide what the operator must do now. Pure and deterministic.

    ``now`` must be timezone-aware (like every time in the world).
    """
    _check_aware(now)
    # A plan allocates many small objects and frees none of them until it returns:
    # pausing the cyclic collector avoids repeated full scans of a big world.
    paused = gc.isenabled()
    gc.disable()
    try:
        return full_pass(PlanningState(world, Resolver(world.job_definitions)), now)
    finally:
        if paused:
            gc.enable()


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError(f"plan time {now.isoformat()} has no time zone; use an aware datetime")


class Planner:
    """Incremental planning: keeps the world and its indexes between plans.

    Feed it what the operator observes (``observe_*`` / ``forget_*``), call
    :meth:`plan`, execute the actions. It assumes its actions get applied (their
    echoes from the API are then no-ops); after a failed or partial execution build
    a new Planner from the world read back from the API.

    A new batch Job outcome (success, or a failure with retries left) and deadlines
    coming due are planned locally, touching only the runs, partitions and Wants
    involved. Anything else (a Want or JobDefinition change, a failure for good, a
    dependency miss, a TTL, an unexpected status) runs the full pass, which gives the
    same result as :func:`plan` on the same world.
    """

    def __init__(self, world: World) -> None:
        self._state = PlanningState(world, Resolver(world.job_definitions))
        self._full = True
        self._dirty_runs: set[str] = set()
        self.full_passes = 0
        """How many plans needed the full pass (for metrics and tests)."""

    def plan(self, now: datetime) -> Plan:
        """What the operator must do now; same result as ``plan(self.world(), now)``."""
        _check_aware(now)
        paused = gc.isenabled()
        gc.disable()
        try:
            result = None
            if not self._full:
                result = local_pass(self._state, now, self._dirty_runs)
            if result is None:
                self.full_passes += 1
                result = full_pass(self._state, now)
            self._full = False
            self._dirty_runs = set()
            return result
        finally:
            if paused:
                gc.enable()

    def world(self) -> World:
        """The world as the planner believes it is (after its own actions)."""
        state = self._state
        return World(
            job_definitions=dict(state.defs),
            wants=dict(state.wants),
            partitions={
                r: Partition(PartitionRef(r), p, state.taint_requests.get(r))
                for r, p in state.parts.items()
            },
            job_runs=dict(state.runs),
            outcomes=dict(state.outcomes),
            settings=state.settings,
            concurrency_pools=dict(state.pools),
            job_definition_statuses=dict(state.definition_statuses),
        )

    # --- observations ---------------------------------------------------------------------

    def observe_outcome(self, outcome: JobOutcome) -> None:
        """A batch Job was seen (created, running, finished)."""
        key = (outcome.job_run, outcome.attempt)
        if self._state.outcomes.get(key) != outcome:
            self._state.outcomes[key] = outcome
            self._dirty_runs.add(outcome.job_run)

    def forget_outcome(self, job_run: str, attempt: int) -> None:
        """A batch Job is gone (deleted, or garbage-collected after its retention)."""
        if self._state.outcomes.pop((job_run, attempt), None) is not None:
            self._dirty_runs.add(job_run)

    def observe_want(self, want: Want) -> None:
        """A Want was created or changed; an echo of the planner's own write is a no-op."""
        if want.deleted:
            self.forget_want(want.name)
            return
        old = self._state.wants.get(want.name)
        if old is not None and dataclasses.replace(want, status=old.status) == old:
            return  # only its derived status differs: ours is newer or equal
        self._state.wants[want.name] = want
        self._full = True

    def forget_want(self, name: str) -> None:
        """A Want was deleted (or is being deleted)."""
        if self._state.wants.pop(name, None) is not None:
            self._full = True

    def observe_job_definition(self, definition: JobDefinition) -> None:
        """A JobDefinition was created or changed."""
        if self._state.defs.get(definition.name) != definition:
            defs = dict(self._state.defs)
            defs[definition.name] = definition
            self._set_defs(defs)

    def forget_job_definition(self, name: str) -> None:
        """A JobDefinition was deleted."""
        self._state.definition_statuses.pop(name, None)
        if name in self._state.defs:
            self._set_defs({n: d for n, d in self._state.defs.items() if n != name})

    def observe_job_definition_status(self, name: str, status: JobDefinitionStatus) -> None:
        """A JobDefinition's status (and generation) as read from the API; an echo of
        the planner's own write (times as the API stores them) is a no-op."""
        old = self._state.definition_statuses.get(name)
        if old is None or _status_key(old) != _status_key(status):
            self._state.definition_statuses[name] = status
            self._full = True

    def _set_defs(self, defs: Mapping[str, JobDefinition]) -> None:
        self._state.defs = defs
        self._state.resolver = Resolver(defs)
        self._full = True

    def observe_job_run(self, run: JobRun) -> None:
        """A JobRun as read from the API; anything but an echo triggers the full pass."""
        if self._state.runs.get(run.name) != run:
            self._state.runs[run.name] = run
            if add_refused(self._state.outcomes, run):
                self._dirty_runs.add(run.name)
            self._full = True

    def observe_partition(self, partition: Partition) -> None:
        """A Partition as read from the API (e.g. with a user's taint request)."""
        state = self._state
        ref = partition.ref
        if state.parts.get(ref) != partition.state:
            state.parts[ref] = partition.state
            self._full = True
        if state.taint_requests.get(ref) != partition.taint_request:
            if partition.taint_request is None:
                del state.taint_requests[ref]
            else:
                state.taint_requests[ref] = partition.taint_request
            self._full = True

    def observe_concurrency_pools(self, pools: Mapping[str, ConcurrencyPool]) -> None:
        """The namespace's ConcurrencyPools changed (created, resized, deleted)."""
        if dict(pools) != dict(self._state.pools):
            self._state.pools = dict(pools)
            self._full = True

    def observe_settings(self, settings: Settings) -> None:
        """Operator settings changed."""
        if settings != self._state.settings:
            self._state.settings = settings
            self._full = True


def _status_key(status: JobDefinitionStatus) -> tuple[object, ...]:
    conditions = tuple((c.type, c.status, c.reason, c.message) for c in status.conditions)
    return (status.generation, status.observed_generation, conditions)
