"""The planner's working state: a mutable copy of the world, its indexes, and the
transitions every phase applies to it (each one emits its action as it changes the state).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import assert_never

from databuild.domain.actions import (
    Action,
    CreatePartition,
    DeleteBatchJob,
    TransitionJobRun,
    TransitionPartition,
    TransitionWant,
)
from databuild.domain.concurrency import ConcurrencyPool
from databuild.domain.events import EntityKind, Event
from databuild.domain.planning.resolution import Blocker, Resolver
from databuild.domain.priority import QueueKey, queue_key
from databuild.domain.refs import PartitionRef, partition_name
from databuild.domain.states import (
    JobRunCancelled,
    JobRunFailed,
    JobRunQueued,
    JobRunRunning,
    JobRunState,
    JobRunSucceeded,
    JobRunWaitingForUpstream,
    PartitionBuilding,
    PartitionFailed,
    PartitionLive,
    PartitionMissing,
    PartitionState,
    PartitionTainted,
    WantExpired,
    WantFailed,
    WantState,
    WantSuccessful,
    shared_default,
)
from databuild.domain.world import (
    JobDefinition,
    JobDefinitionStatus,
    JobOutcome,
    JobRun,
    OutcomeKind,
    TaintRequest,
    Want,
    World,
)

__all__ = ["ACTIVE", "MISSING", "QUEUED", "TERMINAL_WANT", "PlanningState", "add_refused"]


def add_refused(outcomes: dict[tuple[str, int], JobOutcome], run: JobRun) -> bool:
    """Count the attempt whose batch Job could not be created (as the run's status
    records it) as failed; whether that changed ``outcomes``.

    It replaces the planner's own "being created" placeholder (or nothing); a finished
    outcome read from a Job of that attempt would win, though none can exist.
    """
    refused = run.refused_outcome()
    if refused is None:
        return False
    seen = outcomes.get((run.name, refused.attempt))
    if seen is not None and seen.kind is not OutcomeKind.RUNNING:
        return False
    if seen == refused:
        return False
    outcomes[run.name, refused.attempt] = refused
    return True


ACTIVE = (JobRunQueued, JobRunWaitingForUpstream, JobRunRunning)
# Initial states, shared (they are immutable): new entities need no object of their own.
MISSING = shared_default(PartitionMissing)
QUEUED = shared_default(JobRunQueued)
TERMINAL_WANT = (WantSuccessful, WantFailed, WantExpired)


class PlanningState:
    """The planner's working state: a mutable copy of the world plus indexes.

    ``plan()`` builds one, runs one full pass and drops it; :class:`~databuild.domain.Planner`
    keeps one between plans. Every decision is applied to this state as it is emitted,
    so it always equals the world after the actions so far.
    """

    def __init__(self, world: World, resolver: Resolver) -> None:
        self.defs: Mapping[str, JobDefinition] = world.job_definitions
        self.settings = world.settings
        self.outcomes: dict[tuple[str, int], JobOutcome] = dict(world.outcomes)
        for run in world.job_runs.values():
            add_refused(self.outcomes, run)
        self.resolver = resolver
        self.parts: dict[str, PartitionState] = {r: p.state for r, p in world.partitions.items()}
        self.taint_requests: dict[str, TaintRequest] = {
            r: p.taint_request for r, p in world.partitions.items() if p.taint_request is not None
        }
        self.runs: dict[str, JobRun] = dict(world.job_runs)
        self.wants: dict[str, Want] = {n: w for n, w in world.wants.items() if not w.deleted}
        # Indexes, rebuilt by every full pass and kept up to date by every transition.
        self.active: dict[str, str] = {}  # output ref -> its non-terminal run (invariant 1)
        self.wants_by_source: dict[str, list[str]] = {}
        self.wants_by_ref: dict[str, list[str]] = {}
        self.needers: dict[str, list[str]] = {}  # input ref -> runs waiting on it
        self.running_total = 0
        self.running_by_jd: dict[str, int] = {}
        self.pools: Mapping[str, ConcurrencyPool] = world.concurrency_pools
        self.definition_statuses: dict[str, JobDefinitionStatus] = dict(
            world.job_definition_statuses
        )
        self.running_by_pool: dict[str, int] = {}
        self.queue: list[QueueKey] = []  # heap of Queued runs: highest priority, then oldest
        self.priorities: dict[str, int] = {}  # run -> inherited priority (full pass)
        self.running: list[str] = []  # Running runs when the queue was indexed
        self.retries: list[tuple[datetime, str]] = []  # heap of retry-after times
        self.deadlines: list[tuple[datetime, str]] = []  # heap of Want TTL/SLA deadlines
        # Results of the last full pass's walk of the need graph.
        self.blockers: dict[str, Blocker] = {}
        self.doomed: dict[str, Blocker] = {}  # refs that can never be built (cycles)
        self.needed_runs: set[str] = set()
        self.needed_refs: list[str] = []  # post-order of the need graph: upstream first
        # Per pass.
        self.now = datetime.min.replace(tzinfo=UTC)
        self.decided = ""  # ``now`` as new runs' names spell it (formatted once per pass)
        self.actions: list[Action] = []
        self.started_here: set[str] = set()
        self.created_here: set[str] = set()  # runs created (and settled) by this pass
        self.claimed_blocked = False  # a new run claimed a ref the walk found blocked
        self.created_queued: list[str] = []  # those of them left Queued
        self.touched_refs: set[str] = set()
        self.touched_runs: set[str] = set()
        self.newly_live: list[str] = []
        self.unblocked: set[str] = set()  # refs with nothing blocking upstream (this pass)

    def begin(self, now: datetime) -> None:
        """Start a pass at ``now``: no actions yet, nothing touched."""
        self.now = now
        self.decided = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
        self.actions = []
        self.started_here = set()
        self.created_here = set()
        self.created_queued = []
        self.touched_refs = set()
        self.touched_runs = set()
        self.newly_live = []
        self.unblocked = set()

    def is_live(self, ref: str) -> bool:
        """Whether ``ref`` is Live now."""
        return isinstance(self.parts.get(ref), PartitionLive)

    @staticmethod
    def waits_of(run: JobRun) -> tuple[str, ...]:
        """What ``run`` reads: its inputs, then every ref it ever reported missing."""
        extra = run.state.ever_missing
        return tuple(dict.fromkeys((*run.inputs, *extra))) if extra else run.inputs

    def index_needs(self, run: JobRun) -> None:
        """Note ``run`` as a needer of every ref it reads."""
        for ref in self.waits_of(run):
            self.needers.setdefault(ref, []).append(run.name)

    def index(self) -> None:
        """Rebuild the indexes from the runs and Wants (a full pass starts with it); a
        duplicate build found on the way is cancelled."""
        self.active = {}
        self.wants_by_source = {}
        self.wants_by_ref = {}
        self.needers = {}
        self.doomed = {}
        self.running_total = 0
        self.running_by_jd = {}
        self.running_by_pool = {}
        for run in self.runs.values():
            if isinstance(run.state, JobRunRunning):
                self.running_total += 1
                jd_name = run.job_definition
                self.running_by_jd[jd_name] = self.running_by_jd.get(jd_name, 0) + 1
                self.count_in_pool(jd_name, 1)
        duplicates: list[str] = []
        for name in sorted(self.runs, key=lambda n: (self.runs[n].created_at, n)):
            run = self.runs[name]
            if not isinstance(run.state, ACTIVE):
                continue
            if any(ref in self.active for ref in run.partitions):
                duplicates.append(name)  # never expected; repaired by cancelling the newer
                continue
            for ref in run.partitions:
                self.active[ref] = name
            self.index_needs(run)
        for name in sorted(self.wants):
            want = self.wants[name]
            if want.source_job_run is not None:
                self.wants_by_source.setdefault(want.source_job_run, []).append(name)
            for ref in want.partitions:
                self.wants_by_ref.setdefault(ref, []).append(name)
        for name in duplicates:
            self.cancel(name, "DuplicateBuild: another JobRun builds the same partition")

    def queue_entry(self, run: JobRun) -> QueueKey:
        """``run``'s place in the queue: highest priority, then oldest, then by name."""
        return queue_key(self.priorities.get(run.name, 0), run.created_at, run.name)

    def count_in_pool(self, jd_name: str, delta: int) -> None:
        """Count a run of ``jd_name`` starting (+1) or stopping (-1) in its pool."""
        jd = self.defs.get(jd_name)
        pool = jd.concurrency_pool if jd is not None else None
        if pool is not None:
            self.running_by_pool[pool] = self.running_by_pool.get(pool, 0) + delta

    def set_run(self, name: str, state: JobRunState, event: Event) -> None:
        """Move run ``name`` to ``state`` (its action, and every index that follows it)."""
        run = self.runs[name]
        self.actions.append(TransitionJobRun(name, run.state.STATE, state, event))
        self.runs[name] = run.with_state(state)
        self.touched_runs.add(name)
        jd_name = run.job_definition
        if isinstance(run.state, JobRunRunning):
            self.running_total -= 1
            self.running_by_jd[jd_name] -= 1
            self.count_in_pool(jd_name, -1)
        if isinstance(state, JobRunRunning):
            self.running_total += 1
            self.running_by_jd[jd_name] = self.running_by_jd.get(jd_name, 0) + 1
            self.count_in_pool(jd_name, 1)
        elif isinstance(state, JobRunQueued):
            heapq.heappush(self.queue, self.queue_entry(run))
            if state.retry_after is not None:
                heapq.heappush(self.retries, (state.retry_after, name))
        if not isinstance(state, ACTIVE):
            for ref in run.partitions:
                if self.active.get(ref) == name:
                    del self.active[ref]

    def set_part(self, ref: str, state: PartitionState, event: Event) -> None:
        """Move the partition of ``ref`` to ``state``."""
        old = self.parts[ref]
        self.actions.append(
            TransitionPartition(partition_name(ref), PartitionRef(ref), old.STATE, state, event)
        )
        self.parts[ref] = state
        self.touched_refs.add(ref)
        if isinstance(state, PartitionLive):
            self.newly_live.append(ref)

    def set_want(self, name: str, state: WantState, event: Event) -> None:
        """Move Want ``name`` to ``state``."""
        want = self.wants[name]
        self.actions.append(TransitionWant(name, want.state.STATE, state, event))
        self.wants[name] = dataclasses.replace(want, state=state)

    def ensure_partition(self, ref: PartitionRef) -> PartitionState:
        """The state of ``ref``'s partition, created Missing if it has none yet."""
        state = self.parts.get(ref)
        if state is None:
            name = partition_name(ref)
            event = Event(
                self.now, EntityKind.PARTITION, name, None, "Missing", "Created", {"ref": ref}
            )
            self.actions.append(CreatePartition(name, ref, event))
            state = self.parts[ref] = MISSING
            self.touched_refs.add(ref)
        return state

    def claim(self, ref: PartitionRef, run_name: str) -> None:
        """Make ``ref``'s partition Building by ``run_name`` (settling a stale claim first)."""
        part = self.ensure_partition(ref)
        match part:
            case PartitionMissing() | PartitionFailed() | PartitionTainted():
                self.set_part(ref, *part.start_building(ref, at=self.now, job_run=run_name))
            case PartitionBuilding():
                if part.built_by != run_name:
                    other = self.runs.get(part.built_by or "")
                    if other is not None and isinstance(other.state, ACTIVE):
                        # A stale claim by a run that does not own the ref: take it over.
                        self.set_part(ref, *part.reset(ref, at=self.now, reason="BuildReassigned"))
                    else:
                        self.settle_partition(ref, part, other)
                    self.claim(ref, run_name)
            case PartitionLive():
                pass  # a sibling output already Live stays Live (Live -> Building is no edge)
            case unreachable:
                assert_never(unreachable)

    def finish_outputs(self, run_name: str) -> None:
        """Move the partitions a run was building to match the run's (terminal) state."""
        run = self.runs[run_name]
        for ref in run.partitions:
            part = self.parts.get(ref)
            if isinstance(part, PartitionBuilding) and part.built_by == run_name:
                self.settle_partition(ref, part, run)

    def settle_partition(self, ref: str, part: PartitionBuilding, run: JobRun | None) -> None:
        """Move a Building partition to match its (ended or vanished) builder ``run``."""
        now = self.now
        match run.state if run is not None else None:
            case JobRunSucceeded():
                assert run is not None
                inputs = self.waits_of(run)
                self.set_part(ref, *part.go_live(ref, at=now, inputs=inputs))
            case JobRunFailed(message=message):
                self.set_part(ref, *part.fail(ref, at=now, message=message))
            case JobRunCancelled():
                self.set_part(ref, *part.reset(ref, at=now, reason="BuildCancelled"))
            case None:
                self.set_part(ref, *part.reset(ref, at=now, reason="BuildVanished"))
            case JobRunQueued() | JobRunWaitingForUpstream() | JobRunRunning():
                pass
            case unreachable:
                assert_never(unreachable)

    def cancel(self, name: str, reason: str, event_reason: str = "Cancelled") -> None:
        """Cancel run ``name`` if active (its batch Job deleted first), freeing its outputs."""
        run = self.runs[name]
        state = run.state
        if not isinstance(state, ACTIVE):
            return
        if isinstance(state, JobRunRunning):
            self.actions.append(DeleteBatchJob(state.batch_job, name))
            self.outcomes.pop((name, state.attempt), None)
        self.set_run(
            name, *state.cancel(name, at=self.now, reason=reason, event_reason=event_reason)
        )
        self.finish_outputs(name)

    def fail_waiting(self, run_name: str, message: str) -> None:
        run = self.runs[run_name]
        state = run.state
        if isinstance(state, JobRunQueued):
            missing = tuple(r for r in self.waits_of(run) if not self.is_live(r))
            self.set_run(
                run_name, *state.wait_for_upstream(run_name, at=self.now, waiting_for=missing)
            )
            state = self.runs[run_name].state
        if isinstance(state, JobRunWaitingForUpstream):
            self.set_run(run_name, *state.fail(run_name, at=self.now, message=message))
            self.finish_outputs(run_name)
