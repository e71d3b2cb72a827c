"""The planner: ``plan(world, now) -> Plan``, a pure, deterministic function.

It looks at every entity of one namespace and decides every transition (see
docs/domain.md for the rules in prose). It works on a private mutable copy of the world,
applying its own decisions as it goes, so one plan reaches a fixpoint: applying its
actions and planning again yields nothing until something external changes (a batch Job
finishes, time passes a deadline, a Want or JobDefinition changes).
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import assert_never

from databuild.domain.actions import (
    Action,
    CreateBatchJob,
    CreateJobRun,
    CreatePartition,
    CreateWant,
    DeleteBatchJob,
    FlagSlaBreach,
    RecordWant,
    TransitionJobRun,
    TransitionPartition,
    TransitionWant,
    UpdateWantStatus,
)
from databuild.domain.concurrency import POOL_NOT_FOUND, ConcurrencyPool, pool_not_found
from databuild.domain.events import EntityKind, Event
from databuild.domain.limits import MAX_EVER_MISSING, after
from databuild.domain.priority import QueueKey, inherited_priorities, queue_key
from databuild.domain.refs import (
    OutputPattern,
    PartitionRef,
    PatternError,
    derived_want_name,
    jobrun_name,
    partition_name,
)
from databuild.domain.states import (
    PROBE_NOT_YET_EXIT_CODE,
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
    WantBuilding,
    WantExpired,
    WantFailed,
    WantPending,
    WantState,
    WantSuccessful,
    WantUpstreamBuilding,
    shared_default,
)
from databuild.domain.world import (
    Condition,
    JobDefinition,
    JobOutcome,
    JobRun,
    OutcomeKind,
    Partition,
    Settings,
    TaintRequest,
    Want,
    WantStatus,
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

MAX_BACKOFF_SECONDS = 3600.0
"""Upper bound of the exponential retry backoff."""

_MESSAGE_REFS = 5  # refs named in a message before "and N more"


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions to execute in order, and when to plan again if nothing else happens."""

    actions: tuple[Action, ...]
    next_wakeup: datetime | None = None

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a ref cannot be built now: a Want condition reason and message."""

    reason: str  # NoJobDefinition | AmbiguousJobDefinition | InvalidJobDefinition | ...
    message: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """A ref resolved to exactly one valid JobDefinition."""

    job_definition: JobDefinition
    captures: Mapping[str, str]
    outputs: tuple[PartitionRef, ...]
    inputs: tuple[PartitionRef, ...]


class Resolver:
    """Resolves refs to JobDefinitions, with patterns indexed by their first segment."""

    def __init__(self, job_definitions: Mapping[str, JobDefinition]) -> None:
        self._by_segment: dict[str, list[tuple[JobDefinition, OutputPattern]]] = {}
        self._wildcard: list[tuple[JobDefinition, OutputPattern]] = []
        # Broken JobDefinitions have no compiled patterns: a ref that starts like one of
        # their outputs is blamed on it, so the Want says what to fix.
        self._invalid: list[tuple[JobDefinition, str]] = [
            (jd, text.partition("{")[0])
            for name, jd in sorted(job_definitions.items())
            if jd.error is not None
            for text in jd.outputs
        ]
        for name in sorted(job_definitions):
            jd = job_definitions[name]
            for pattern in jd.patterns:
                head, sep, _ = pattern.literal_prefix.partition("/")
                if sep:
                    self._by_segment.setdefault(head, []).append((jd, pattern))
                else:
                    self._wildcard.append((jd, pattern))
        self._cache: dict[str, Resolution | Blocker] = {}

    def resolve(self, ref: str) -> Resolution | Blocker:
        """The one JobDefinition building ``ref``, or why there is not exactly one."""
        cached = self._cache.get(ref)
        if cached is None:
            cached = self._cache[ref] = self._resolve(ref)
        return cached

    def forget(self, refs: Iterable[str]) -> None:
        """Drop cached resolutions (of a walk that was undone), keeping memory bounded."""
        cache = self._cache
        for ref in refs:
            cache.pop(ref, None)

    def _resolve(self, ref: str) -> Resolution | Blocker:
        head = ref.partition("/")[0]
        found: dict[str, tuple[JobDefinition, dict[str, str]]] = {}
        for candidates in (self._by_segment.get(head, ()), self._wildcard):
            for jd, pattern in candidates:
                if jd.name in found:
                    continue
                captures = pattern.match(ref)
                if captures is not None:
                    found[jd.name] = (jd, captures)
        if not found:
            for jd, prefix in self._invalid:
                if ref.startswith(prefix):
                    return Blocker(
                        "InvalidJobDefinition",
                        f"JobDefinition {jd.name!r} may build {ref!r} but is invalid: {jd.error}",
                    )
            return Blocker(
                "NoJobDefinition", f"no JobDefinition has an output pattern matching {ref!r}"
            )
        if len(found) > 1:
            names = ", ".join(sorted(found))
            return Blocker(
                "AmbiguousJobDefinition",
                f"{ref!r} matches the outputs of several JobDefinitions: {names}; "
                "make exactly one of them match",
            )
        jd, captures = next(iter(found.values()))
        if jd.error is not None:
            return Blocker(
                "InvalidJobDefinition", f"JobDefinition {jd.name!r} (for {ref!r}): {jd.error}"
            )
        try:
            if len(jd.patterns) == 1:
                outputs: tuple[PartitionRef, ...] = (PartitionRef(ref),)
            else:
                outputs = tuple(sorted({p.render(captures) for p in jd.patterns}))
            rendered = [t.render_matched(captures) for t in jd.templates]
            inputs = tuple(dict.fromkeys(rendered)) if len(rendered) > 1 else tuple(rendered)
        except (PatternError, ValueError) as exc:
            return Blocker(
                "InvalidJobDefinition",
                f"JobDefinition {jd.name!r} cannot build {ref!r}: {exc}",
            )
        if not set(outputs).isdisjoint(inputs):
            return Blocker(
                "DependencyCycle",
                f"JobDefinition {jd.name!r} lists an output of its own as input for {ref!r}",
            )
        return Resolution(jd, captures, outputs, inputs)


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
        return _Planning(world, Resolver(world.job_definitions)).run(now)
    finally:
        if paused:
            gc.enable()


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError(f"plan time {now.isoformat()} has no time zone; use an aware datetime")


def _short(refs: Iterable[str]) -> str:
    items = list(refs)
    shown = ", ".join(items[:_MESSAGE_REFS])
    more = len(items) - _MESSAGE_REFS
    return f"{shown} and {more} more" if more > 0 else shown


def _clip(ref: str, limit: int = 80) -> str:
    return ref if len(ref) <= limit else f"{ref[: limit // 2]}...{ref[-limit // 2 :]}"


def _over_budget(budget: str, path: list[str], nxt: str) -> Blocker:
    return Blocker(
        "NeedBudgetExceeded",
        f"resolving the inputs of {path[0]!r} went over the budget of {budget} "
        f"({len(path)} levels deep at {_clip(nxt)!r}); check the JobDefinitions' inputs for a "
        "pattern that feeds itself, or split the Want",
    )


_ACTIVE = (JobRunQueued, JobRunWaitingForUpstream, JobRunRunning)
# Initial states, shared (they are immutable): new entities need no object of their own.
_MISSING = shared_default(PartitionMissing)
_QUEUED = shared_default(JobRunQueued)
_TERMINAL_WANT = (WantSuccessful, WantFailed, WantExpired)


class _Planning:
    """The planner's working state: a mutable copy of the world plus indexes.

    ``plan()`` builds one, runs one full pass and drops it. :class:`Planner` keeps one
    between plans and runs the full pass only when needed, the local pass otherwise.
    Every decision is applied to this state as it is emitted, so it always equals the
    world after the actions so far.
    """

    def __init__(self, world: World, resolver: Resolver) -> None:
        self.defs: Mapping[str, JobDefinition] = world.job_definitions
        self.settings = world.settings
        self.outcomes: dict[tuple[str, int], JobOutcome] = dict(world.outcomes)
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
        self.actions: list[Action] = []
        self.started_here: set[str] = set()
        self.created_here: set[str] = set()  # runs created (and settled) by this pass
        self.created_queued: list[str] = []  # those of them left Queued
        self.touched_refs: set[str] = set()
        self.touched_runs: set[str] = set()
        self.newly_live: list[str] = []
        self.unblocked: set[str] = set()  # refs with nothing blocking upstream (this pass)

    def _begin(self, now: datetime) -> None:
        self.now = now
        self.actions = []
        self.started_here = set()
        self.created_here = set()
        self.created_queued = []
        self.touched_refs = set()
        self.touched_runs = set()
        self.newly_live = []
        self.unblocked = set()

    # --- the full pass --------------------------------------------------------------------

    def run(self, now: datetime) -> Plan:
        """Look at everything."""
        self._begin(now)
        self._record_new_wants()
        self._index()
        self._observe_outcomes()
        self._settle_orphans()
        self._apply_taints()
        self._claim_active()
        while True:
            self._cascade_failures(self._failed_inputs())
            self._fail_wants_on_failed_partitions()
            self._expire_wants()
            if not self._find_needs():
                break
        self._create_runs()
        self._cancel_unneeded()
        # Runs created by this pass were settled when created (nothing went Live since).
        self._settle_waiting(sorted(self.needed_runs - self.created_here))
        self._index_priorities()
        self._index_queue()
        self._start_runs()
        self._ensure_batch_jobs({*self.running, *self.started_here})
        for name in sorted(self.wants):
            self._derive_want(name)
        self._index_deadlines()
        return Plan(tuple(self.actions), self._next_wakeup())

    # --- the local pass -----------------------------------------------------------------

    def run_local(self, now: datetime, dirty_runs: set[str]) -> Plan | None:
        """Plan only around ``dirty_runs`` (new outcomes) and deadlines that came due.

        Returns None, having changed nothing the full pass relies on, when the changes
        need the full pass: a failure for good or a dependency miss (they change what is
        needed), a TTL deadline, or an output conflict waiting for a run to finish.
        """
        if any(b.reason == "OutputConflict" for b in self.blockers.values()):
            return None
        for name in dirty_runs:
            if not self._local_outcome(name, now):
                return None
        due = self._pop_due(self.deadlines, now)
        if any(self._ttl_valid(when, name) for when, name in due):
            return None  # the full pass rebuilds the deadline heap
        if any(self.now < r.requested_at <= now for r in self.taint_requests.values()):
            return None  # a taint request came due: the full pass applies it
        self._begin(now)
        for name in sorted(dirty_runs):
            run = self.runs[name]
            if isinstance(run.state, JobRunRunning):
                outcome = self.outcomes.get((name, run.state.attempt))
                if outcome is not None and outcome.kind is not OutcomeKind.RUNNING:
                    self._apply_outcome(run, run.state, outcome)
        waiting = {
            n for ref in self.newly_live for n in self.needers.get(ref, ()) if n in self.needed_runs
        }
        self._settle_waiting(sorted(waiting))
        self._start_runs()
        self._ensure_batch_jobs(dirty_runs | self.started_here)
        wants = {name for _, name in due if name in self.wants}  # SLA deadlines
        for ref in self.touched_refs:
            wants.update(self.wants_by_ref.get(ref, ()))
        for name in self.touched_runs:
            for ref in self.runs[name].partitions:
                wants.update(self.wants_by_ref.get(ref, ()))
        for name in sorted(wants):
            self._derive_want(name)
        return Plan(tuple(self.actions), self._next_wakeup())

    def _local_outcome(self, name: str, now: datetime) -> bool:
        """Whether the observed outcome of run ``name`` can be handled by the local pass."""
        run = self.runs.get(name)
        if run is None:
            return False
        state = run.state
        if not isinstance(state, JobRunRunning):
            return True  # outcomes of runs that are not Running are ignored
        outcome = self.outcomes.get((name, state.attempt))
        if outcome is None or outcome.kind is OutcomeKind.RUNNING:
            return True
        if outcome.kind is OutcomeKind.SUCCEEDED:
            return (
                all(
                    isinstance(self.wants[w].state, _TERMINAL_WANT)
                    for w in self.wants_by_source.get(name, ())
                    if w in self.wants
                )
                # A taint request dated after the outputs go Live (clocks apart) taints
                # them at once: that needs the full pass, which rebuilds them.
                and not any(
                    (request := self.taint_requests.get(r)) is not None
                    and request.requested_at > now
                    for r in run.partitions
                )
            )
        if outcome.kind is OutcomeKind.FAILED:
            jd = self.defs.get(run.job_definition)
            return jd is not None and state.failed_attempts < jd.retry.limit
        return False

    # --- deadlines ----------------------------------------------------------------------------

    def _want_deadlines(self, want: Want) -> list[tuple[datetime, str]]:
        out: list[tuple[datetime, str]] = []
        if isinstance(want.state, _TERMINAL_WANT):
            return out
        for seconds in (want.ttl_seconds, want.sla_seconds):
            if seconds is not None:
                out.append((after(want.clock_start, seconds), want.name))
        return out

    def _index_deadlines(self) -> None:
        self.deadlines = [d for w in self.wants.values() for d in self._want_deadlines(w)]
        heapq.heapify(self.deadlines)

    def _ttl_valid(self, when: datetime, name: str) -> bool:
        want = self.wants.get(name)
        return (
            want is not None
            and want.ttl_seconds is not None
            and not isinstance(want.state, _TERMINAL_WANT)
            and after(want.clock_start, want.ttl_seconds) == when
        )

    def _deadline_valid(self, when: datetime, name: str) -> bool:
        want = self.wants.get(name)
        return want is not None and (when, name) in self._want_deadlines(want)

    def _retry_valid(self, when: datetime, name: str) -> bool:
        run = self.runs.get(name)
        return (
            run is not None
            and isinstance(run.state, JobRunQueued)
            and run.state.retry_after == when
            and self.active.get(run.partitions[0]) == name
        )

    @staticmethod
    def _pop_due(heap: list[tuple[datetime, str]], now: datetime) -> list[tuple[datetime, str]]:
        due: list[tuple[datetime, str]] = []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap))
        return due

    def _next_wakeup(self) -> datetime | None:
        """The earliest future retry-after, TTL or SLA deadline (stale entries dropped).

        Deadlines at or before now were dealt with by this pass, so they are dropped too.
        """
        found: datetime | None = None
        for heap, valid in (
            (self.retries, self._retry_valid),
            (self.deadlines, self._deadline_valid),
        ):
            while heap and (heap[0][0] <= self.now or not valid(*heap[0])):
                heapq.heappop(heap)
            if heap and (found is None or heap[0][0] < found):
                found = heap[0][0]
        for request in self.taint_requests.values():
            if request.requested_at > self.now and (found is None or request.requested_at < found):
                found = request.requested_at
        return found

    def _record_new_wants(self) -> None:
        for name in sorted(self.wants):
            want = self.wants[name]
            if (
                want.source_job_run is None
                and want.status.observed_generation == 0
                and isinstance(want.state, WantPending)
            ):
                event = Event(
                    self.now,
                    EntityKind.WANT,
                    name,
                    None,
                    "Pending",
                    "Created",
                    {"partitions": _short(want.partitions)},
                )
                self.actions.append(RecordWant(name, event))

    # --- indexes --------------------------------------------------------------------------

    def _index(self) -> None:
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
                self._count_in_pool(jd_name, 1)
        duplicates: list[str] = []
        for name in sorted(self.runs, key=lambda n: (self.runs[n].created_at, n)):
            run = self.runs[name]
            if not isinstance(run.state, _ACTIVE):
                continue
            if any(ref in self.active for ref in run.partitions):
                duplicates.append(name)  # never expected; repaired by cancelling the newer
                continue
            for ref in run.partitions:
                self.active[ref] = name
            self._index_needs(run)
        for name in sorted(self.wants):
            want = self.wants[name]
            if want.source_job_run is not None:
                self.wants_by_source.setdefault(want.source_job_run, []).append(name)
            for ref in want.partitions:
                self.wants_by_ref.setdefault(ref, []).append(name)
        for name in duplicates:
            self._cancel(name, "DuplicateBuild: another JobRun builds the same partition")

    def _index_needs(self, run: JobRun) -> None:
        for ref in self._waits_of(run):
            self.needers.setdefault(ref, []).append(run.name)

    @staticmethod
    def _waits_of(run: JobRun) -> tuple[str, ...]:
        extra = run.state.ever_missing
        return tuple(dict.fromkeys((*run.inputs, *extra))) if extra else run.inputs

    # --- emitting ------------------------------------------------------------------------

    def _set_run(self, name: str, state: JobRunState, event: Event) -> None:
        run = self.runs[name]
        self.actions.append(TransitionJobRun(name, run.state.STATE, state, event))
        self.runs[name] = run.with_state(state)
        self.touched_runs.add(name)
        jd_name = run.job_definition
        if isinstance(run.state, JobRunRunning):
            self.running_total -= 1
            self.running_by_jd[jd_name] -= 1
            self._count_in_pool(jd_name, -1)
        if isinstance(state, JobRunRunning):
            self.running_total += 1
            self.running_by_jd[jd_name] = self.running_by_jd.get(jd_name, 0) + 1
            self._count_in_pool(jd_name, 1)
        elif isinstance(state, JobRunQueued):
            heapq.heappush(self.queue, self._queue_key(run))
            if state.retry_after is not None:
                heapq.heappush(self.retries, (state.retry_after, name))
        if not isinstance(state, _ACTIVE):
            for ref in run.partitions:
                if self.active.get(ref) == name:
                    del self.active[ref]

    def _set_part(self, ref: str, state: PartitionState, event: Event) -> None:
        old = self.parts[ref]
        self.actions.append(
            TransitionPartition(partition_name(ref), PartitionRef(ref), old.STATE, state, event)
        )
        self.parts[ref] = state
        self.touched_refs.add(ref)
        if isinstance(state, PartitionLive):
            self.newly_live.append(ref)

    def _set_want(self, name: str, state: WantState, event: Event) -> None:
        want = self.wants[name]
        self.actions.append(TransitionWant(name, want.state.STATE, state, event))
        self.wants[name] = dataclasses.replace(want, state=state)

    def _ensure_partition(self, ref: PartitionRef) -> PartitionState:
        state = self.parts.get(ref)
        if state is None:
            name = partition_name(ref)
            event = Event(
                self.now, EntityKind.PARTITION, name, None, "Missing", "Created", {"ref": ref}
            )
            self.actions.append(CreatePartition(name, ref, event))
            state = self.parts[ref] = _MISSING
            self.touched_refs.add(ref)
        return state

    # --- A: outcomes of running batch Jobs -------------------------------------------------

    def _observe_outcomes(self) -> None:
        for name in sorted(self.runs):
            run = self.runs[name]
            if not isinstance(run.state, JobRunRunning):
                continue
            outcome = self.outcomes.get((name, run.state.attempt))
            if outcome is None or outcome.kind is OutcomeKind.RUNNING:
                continue
            self._apply_outcome(run, run.state, outcome)

    def _apply_outcome(self, run: JobRun, state: JobRunRunning, outcome: JobOutcome) -> None:
        now = self.now
        if outcome.kind is OutcomeKind.SUCCEEDED:
            self._set_run(run.name, *state.succeed(run.name, at=now))
            self._finish_outputs(run.name)
            return
        if outcome.kind is OutcomeKind.DEPENDENCY_MISS and outcome.missing_partitions:
            missing = tuple(dict.fromkeys(outcome.missing_partitions))
            again = [r for r in missing if r in state.ever_missing or r in run.partitions]
            total = len(set(state.ever_missing) | set(missing))
            if not again and total > MAX_EVER_MISSING:
                message = (
                    f"attempt {state.attempt} reported {len(missing)} missing partitions, "
                    f"{total} over all attempts: more than {MAX_EVER_MISSING}; declare the "
                    "inputs in the JobDefinition or split the job"
                )
                self._set_run(
                    run.name,
                    *state.fail(run.name, at=now, message=message, reason="TooManyMissing"),
                )
                self._finish_outputs(run.name)
                return
            unbuildable = self._unbuildable(missing) if not again else []
            if unbuildable:
                message = (
                    f"attempt {state.attempt} reported {_short(unbuildable)} missing, and no "
                    "JobDefinition has an output pattern matching it: add one, then want "
                    "these partitions again"
                )
                self._set_run(
                    run.name,
                    *state.fail(run.name, at=now, message=message, reason="UnbuildableDependency"),
                )
                self._finish_outputs(run.name)
                return
            if again:
                message = (
                    f"attempt {state.attempt} reported {_short(again)} missing again after it "
                    "was built (or reported its own output): not retrying a dependency miss"
                )
                self._set_run(
                    run.name, *state.fail(run.name, at=now, message=message, reason="RepeatedMiss")
                )
                self._finish_outputs(run.name)
                return
            want_name = derived_want_name(run.name, state.attempt)
            if want_name not in self.wants:
                event = Event(
                    now,
                    EntityKind.WANT,
                    want_name,
                    None,
                    "Pending",
                    "DependencyMiss",
                    {"source": run.name, "partitions": _short(missing)},
                )
                self.actions.append(CreateWant(want_name, missing, run.name, now, event))
                self.wants[want_name] = Want(
                    want_name, missing, created_at=now, source_job_run=run.name
                )
                self.wants_by_source.setdefault(run.name, []).append(want_name)
                for ref in missing:
                    self.wants_by_ref.setdefault(ref, []).append(want_name)
            self._set_run(run.name, *state.dependency_miss(run.name, at=now, missing=missing))
            self._index_needs(self.runs[run.name])
            return
        jd = self.defs.get(run.job_definition)
        if (
            jd is not None
            and jd.probe_interval_seconds is not None
            and outcome.exit_code == PROBE_NOT_YET_EXIT_CODE
        ):
            # A probe's "not yet": look again after the interval, no retry spent; the
            # run is cancelled like any other once no live Want needs it (e.g. its TTL).
            retry_after = now + timedelta(seconds=jd.probe_interval_seconds)
            self._set_run(run.name, *state.not_yet(run.name, at=now, retry_after=retry_after))
            return
        # A plain failure (or a dependency miss naming nothing).
        limit = jd.retry.limit if jd is not None else 0
        code = "" if outcome.exit_code is None else f" (exit code {outcome.exit_code})"
        detail = f": {outcome.message}" if outcome.message else ""
        message = f"attempt {state.attempt} failed{code}{detail}"[:1024]
        if state.failed_attempts < limit and jd is not None:
            backoff = jd.retry.backoff_seconds * (2**state.failed_attempts)
            retry_after = now + timedelta(seconds=min(backoff, MAX_BACKOFF_SECONDS))
            self._set_run(
                run.name, *state.retry(run.name, at=now, retry_after=retry_after, message=message)
            )
            return
        if limit:
            message += f"; {limit} retries spent"
        self._set_run(run.name, *state.fail(run.name, at=now, message=message))
        self._finish_outputs(run.name)

    def _unbuildable(self, refs: Iterable[str]) -> list[str]:
        """The refs no JobDefinition matches, that are neither Live nor being built.

        A dependency miss on one of them would wait for ever; one that an ambiguous or
        broken JobDefinition matches waits instead (fixing the definition helps), with
        the Want's TTL as its end.
        """
        found: list[str] = []
        for ref in refs:
            if ref in self.active or self._is_live(ref):
                continue
            resolved = self.resolver.resolve(ref)
            if isinstance(resolved, Blocker) and resolved.reason == "NoJobDefinition":
                found.append(ref)
        return found

    def _finish_outputs(self, run_name: str) -> None:
        """Move the partitions a run was building to match the run's (terminal) state."""
        run = self.runs[run_name]
        for ref in run.partitions:
            part = self.parts.get(ref)
            if isinstance(part, PartitionBuilding) and part.built_by == run_name:
                self._settle_partition(ref, part, run)

    def _settle_partition(self, ref: str, part: PartitionBuilding, run: JobRun | None) -> None:
        now = self.now
        match run.state if run is not None else None:
            case JobRunSucceeded():
                assert run is not None
                inputs = self._waits_of(run)
                self._set_part(ref, *part.go_live(ref, at=now, inputs=inputs))
            case JobRunFailed(message=message):
                self._set_part(ref, *part.fail(ref, at=now, message=message))
            case JobRunCancelled():
                self._set_part(ref, *part.reset(ref, at=now, reason="BuildCancelled"))
            case None:
                self._set_part(ref, *part.reset(ref, at=now, reason="BuildVanished"))
            case JobRunQueued() | JobRunWaitingForUpstream() | JobRunRunning():
                pass
            case unreachable:
                assert_never(unreachable)

    # --- A2: taints -------------------------------------------------------------------------

    def _taint_due(self, ref: str, live_since: datetime | None) -> bool:
        """Whether a taint request of ``ref`` applies to data Live since ``live_since``.

        A request counts only once the operator's clock has reached its time: one dated
        in the future (a skewed or forged clock) waits for its time, then taints the data
        Live before it once; the rebuild is Live after it, so it is not tainted again.
        """
        request = self.taint_requests.get(ref)
        return (
            request is not None
            and request.requested_at <= self.now
            and (live_since is None or live_since < request.requested_at)
        )

    def _apply_taints(self) -> None:
        """Act on taint requests, taint along lineage, stop runs reading tainted data.

        1. A Live partition with a taint request newer than its ``liveSince`` goes
           Tainted (``TaintRequested``). One rebuilt after the request is left alone.
        2. Every Live partition built from a Tainted one goes Tainted too
           (``UpstreamTainted``), transitively. This looks at every Tainted partition,
           not only the ones tainted now, so a cascade cut short by a crash is finished
           by the next plan; a partition is tainted once (it is no longer Live after).
        3. A Running run that reads a Tainted partition is cancelled (its batch Job
           deleted, ``InputTainted``): what it writes would be built from bad data. The
           need walk then builds its outputs again once the input is rebuilt.

        This runs before any Tainted partition is claimed by a new build (which would
        hide it from step 2), so a crash between any two actions converges.
        """
        for ref in sorted(self.taint_requests):
            part = self.parts.get(ref)
            if isinstance(part, PartitionLive) and self._taint_due(ref, part.live_since):
                request = self.taint_requests[ref]
                self._set_part(
                    ref,
                    *part.taint(
                        ref,
                        at=self.now,
                        message=request.reason[:1024],
                        reason="TaintRequested",
                    ),
                )
        tainted = sorted(r for r, p in self.parts.items() if isinstance(p, PartitionTainted))
        if not tainted:
            return
        dependents: dict[str, list[str]] = {}
        for ref, part in self.parts.items():
            if isinstance(part, PartitionLive):
                for source in part.inputs:
                    dependents.setdefault(source, []).append(ref)
        # (tainted ref, the ref first tainted, its message): messages name the input and
        # the origin's reason, not the whole path.
        queue = deque((r, r, self.parts[r].message) for r in tainted)
        while queue:
            source, origin, cause = queue.popleft()
            for child in sorted(dependents.get(source, ())):
                part = self.parts[child]
                if not isinstance(part, PartitionLive):
                    continue  # tainted already, through another input
                via = "" if origin == source else f" (tainted with {origin})"
                message = f"built from tainted {source}{via}" + (f": {cause}" if cause else "")
                self._set_part(
                    child,
                    *part.taint(
                        child,
                        at=self.now,
                        message=message[:1024],
                        reason="UpstreamTainted",
                        source=source,
                    ),
                )
                queue.append((child, origin, cause))
        for ref in sorted(r for r, p in self.parts.items() if isinstance(p, PartitionTainted)):
            for run_name in list(self.needers.get(ref, ())):
                run = self.runs[run_name]
                if isinstance(run.state, JobRunRunning):
                    self._cancel(
                        run_name,
                        f"input {ref} was tainted while the job ran",
                        event_reason="InputTainted",
                    )

    # --- B: partitions agree with their runs ----------------------------------------------

    def _settle_orphans(self) -> None:
        """Building partitions whose builder is not their active run follow that run."""
        for ref in sorted(self.parts):
            part = self.parts[ref]
            if isinstance(part, PartitionBuilding):
                builder = self.active.get(ref)
                if builder is None or builder != part.built_by:
                    self._settle_partition(ref, part, self.runs.get(part.built_by or ""))

    def _claim_active(self) -> None:
        """Runs whose partitions were not (yet) moved to Building, e.g. after a crash."""
        for ref in sorted(self.active):
            self._claim(PartitionRef(ref), self.active[ref])

    def _claim(self, ref: PartitionRef, run_name: str) -> None:
        part = self._ensure_partition(ref)
        match part:
            case PartitionMissing() | PartitionFailed() | PartitionTainted():
                self._set_part(ref, *part.start_building(ref, at=self.now, job_run=run_name))
            case PartitionBuilding():
                if part.built_by != run_name:
                    other = self.runs.get(part.built_by or "")
                    if other is not None and isinstance(other.state, _ACTIVE):
                        # A stale claim by a run that does not own the ref: take it over.
                        self._set_part(ref, *part.reset(ref, at=self.now, reason="BuildReassigned"))
                    else:
                        self._settle_partition(ref, part, other)
                    self._claim(ref, run_name)
            case PartitionLive():
                pass  # a sibling output already Live stays Live (Live -> Building is no edge)
            case unreachable:
                assert_never(unreachable)

    # --- C: failures propagate downstream -------------------------------------------------

    def _failed_inputs(self) -> list[str]:
        return [
            ref for ref in sorted(self.needers) if isinstance(self.parts.get(ref), PartitionFailed)
        ]

    def _cascade_failures(self, refs: list[str]) -> None:
        """Fail the runs waiting on Failed partitions that failed after the run was decided.

        A failure older than the run is rebuilt instead (the run is a newer need).
        """
        work = list(refs)
        while work:
            ref = work.pop()
            part = self.parts.get(ref)
            if not isinstance(part, PartitionFailed) or part.failed_at is None:
                continue
            for run_name in self.needers.get(ref, ()):
                run = self.runs[run_name]
                if not isinstance(run.state, JobRunQueued | JobRunWaitingForUpstream):
                    continue
                if part.failed_at <= run.created_at:
                    continue
                self._fail_waiting(run_name, f"input {ref} failed: {part.message}"[:1024])
                work.extend(run.partitions)

    def _fail_waiting(self, run_name: str, message: str) -> None:
        run = self.runs[run_name]
        state = run.state
        if isinstance(state, JobRunQueued):
            missing = tuple(r for r in self._waits_of(run) if not self._is_live(r))
            self._set_run(
                run_name, *state.wait_for_upstream(run_name, at=self.now, waiting_for=missing)
            )
            state = self.runs[run_name].state
        if isinstance(state, JobRunWaitingForUpstream):
            self._set_run(run_name, *state.fail(run_name, at=self.now, message=message))
            self._finish_outputs(run_name)

    def _fail_wants_on_failed_partitions(self) -> None:
        for name in sorted(self.wants):
            want = self.wants[name]
            if isinstance(want.state, _TERMINAL_WANT):
                continue
            failed = []
            for ref in want.partitions:
                part = self.parts.get(ref)
                if (
                    isinstance(part, PartitionFailed)
                    and part.failed_at is not None
                    and part.failed_at > want.created_at
                ):
                    failed.append(ref)
            if failed:
                first = self.parts[failed[0]]
                message = f"partition {_short(failed)} failed: {first.message}"[:1024]
                self._set_want(
                    name,
                    *want.state.fail(name, at=self.now, reason="PartitionFailed", message=message),
                )

    def _expire_wants(self) -> None:
        """Wants past their TTL stop being needs (before needs are computed)."""
        for name in sorted(self.wants):
            want = self.wants[name]
            state = want.state
            if want.ttl_seconds is None or isinstance(state, _TERMINAL_WANT):
                continue
            deadline = after(want.clock_start, want.ttl_seconds)
            if self.now < deadline or all(self._is_live(r) for r in want.partitions):
                continue  # not yet; or it is Successful now (success wins)
            self._set_want(
                name,
                *state.expire(
                    name,
                    at=self.now,
                    reason="TTLExpired",
                    message=f"ttlSeconds passed at {deadline.isoformat()}",
                ),
            )

    def _is_live(self, ref: str) -> bool:
        return isinstance(self.parts.get(ref), PartitionLive)

    # --- D: what is needed, cycles --------------------------------------------------------

    def _roots(self) -> list[str]:
        return [
            n
            for n in sorted(self.wants)
            if self.wants[n].source_job_run is None
            and not isinstance(self.wants[n].state, _TERMINAL_WANT)
        ]

    def _edges(self, ref: str) -> tuple[str, ...]:
        """Refs ``ref`` needs before it can be built (empty when Live or blocked)."""
        run_name = self.active.get(ref)
        if run_name is not None:
            run = self.runs[run_name]
            extra: list[str] = []
            reported = run.state.ever_missing
            for want_name in self.wants_by_source.get(run_name, ()):
                want = self.wants[want_name]
                if not isinstance(want.state, _TERMINAL_WANT):
                    # Only what the run reported: a Want claiming this run as its
                    # source cannot add needs to it (and so cannot fail it).
                    extra.extend(r for r in want.partitions if r in reported)
            waits = self._waits_of(run)
            return tuple(dict.fromkeys((*waits, *extra))) if extra else waits
        if self._is_live(ref):
            return ()
        resolved = self.resolver.resolve(ref)
        if isinstance(resolved, Blocker):
            return ()
        return resolved.inputs

    def _find_needs(self) -> bool:
        """Walk the need graph from the live Wants; fail cycles. True if anything failed.

        Each Want's walk is held to the budgets in :class:`Settings` (refs it reaches
        first, depth, and the namespace's total): a Want over one is failed
        (``NeedBudgetExceeded``) and its partial walk undone, so it costs at most its
        budget and nothing of it is built.
        """
        self.needed_refs = []
        self.needed_runs = set()
        self.blockers = {}
        color: dict[str, int] = {}  # 1: on the stack, 2: done
        cycles: list[list[str]] = []
        settings = self.settings
        per_want, max_depth = settings.need_refs_per_want, settings.need_depth_per_want
        room = settings.need_refs_per_namespace
        over: list[tuple[str, Blocker]] = []
        for want_name in self._roots():
            refs_before, cycles_before = len(self.needed_refs), len(cycles)
            colored: list[str] = []
            limit = min(per_want, room)
            exceeded: Blocker | None = None
            for root in self.wants[want_name].partitions:
                if root in color:
                    continue
                stack: list[tuple[str, Iterator[str]]] = [(root, iter(self._edges(root)))]
                path: list[str] = [root]
                color[root] = 1
                colored.append(root)
                while stack:
                    ref, it = stack[-1]
                    nxt = next(it, None)
                    if nxt is None:
                        stack.pop()
                        path.pop()
                        color[ref] = 2
                        self._visit_done(ref)
                        continue
                    seen = color.get(nxt)
                    if seen is None:
                        if len(colored) >= limit or len(path) >= max_depth:
                            if len(path) >= max_depth:
                                budget = f"{max_depth} levels of inputs per Want"
                            elif limit == per_want:
                                budget = f"{per_want} partitions per Want"
                            else:
                                total = settings.need_refs_per_namespace
                                budget = f"{total} partitions per namespace (all Wants)"
                            exceeded = _over_budget(budget, path, nxt)
                            break
                        color[nxt] = 1
                        colored.append(nxt)
                        path.append(nxt)
                        stack.append((nxt, iter(self._edges(nxt))))
                    elif seen == 1:
                        cycles.append([*path[path.index(nxt) :], nxt])
                if exceeded is not None:
                    break
            if exceeded is None:
                room -= len(colored)
                continue
            # Undo the walk: nothing of an over-budget Want is needed (or built).
            for ref in colored:
                del color[ref]
            self.resolver.forget(colored)
            del self.needed_refs[refs_before:]
            del cycles[cycles_before:]
            over.append((want_name, exceeded))
        if over:
            self.needed_runs = {self.active[r] for r in self.needed_refs if r in self.active}
            for want_name, blocker in over:
                state = self.wants[want_name].state
                if isinstance(state, _TERMINAL_WANT):  # pragma: no cover - roots are live
                    continue
                self._set_want(
                    want_name,
                    *state.fail(
                        want_name, at=self.now, reason=blocker.reason, message=blocker.message
                    ),
                )
        if not cycles:
            return False
        return self._fail_cycles(cycles)

    def _visit_done(self, ref: str) -> None:
        self.needed_refs.append(ref)
        run_name = self.active.get(ref)
        if run_name is not None:
            self.needed_runs.add(run_name)
            return
        if self._is_live(ref):
            return
        resolved = self.resolver.resolve(ref)
        if isinstance(resolved, Blocker):
            self.blockers[ref] = resolved
            return
        if self.doomed:
            for dep in resolved.inputs:
                doom = self.doomed.get(dep)
                if doom is not None:
                    self.doomed[ref] = doom
                    return

    def _fail_cycles(self, cycles: list[list[str]]) -> bool:
        changed = False
        for cycle in cycles:
            text = " -> ".join(cycle)
            blocker = Blocker("DependencyCycle", f"dependency cycle: {text}")
            for ref in cycle[:-1]:
                self.doomed.setdefault(ref, blocker)
                run_name = self.active.get(ref)
                if run_name is not None:
                    self._fail_waiting(run_name, blocker.message)
                    changed = True
        # Wants whose closure reaches a doomed ref fail; recompute needs without them.
        reach = self._doom_reach()
        for want_name in self._roots():
            want = self.wants[want_name]
            doom = next((reach[r] for r in want.partitions if r in reach), None)
            if doom is not None and not isinstance(want.state, _TERMINAL_WANT):
                self._set_want(
                    want_name,
                    *want.state.fail(
                        want_name, at=self.now, reason=doom.reason, message=doom.message
                    ),
                )
                changed = True
        return changed

    def _doom_reach(self) -> dict[str, Blocker]:
        """Every needed ref from which a doomed ref (a cycle) is reachable, with its cycle.

        Linear: one walk of the need graph, then a walk back from the doomed refs.
        """
        edges: dict[str, tuple[str, ...]] = {}
        work: list[str] = [r for w in self._roots() for r in self.wants[w].partitions]
        while work:
            ref = work.pop()
            if ref not in edges:
                edges[ref] = self._edges(ref)
                work.extend(edges[ref])
        dependents: dict[str, list[str]] = {}
        for ref, deps in edges.items():
            for dep in deps:
                dependents.setdefault(dep, []).append(ref)
        start = sorted(r for r in edges if r in self.doomed)
        reach = {r: self.doomed[r] for r in start}
        queue = deque(start)
        while queue:
            ref = queue.popleft()
            for parent in sorted(dependents.get(ref, ())):
                if parent not in reach:
                    reach[parent] = reach[ref]
                    queue.append(parent)
        return reach

    # --- D2: create runs for needed refs nobody builds -------------------------------------

    def _create_runs(self) -> None:
        active, parts, doomed, resolve = self.active, self.parts, self.doomed, self.resolver.resolve
        for ref in self.needed_refs:
            if ref in active or isinstance(parts.get(ref), PartitionLive) or ref in doomed:
                continue
            resolved = resolve(ref)
            if isinstance(resolved, Blocker):
                continue
            if not active.keys().isdisjoint(resolved.outputs):
                self.blockers[ref] = Blocker(
                    "OutputConflict",
                    f"another JobRun builds an output of {resolved.job_definition.name!r} "
                    f"for {ref!r}; waiting for it to finish",
                )
                continue
            self._new_run(resolved)

    def _new_run(self, res: Resolution) -> None:
        """Create a run for ``res``, claim its outputs, and settle it at once.

        A new run whose inputs are not all Live moves to WaitingForUpstream right after
        its creation (the same events as ``_settle_waiting`` would emit later in the
        pass: nothing goes Live in between), so it is not looked at twice.
        """
        jd = res.job_definition
        now = self.now
        # Named for the time of the decision, not for how many runs exist now: deleting
        # an old run can never make a new one take its name (and its old batch Jobs).
        decided = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%f")
        name = jobrun_name(jd.name, res.outputs, decided)
        serial = 1
        while name in self.runs:  # a second decision at the very same instant
            serial += 1
            name = jobrun_name(jd.name, res.outputs, f"{decided}#{serial}")
        event = Event(
            now,
            EntityKind.JOB_RUN,
            name,
            None,
            "Queued",
            "Created",
            {"jobDefinition": jd.name, "partitions": _short(res.outputs)},
        )
        captures = dict(res.captures)
        self.actions.append(
            CreateJobRun(name, jd.name, res.outputs, res.inputs, captures, now, event)
        )
        parts = self.parts
        not_live = tuple(r for r in res.inputs if not isinstance(parts.get(r), PartitionLive))
        state: JobRunQueued | JobRunWaitingForUpstream = _QUEUED
        wait: Event | None = None
        if not_live:
            state, wait = _QUEUED.wait_for_upstream(name, at=now, waiting_for=not_live)
        run = JobRun(name, jd.name, res.outputs, res.inputs, now, captures, state)
        self.runs[name] = run
        self.created_here.add(name)
        for ref in res.outputs:
            self.active[ref] = name
        self._index_needs(run)
        self.needed_runs.add(name)
        for ref in res.outputs:
            self._claim(ref, name)
        if wait is not None:
            self.actions.append(TransitionJobRun(name, "Queued", state, wait))
            self.touched_runs.add(name)
        else:
            self.created_queued.append(name)

    # --- E: cancel what no live Want needs ---------------------------------------------------

    def _cancel_unneeded(self) -> None:
        for name in sorted(set(self.active.values()) - self.needed_runs):
            self._cancel(name, "no live Want needs it any more")

    def _cancel(self, name: str, reason: str, event_reason: str = "Cancelled") -> None:
        run = self.runs[name]
        state = run.state
        if not isinstance(state, _ACTIVE):
            return
        if isinstance(state, JobRunRunning):
            self.actions.append(DeleteBatchJob(state.batch_job, name))
            self.outcomes.pop((name, state.attempt), None)
        self._set_run(
            name, *state.cancel(name, at=self.now, reason=reason, event_reason=event_reason)
        )
        self._finish_outputs(name)

    # --- F: waiting <-> queued ----------------------------------------------------------------

    def _settle_waiting(self, names: Iterable[str]) -> None:
        for name in names:
            run = self.runs[name]
            state = run.state
            if not isinstance(state, JobRunQueued | JobRunWaitingForUpstream):
                continue
            waits = self._waits_of(run)
            if isinstance(state, JobRunWaitingForUpstream):
                waits = tuple(dict.fromkeys((*waits, *state.missing_partitions)))
            not_live = tuple(r for r in waits if not self._is_live(r))
            if isinstance(state, JobRunWaitingForUpstream) and not not_live:
                self._set_run(name, *state.inputs_ready(name, at=self.now))
            elif isinstance(state, JobRunQueued) and not_live:
                self._set_run(
                    name, *state.wait_for_upstream(name, at=self.now, waiting_for=not_live)
                )

    # --- G: start queued runs within the limits -------------------------------------------

    def _index_priorities(self) -> None:
        """Each needed run's priority: the highest of the live Wants needing it."""
        wants = [
            (w.priority, w.partitions)
            for w in self.wants.values()
            if not isinstance(w.state, _TERMINAL_WANT)
        ]
        self.priorities = inherited_priorities(wants, self.active.get, self._edges)

    def _queue_key(self, run: JobRun) -> QueueKey:
        return queue_key(self.priorities.get(run.name, 0), run.created_at, run.name)

    def _index_queue(self) -> None:
        """Index the Queued runs (and retry times); note the Running ones."""
        self.queue = []
        self.retries = []
        self.running = []
        # Runs created by this pass are not Running, and the Queued ones were listed.
        for name in self.created_queued:
            run = self.runs[name]
            if isinstance(run.state, JobRunQueued) and self.active.get(run.partitions[0]) == name:
                self.queue.append(self._queue_key(run))
        for name in set(self.active.values()) - self.created_here:
            run = self.runs[name]
            if isinstance(run.state, JobRunRunning):
                self.running.append(name)
            elif isinstance(run.state, JobRunQueued):
                self.queue.append(self._queue_key(run))
                if run.state.retry_after is not None:
                    self.retries.append((run.state.retry_after, name))
        heapq.heapify(self.queue)
        heapq.heapify(self.retries)

    def _start_runs(self) -> None:
        """Start Queued runs, highest priority then oldest first, while the limits allow."""
        limit = self.settings.max_concurrent_runs
        held: list[QueueKey] = []
        seen: set[str] = set()
        while self.queue:
            if limit is not None and self.running_total >= limit:
                break
            entry = heapq.heappop(self.queue)
            name = entry[2]
            run = self.runs.get(name)
            if run is None or name in seen:
                continue
            state = run.state
            if not isinstance(state, JobRunQueued) or self.active.get(run.partitions[0]) != name:
                continue  # stale entry: the run moved on
            seen.add(name)
            jd = self.defs.get(run.job_definition)
            if (
                (state.retry_after is not None and state.retry_after > self.now)
                or jd is None
                or jd.error is not None  # its JobDefinition vanished or broke: wait for a fix
                or (
                    jd.max_concurrent_runs is not None
                    and self.running_by_jd.get(jd.name, 0) >= jd.max_concurrent_runs
                )
                or self._pool_full(jd, run)
            ):
                held.append(entry)
                continue
            started, event = state.start(name, at=self.now)
            priority = self.priorities.get(name, 0)
            if priority:  # the BEL says why it started before older runs
                event = dataclasses.replace(
                    event, details={**event.details, "priority": str(priority)}
                )
            self._set_run(name, started, event)
            self.started_here.add(name)
        for entry in held:
            heapq.heappush(self.queue, entry)

    def _count_in_pool(self, jd_name: str, delta: int) -> None:
        jd = self.defs.get(jd_name)
        pool = jd.concurrency_pool if jd is not None else None
        if pool is not None:
            self.running_by_pool[pool] = self.running_by_pool.get(pool, 0) + delta

    def _pool_full(self, jd: JobDefinition, run: JobRun) -> bool:
        """Whether ``jd``'s pool holds ``run`` back; a missing pool does, and says so."""
        name = jd.concurrency_pool
        if name is None:
            return False
        pool = self.pools.get(name)
        if pool is None:
            blocker = Blocker(POOL_NOT_FOUND, pool_not_found(jd.name, name))
            for ref in run.partitions:
                self.blockers[ref] = blocker
            return True
        return self.running_by_pool.get(name, 0) >= pool.max_concurrent_runs

    def _ensure_batch_jobs(self, names: Iterable[str]) -> None:
        """Every Running run has its batch Job (created just now, or recreated after a crash).

        ``names`` must include every run that may be Running: the full pass passes the
        ones Running when the queue was indexed and those ``_start_runs`` started.
        """
        for name in sorted(names):
            run = self.runs.get(name)
            if run is None:
                continue
            state = run.state
            if not isinstance(state, JobRunRunning):
                continue
            key = (name, state.attempt)
            if name not in self.started_here and key in self.outcomes:
                continue
            jd = self.defs.get(run.job_definition)
            self.actions.append(
                CreateBatchJob(
                    state.batch_job,
                    name,
                    state.attempt,
                    run.job_definition,
                    run.partitions,
                    tuple(PartitionRef(r) for r in self._waits_of(run)),
                    run.captures,
                    jd.active_deadline_seconds if jd is not None else None,
                )
            )
            # It will exist (AlreadyExists counts): do not create it again next time.
            self.outcomes.setdefault(key, JobOutcome(name, state.attempt, OutcomeKind.RUNNING))

    # --- H: Want states, status, deadlines ---------------------------------------------------

    def _derive_want(self, name: str) -> None:
        want = self.wants[name]
        now = self.now
        counts: dict[str, int] = {}
        live = 0
        upstream = building = False
        blocker: Blocker | None = None
        for ref in want.partitions:
            part = self.parts.get(ref)
            state_name = part.STATE if part is not None else "Missing"
            counts[state_name] = counts.get(state_name, 0) + 1
            if isinstance(part, PartitionLive):
                live += 1
                continue
            run_name = self.active.get(ref)
            if run_name is not None:
                run_state = self.runs[run_name].state
                if isinstance(run_state, JobRunWaitingForUpstream):
                    upstream = True
                else:
                    building = True
            if blocker is None:
                blocker = self._blocker_of(ref)
        if want.source_job_run is not None and not isinstance(want.state, _TERMINAL_WANT):
            blocker = self._unverified_source(want) or blocker
        state = want.state
        if not isinstance(state, _TERMINAL_WANT):
            source = want.source_job_run
            source_run = self.runs.get(source) if source is not None else None
            if live == len(want.partitions):
                if isinstance(state, WantPending | WantUpstreamBuilding):
                    self._set_want(name, *state.build(name, at=now))
                    state = self.wants[name].state
                assert isinstance(state, WantBuilding)
                self._set_want(name, *state.succeed(name, at=now))
            elif source is not None and (
                source_run is None or not isinstance(source_run.state, _ACTIVE)
            ):
                ended = "is gone" if source_run is None else f"is {source_run.state.STATE}"
                self._set_want(
                    name,
                    *state.expire(
                        name,
                        at=now,
                        reason="SourceJobRunEnded",
                        message=f"the JobRun {source} that needed these partitions {ended}",
                    ),
                )
            elif upstream and isinstance(state, WantPending | WantBuilding):
                self._set_want(name, *state.wait_for_upstream(name, at=now))
            elif (
                building and not upstream and isinstance(state, WantPending | WantUpstreamBuilding)
            ):
                self._set_want(name, *state.build(name, at=now))
        want = self.wants[name]
        sla_breached = want.status.sla_breached
        if want.sla_seconds is not None and not isinstance(want.state, _TERMINAL_WANT):
            sla = after(want.clock_start, want.sla_seconds)
            if now >= sla and not sla_breached:
                sla_breached = True
                self.actions.append(
                    FlagSlaBreach(name, sla, f"not Successful by its SLA ({sla.isoformat()})")
                )
        conditions = self._conditions(want, blocker)
        status = WantStatus(dict(sorted(counts.items())), conditions, want.generation, sla_breached)
        if status != want.status:
            self.actions.append(
                UpdateWantStatus(
                    name,
                    want.state.STATE,
                    status.counts,
                    conditions,
                    want.generation,
                    sla_breached,
                )
            )
            self.wants[name] = dataclasses.replace(want, status=status)

    def _unverified_source(self, want: Want) -> Blocker | None:
        """Why ``spec.source`` of ``want`` is not honoured, if it is not.

        The operator writes a derived Want only for refs its JobRun reported missing,
        and the JobRun's status (``everMissing``) is written only by the operator: a Want
        naming other refs was not written by it, and adds nothing to that run's needs.
        """
        run = self.runs.get(want.source_job_run or "")
        if run is None or not isinstance(run.state, _ACTIVE):
            return None  # the Want expires (SourceJobRunEnded)
        reported = set(run.state.ever_missing)
        foreign = [r for r in want.partitions if r not in reported]
        if not foreign:
            return None
        return Blocker(
            "UnverifiedSource",
            f"spec.source names JobRun {run.name!r}, which did not report {_short(foreign)} "
            "missing; only the operator sets spec.source: create a Want without it",
        )

    def _blocker_of(self, ref: str) -> Blocker | None:
        """The first reason found upstream of ``ref`` why it cannot progress."""
        if not self.blockers and not self.doomed:
            return None
        seen: set[str] = set()
        work = [ref]
        while work:
            cur = work.pop()
            if cur in seen or cur in self.unblocked:
                continue
            seen.add(cur)
            found = self.blockers.get(cur) or self.doomed.get(cur)
            if found is not None:
                return found
            run_name = self.active.get(cur)
            if run_name is not None and isinstance(
                self.runs[run_name].state, JobRunWaitingForUpstream
            ):
                work.extend(r for r in self._edges(cur) if not self._is_live(r))
        self.unblocked |= seen  # nothing blocks anything upstream of these (this pass)
        return None

    def _conditions(self, want: Want, blocker: Blocker | None) -> tuple[Condition, ...]:
        state = want.state
        if isinstance(state, WantSuccessful):
            ready = ("True", "Successful", "every partition is Live")
        elif isinstance(state, WantFailed | WantExpired):
            ready = ("False", state.reason or state.STATE, state.message)
        elif blocker is not None:
            ready = ("False", blocker.reason, blocker.message)
        else:
            ready = ("False", state.STATE, f"the Want is {state.STATE}")
        wanted: list[tuple[str, str, str, str]] = [("Ready", *ready)]
        # kstatus (Flux, kubectl wait tools): Stalled=True means "will not get there
        # without someone acting", which holds for a blocked Want and for a Failed or
        # Expired one alike; without it a failed Want reads as in progress.
        if isinstance(state, WantFailed | WantExpired):
            wanted.append(("Stalled", "True", *ready[1:]))
        elif blocker is not None and not isinstance(state, _TERMINAL_WANT):
            wanted.append(("Stalled", "True", blocker.reason, blocker.message))
        old = {c.type: c for c in want.status.conditions}
        out: list[Condition] = []
        for ctype, status, reason, message in wanted:
            prev = old.get(ctype)
            since = prev.last_transition_time if prev and prev.status == status else self.now
            out.append(Condition(ctype, status, reason, message, since))
        return tuple(out)


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
        self._state = _Planning(world, Resolver(world.job_definitions))
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
                result = self._state.run_local(now, self._dirty_runs)
            if result is None:
                self.full_passes += 1
                result = self._state.run(now)
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
        if name in self._state.defs:
            self._set_defs({n: d for n, d in self._state.defs.items() if n != name})

    def _set_defs(self, defs: Mapping[str, JobDefinition]) -> None:
        self._state.defs = defs
        self._state.resolver = Resolver(defs)
        self._full = True

    def observe_job_run(self, run: JobRun) -> None:
        """A JobRun as read from the API; anything but an echo triggers the full pass."""
        if self._state.runs.get(run.name) != run:
            self._state.runs[run.name] = run
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
