"""Typed state machines of Partition, JobRun and Want.

One frozen dataclass per state. A transition is a method that exists only on the states
allowing it and returns ``(next_state, event)``, so mypy --strict rejects an illegal
transition (``JobRunQueued(...).succeed(...)`` has no such attribute). Every state of one
entity carries the same status fields (the persisted ``status`` of its resource); the
class says which state it is and which transitions are possible.

The transition tables (:data:`PARTITION_EDGES` and friends) are derived from the
methods' return types, so the docs and the runtime checks cannot drift from the classes.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, assert_never

from databuild.domain.events import EntityKind, Event, IllegalTransition
from databuild.domain.refs import batch_job_name, partition_name

__all__ = [
    "INITIAL_STATES",
    "JOBRUN_EDGES",
    "JOBRUN_STATES",
    "PARTITION_EDGES",
    "PARTITION_STATES",
    "TERMINAL_STATES",
    "WANT_EDGES",
    "WANT_STATES",
    "InvalidStatus",
    "JobRunCancelled",
    "JobRunFailed",
    "JobRunQueued",
    "JobRunRunning",
    "JobRunState",
    "JobRunSucceeded",
    "JobRunWaitingForUpstream",
    "PartitionBuilding",
    "PartitionFailed",
    "PartitionLive",
    "PartitionMissing",
    "PartitionState",
    "PartitionTainted",
    "WantBuilding",
    "WantExpired",
    "WantFailed",
    "WantPending",
    "WantState",
    "WantSuccessful",
    "WantUpstreamBuilding",
    "edges",
    "is_terminal",
    "jobrun_status",
    "load_jobrun_state",
    "load_partition_state",
    "load_want_state",
    "partition_status",
    "shared_default",
    "state_name",
    "transition",
    "want_status",
]

_S = TypeVar("_S")

PROBE_NOT_YET_EXIT_CODE = 75
"""A probe's exit code for "the outside data is not there yet" (EX_TEMPFAIL)."""
WAITING_FOR_EXTERNAL_DATA = "WaitingForExternalData"
"""The reason of a probe's "not yet": the run waits, it did not fail."""
_FIELD_NAMES: dict[type, tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]] = {}


_SHARED: dict[type, Any] = {}


def shared_default(cls: type[_S]) -> _S:
    """The one shared instance of state ``cls`` with every field at its default.

    States are immutable values, so the planner gives every new entity this instance
    instead of one of its own; a transition without changes from it returns the target
    state's shared instance.
    """
    found = _SHARED.get(cls)
    if found is None:
        found = _SHARED[cls] = cls()
    return typing.cast(_S, found)


def _details(**items: str) -> dict[str, str]:
    return {k: v for k, v in items.items() if v}


@dataclass(frozen=True, slots=True, kw_only=True)
class _State:
    STATE: ClassVar[str] = ""
    KIND: ClassVar[EntityKind]

    def _to(self, cls: type[_S], **changes: Any) -> _S:
        """This state's fields in state ``cls``, with ``changes`` (the planner's hot path)."""
        if _SHARED.get(type(self)) is self:  # every field at its default
            return cls(**changes) if changes else shared_default(cls)
        copier = _FIELD_NAMES.get(type(self))
        if copier is None:
            names = tuple(f.name for f in dataclasses.fields(self))
            copier = _FIELD_NAMES[type(self)] = (names, operator.attrgetter(*names))
        names, get = copier
        values = dict(zip(names, get(self), strict=True))
        values.update(changes)
        return cls(**values)

    def _event(
        self, name: str, to: str, at: datetime, reason: str, details: dict[str, str]
    ) -> Event:
        # ``details`` is always a dict made for this event (never shared): no copy.
        return Event(at, self.KIND, name, self.STATE, to, reason, details)


# --- Partition -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _PartitionBase(_State):
    """Status fields of a Partition (the same in every state)."""

    KIND: ClassVar[EntityKind] = EntityKind.PARTITION
    built_by: str | None = None
    """The JobRun that built it (Live, Failed) or is building it (Building)."""
    live_since: datetime | None = None
    inputs: tuple[str, ...] = ()
    """Lineage: the input refs it was built from (when Live)."""
    failed_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Buildable(_PartitionBase):
    def start_building(
        self, ref: str, *, at: datetime, job_run: str
    ) -> tuple[PartitionBuilding, Event]:
        """A JobRun was assigned to build it."""
        state = self._to(PartitionBuilding, built_by=job_run, message="", failed_at=None)
        return state, self._event(
            partition_name(ref), "Building", at, "BuildStarted", _details(ref=ref, jobRun=job_run)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionMissing(_Buildable):
    """Not built (or its build was cancelled)."""

    STATE: ClassVar[str] = "Missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionBuilding(_PartitionBase):
    """A non-terminal JobRun (``built_by``) is building it."""

    STATE: ClassVar[str] = "Building"

    def go_live(
        self, ref: str, *, at: datetime, inputs: tuple[str, ...]
    ) -> tuple[PartitionLive, Event]:
        """Its JobRun succeeded."""
        state = self._to(PartitionLive, live_since=at, inputs=inputs, message="")
        return state, self._event(
            partition_name(ref), "Live", at, "Built", _details(ref=ref, jobRun=self.built_by or "")
        )

    def fail(self, ref: str, *, at: datetime, message: str) -> tuple[PartitionFailed, Event]:
        """Its JobRun failed for good."""
        state = self._to(PartitionFailed, failed_at=at, message=message)
        return state, self._event(
            partition_name(ref),
            "Failed",
            at,
            "BuildFailed",
            _details(ref=ref, jobRun=self.built_by or "", message=message),
        )

    def reset(self, ref: str, *, at: datetime, reason: str) -> tuple[PartitionMissing, Event]:
        """Its JobRun was cancelled (or vanished): nothing is building it any more."""
        state = self._to(PartitionMissing, built_by=None, message="")
        return state, self._event(
            partition_name(ref),
            "Missing",
            at,
            reason,
            _details(ref=ref, jobRun=self.built_by or ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionLive(_PartitionBase):
    """Built by the Succeeded JobRun ``built_by``."""

    STATE: ClassVar[str] = "Live"

    def taint(
        self,
        ref: str,
        *,
        at: datetime,
        message: str,
        reason: str = "Tainted",
        source: str = "",
    ) -> tuple[PartitionTainted, Event]:
        """Someone marked it bad (or ``source``, an input it was built from, is bad).

        ``reason`` is the event's: ``TaintRequested`` for a user's request,
        ``UpstreamTainted`` for a partition built from a tainted one.
        """
        state = self._to(PartitionTainted, message=message)
        return state, self._event(
            partition_name(ref),
            "Tainted",
            at,
            reason,
            _details(ref=ref, input=source, message=message),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionFailed(_Buildable):
    """Its last build failed for good (at ``failed_at``); a newer need rebuilds it."""

    STATE: ClassVar[str] = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionTainted(_Buildable):
    """Marked bad; a live need rebuilds it."""

    STATE: ClassVar[str] = "Tainted"


PartitionState = (
    PartitionMissing | PartitionBuilding | PartitionLive | PartitionFailed | PartitionTainted
)


# --- JobRun --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _JobRunBase(_State):
    """Status fields of a JobRun (the same in every state)."""

    KIND: ClassVar[EntityKind] = EntityKind.JOB_RUN
    attempt: int = 0
    """Batch Jobs created so far (the current one when Running); 1 for the first."""
    failed_attempts: int = 0
    """Failed attempts only (dependency misses excluded): the retry budget spent."""
    retry_after: datetime | None = None
    """Queued after a failure: the next batch Job is not created before this time."""
    batch_job: str = ""
    """Name of the batch Job of the current (or last) attempt."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    missing_partitions: tuple[str, ...] = ()
    """Refs the last dependency miss reported (bounded by what the job reports)."""
    ever_missing: tuple[str, ...] = ()
    """Every ref any attempt reported missing (sorted): reporting one again is a failure."""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _CancellableJobRun(_JobRunBase):
    def cancel(
        self, name: str, *, at: datetime, reason: str, event_reason: str = "Cancelled"
    ) -> tuple[JobRunCancelled, Event]:
        """No live Want needs it any more (or, ``InputTainted``, it reads a tainted input).

        ``reason`` is the message; ``event_reason`` the event's CamelCase reason.
        """
        state = self._to(JobRunCancelled, finished_at=at, retry_after=None, message=reason)
        return state, self._event(name, "Cancelled", at, event_reason, _details(message=reason))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunQueued(_CancellableJobRun):
    """Ready to run once its inputs are Live, ``retry_after`` passed and limits allow."""

    STATE: ClassVar[str] = "Queued"

    def wait_for_upstream(
        self, name: str, *, at: datetime, waiting_for: tuple[str, ...]
    ) -> tuple[JobRunWaitingForUpstream, Event]:
        """Some input is not Live."""
        state = self._to(JobRunWaitingForUpstream)
        return state, self._event(
            name,
            "WaitingForUpstream",
            at,
            "WaitingForUpstream",
            _details(waitingFor=_short_list(waiting_for)),
        )

    def start(self, name: str, *, at: datetime) -> tuple[JobRunRunning, Event]:
        """A batch Job is created for attempt ``attempt + 1``."""
        attempt = self.attempt + 1
        job = batch_job_name(name, attempt)
        state = self._to(
            JobRunRunning,
            attempt=attempt,
            batch_job=job,
            retry_after=None,
            started_at=self.started_at or at,
            message="",
        )
        return state, self._event(
            name, "Running", at, "Started", _details(batchJob=job, attempt=str(attempt))
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunWaitingForUpstream(_CancellableJobRun):
    """Some input (static, or reported missing) is not Live yet."""

    STATE: ClassVar[str] = "WaitingForUpstream"

    def inputs_ready(self, name: str, *, at: datetime) -> tuple[JobRunQueued, Event]:
        """All inputs are Live."""
        return self._to(JobRunQueued), self._event(name, "Queued", at, "InputsReady", {})

    def fail(self, name: str, *, at: datetime, message: str) -> tuple[JobRunFailed, Event]:
        """An input failed for good (or the wait is a dependency cycle)."""
        state = self._to(JobRunFailed, finished_at=at, message=message)
        return state, self._event(name, "Failed", at, "UpstreamFailed", _details(message=message))


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunRunning(_CancellableJobRun):
    """Its batch Job ``batch_job`` (attempt ``attempt``) exists."""

    STATE: ClassVar[str] = "Running"

    def succeed(self, name: str, *, at: datetime) -> tuple[JobRunSucceeded, Event]:
        """The batch Job completed."""
        state = self._to(JobRunSucceeded, finished_at=at, message="")
        return state, self._event(
            name,
            "Succeeded",
            at,
            "Succeeded",
            _details(batchJob=self.batch_job, attempt=str(self.attempt)),
        )

    def retry(
        self, name: str, *, at: datetime, retry_after: datetime, message: str
    ) -> tuple[JobRunQueued, Event]:
        """The attempt failed and retries remain: queue again after the backoff."""
        state = self._to(
            JobRunQueued,
            failed_attempts=self.failed_attempts + 1,
            retry_after=retry_after,
            message=message,
        )
        return state, self._event(
            name,
            "Queued",
            at,
            "AttemptFailed",
            _details(
                batchJob=self.batch_job,
                retryAfter=retry_after.astimezone(UTC).isoformat(),
                message=message,
            ),
        )

    def not_yet(
        self, name: str, *, at: datetime, retry_after: datetime
    ) -> tuple[JobRunQueued, Event]:
        """A probe found its outside data not there yet: look again later, no retry spent."""
        message = (
            f"waiting for external data: attempt {self.attempt} found it not there yet; "
            f"looking again at {retry_after.astimezone(UTC).isoformat()}"
        )
        state = self._to(JobRunQueued, retry_after=retry_after, message=message)
        return state, self._event(
            name,
            "Queued",
            at,
            WAITING_FOR_EXTERNAL_DATA,
            _details(batchJob=self.batch_job, retryAfter=retry_after.astimezone(UTC).isoformat()),
        )

    def fail(
        self, name: str, *, at: datetime, message: str, reason: str = "Failed"
    ) -> tuple[JobRunFailed, Event]:
        """The attempt failed and no retries remain (or it repeated a dependency miss)."""
        state = self._to(
            JobRunFailed,
            failed_attempts=self.failed_attempts + 1,
            finished_at=at,
            message=message,
        )
        return state, self._event(
            name, "Failed", at, reason, _details(batchJob=self.batch_job, message=message)
        )

    def dependency_miss(
        self, name: str, *, at: datetime, missing: tuple[str, ...]
    ) -> tuple[JobRunWaitingForUpstream, Event]:
        """The job reported partitions nobody declared; wait for them (no retry spent)."""
        ever = tuple(sorted(set(self.ever_missing) | set(missing)))
        state = self._to(
            JobRunWaitingForUpstream,
            missing_partitions=missing,
            ever_missing=ever,
            message=f"dependency miss: {_short_list(missing)}",
        )
        return state, self._event(
            name,
            "WaitingForUpstream",
            at,
            "DependencyMiss",
            _details(batchJob=self.batch_job, missingPartitions=_short_list(missing)),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunSucceeded(_JobRunBase):
    """Terminal: its outputs are Live."""

    STATE: ClassVar[str] = "Succeeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunFailed(_JobRunBase):
    """Terminal: failed for good (``message`` says why)."""

    STATE: ClassVar[str] = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRunCancelled(_JobRunBase):
    """Terminal: no live Want needed it any more."""

    STATE: ClassVar[str] = "Cancelled"


JobRunState = (
    JobRunQueued
    | JobRunWaitingForUpstream
    | JobRunRunning
    | JobRunSucceeded
    | JobRunFailed
    | JobRunCancelled
)


# --- Want ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _WantBase(_State):
    """The state-carrying status fields of a Want (counts and conditions are derived)."""

    KIND: ClassVar[EntityKind] = EntityKind.WANT
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _OpenWant(_WantBase):
    def fail(
        self, name: str, *, at: datetime, reason: str, message: str
    ) -> tuple[WantFailed, Event]:
        """A partition failed for good, or the wants depend on a cycle."""
        state = WantFailed(reason=reason, message=message)
        return state, self._event(name, "Failed", at, reason, _details(message=message))

    def expire(
        self, name: str, *, at: datetime, reason: str, message: str
    ) -> tuple[WantExpired, Event]:
        """Its TTL passed (or, for a derived Want, the JobRun that needed it ended)."""
        state = WantExpired(reason=reason, message=message)
        return state, self._event(name, "Expired", at, reason, _details(message=message))


@dataclass(frozen=True, slots=True, kw_only=True)
class WantPending(_OpenWant):
    """Nothing builds its partitions yet (maybe waiting for a JobDefinition)."""

    STATE: ClassVar[str] = "Pending"

    def build(self, name: str, *, at: datetime) -> tuple[WantBuilding, Event]:
        """Its partitions are being built."""
        return WantBuilding(), self._event(name, "Building", at, "Building", {})

    def wait_for_upstream(self, name: str, *, at: datetime) -> tuple[WantUpstreamBuilding, Event]:
        """Its partitions' builds wait for upstream partitions."""
        return WantUpstreamBuilding(), self._event(
            name, "UpstreamBuilding", at, "UpstreamBuilding", {}
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WantBuilding(_OpenWant):
    """Its partitions' JobRuns are queued or running."""

    STATE: ClassVar[str] = "Building"

    def wait_for_upstream(self, name: str, *, at: datetime) -> tuple[WantUpstreamBuilding, Event]:
        """Some of its partitions' builds wait for upstream partitions."""
        return WantUpstreamBuilding(), self._event(
            name, "UpstreamBuilding", at, "UpstreamBuilding", {}
        )

    def succeed(self, name: str, *, at: datetime) -> tuple[WantSuccessful, Event]:
        """All its partitions are Live."""
        return WantSuccessful(), self._event(name, "Successful", at, "AllPartitionsLive", {})


@dataclass(frozen=True, slots=True, kw_only=True)
class WantUpstreamBuilding(_OpenWant):
    """Some of its partitions' builds wait for upstream partitions."""

    STATE: ClassVar[str] = "UpstreamBuilding"

    def build(self, name: str, *, at: datetime) -> tuple[WantBuilding, Event]:
        """Upstream is done; its own partitions are being built."""
        return WantBuilding(), self._event(name, "Building", at, "Building", {})


@dataclass(frozen=True, slots=True, kw_only=True)
class WantSuccessful(_WantBase):
    """Terminal: every partition is Live."""

    STATE: ClassVar[str] = "Successful"


@dataclass(frozen=True, slots=True, kw_only=True)
class WantFailed(_WantBase):
    """Terminal: ``reason``/``message`` say why."""

    STATE: ClassVar[str] = "Failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class WantExpired(_WantBase):
    """Terminal: its TTL passed (or its source JobRun ended)."""

    STATE: ClassVar[str] = "Expired"


WantState = (
    WantPending | WantBuilding | WantUpstreamBuilding | WantSuccessful | WantFailed | WantExpired
)


# --- tables derived from the classes --------------------------------------------------------

PARTITION_STATES: tuple[type[_PartitionBase], ...] = (
    PartitionMissing,
    PartitionBuilding,
    PartitionLive,
    PartitionFailed,
    PartitionTainted,
)
JOBRUN_STATES: tuple[type[_JobRunBase], ...] = (
    JobRunQueued,
    JobRunWaitingForUpstream,
    JobRunRunning,
    JobRunSucceeded,
    JobRunFailed,
    JobRunCancelled,
)
WANT_STATES: tuple[type[_WantBase], ...] = (
    WantPending,
    WantBuilding,
    WantUpstreamBuilding,
    WantSuccessful,
    WantFailed,
    WantExpired,
)


def _derive_edges(classes: tuple[type[_State], ...]) -> dict[tuple[str, str], str]:
    """``{(from, to): method}`` read from the transition methods' return annotations."""
    by_class = {cls: cls.STATE for cls in classes}
    found: dict[tuple[str, str], str] = {}
    for cls in classes:
        for attr, member in inspect.getmembers(cls, inspect.isfunction):
            if attr.startswith("_"):
                continue
            ret = typing.get_type_hints(member).get("return")
            args = typing.get_args(ret)
            if len(args) == 2 and args[1] is Event and args[0] in by_class:
                found[(cls.STATE, by_class[args[0]])] = attr
    return dict(sorted(found.items()))


PARTITION_EDGES: Mapping[tuple[str, str], str] = _derive_edges(PARTITION_STATES)
"""Partition transitions: ``(from, to) -> method name``."""
JOBRUN_EDGES: Mapping[tuple[str, str], str] = _derive_edges(JOBRUN_STATES)
"""JobRun transitions: ``(from, to) -> method name``."""
WANT_EDGES: Mapping[tuple[str, str], str] = _derive_edges(WANT_STATES)
"""Want transitions: ``(from, to) -> method name``."""

INITIAL_STATES: Mapping[EntityKind, str] = {
    EntityKind.PARTITION: "Missing",
    EntityKind.JOB_RUN: "Queued",
    EntityKind.WANT: "Pending",
}
"""The state each entity is created in."""

TERMINAL_STATES: Mapping[EntityKind, frozenset[str]] = {
    EntityKind.PARTITION: frozenset(),
    EntityKind.JOB_RUN: frozenset({"Succeeded", "Failed", "Cancelled"}),
    EntityKind.WANT: frozenset({"Successful", "Failed", "Expired"}),
}
"""States with no way out (a Partition has none: it can always be rebuilt or tainted)."""

_STATES_BY_KIND: Mapping[EntityKind, tuple[type[_State], ...]] = {
    EntityKind.PARTITION: PARTITION_STATES,
    EntityKind.JOB_RUN: JOBRUN_STATES,
    EntityKind.WANT: WANT_STATES,
}


def edges(kind: EntityKind) -> Mapping[tuple[str, str], str]:
    """The transition table of ``kind``."""
    match kind:
        case EntityKind.PARTITION:
            return PARTITION_EDGES
        case EntityKind.JOB_RUN:
            return JOBRUN_EDGES
        case EntityKind.WANT:
            return WANT_EDGES
        case _:
            assert_never(kind)


def transition(kind: EntityKind, from_state: str | None, to_state: str, name: str = "?") -> None:
    """Check at runtime that ``from_state -> to_state`` is an edge (None: creation).

    Raises :class:`IllegalTransition` otherwise.
    """
    if from_state is None:
        if INITIAL_STATES[kind] != to_state:
            raise IllegalTransition(kind, name, from_state, to_state)
        return
    if (from_state, to_state) not in edges(kind):
        raise IllegalTransition(kind, name, from_state, to_state)


def state_name(state: PartitionState | JobRunState | WantState) -> str:
    """The state's name as written in ``status.state``."""
    return state.STATE


def is_terminal(state: JobRunState | WantState) -> bool:
    """Whether a JobRun or Want state has no way out."""
    return state.STATE in TERMINAL_STATES[state.KIND]


# --- persisted status <-> state -------------------------------------------------------------


class InvalidStatus(ValueError):
    """A status read from the API is not a valid state of the entity."""

    def __init__(self, kind: EntityKind, problem: str) -> None:
        super().__init__(f"invalid {kind} status: {problem}")
        self.kind = kind
        self.problem = problem


def _time(kind: EntityKind, key: str, value: object) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidStatus(kind, f"{key} is not an RFC 3339 time: {value!r}") from None
    else:
        raise InvalidStatus(kind, f"{key} must be a time, got {type(value).__name__}")
    if result.tzinfo is None:
        raise InvalidStatus(kind, f"{key} has no time zone: {value!r}")
    return result


def _str(kind: EntityKind, key: str, value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidStatus(kind, f"{key} must be a string, got {type(value).__name__}")
    return value


def _int(kind: EntityKind, key: str, value: object) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidStatus(kind, f"{key} must be a non-negative integer, got {value!r}")
    return value


def _strs(kind: EntityKind, key: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidStatus(kind, f"{key} must be a list of strings")
    return tuple(value)


_T = TypeVar("_T", bound=_State)


def _pick(kind: EntityKind, classes: tuple[type[_T], ...], state: object) -> type[_T]:
    for cls in classes:
        if state == cls.STATE:
            return cls
    known = ", ".join(c.STATE for c in classes)
    raise InvalidStatus(kind, f"unknown state {state!r} (expected one of: {known})")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def load_partition_state(status: Mapping[str, object]) -> PartitionState:
    """Validate a Partition ``status`` read from the API (missing status: Missing)."""
    kind = EntityKind.PARTITION
    cls = _pick(kind, PARTITION_STATES, status.get("state") or "Missing")
    state = cls(
        built_by=_str(kind, "builtBy", status.get("builtBy")) or None,
        live_since=_time(kind, "liveSince", status.get("liveSince")),
        inputs=_strs(kind, "inputs", status.get("inputs")),
        failed_at=_time(kind, "failedAt", status.get("failedAt")),
        message=_str(kind, "message", status.get("message")),
    )
    assert isinstance(state, _PartitionBase)
    if isinstance(state, PartitionBuilding | PartitionLive) and not state.built_by:
        raise InvalidStatus(kind, f"state {cls.STATE} needs builtBy (the JobRun)")
    if isinstance(state, PartitionLive) and state.live_since is None:
        raise InvalidStatus(kind, "state Live needs liveSince")
    if isinstance(state, PartitionFailed) and state.failed_at is None:
        raise InvalidStatus(kind, "state Failed needs failedAt")
    return typing.cast(PartitionState, state)


def partition_status(state: PartitionState) -> dict[str, object]:
    """The ``status`` fields to write for a Partition state (inverse of the loader)."""
    return {
        "state": state.STATE,
        "builtBy": state.built_by,
        "liveSince": _iso(state.live_since),
        "inputs": list(state.inputs),
        "failedAt": _iso(state.failed_at),
        "message": state.message,
    }


def load_jobrun_state(status: Mapping[str, object]) -> JobRunState:
    """Validate a JobRun ``status`` read from the API (missing status: Queued)."""
    kind = EntityKind.JOB_RUN
    cls = _pick(kind, JOBRUN_STATES, status.get("state") or "Queued")
    state = cls(
        attempt=_int(kind, "attempt", status.get("attempt")),
        failed_attempts=_int(kind, "failedAttempts", status.get("failedAttempts")),
        retry_after=_time(kind, "retryAfter", status.get("retryAfter")),
        batch_job=_str(kind, "batchJob", status.get("batchJob")),
        started_at=_time(kind, "startTime", status.get("startTime")),
        finished_at=_time(kind, "finishTime", status.get("finishTime")),
        missing_partitions=_strs(kind, "missingPartitions", status.get("missingPartitions")),
        ever_missing=tuple(sorted(_strs(kind, "everMissing", status.get("everMissing")))),
        message=_str(kind, "message", status.get("message")),
    )
    assert isinstance(state, _JobRunBase)
    if state.failed_attempts > state.attempt:
        raise InvalidStatus(
            kind, f"failedAttempts ({state.failed_attempts}) > attempt ({state.attempt})"
        )
    if isinstance(state, JobRunRunning) and (
        state.attempt < 1 or not state.batch_job.endswith(f"-{state.attempt}")
    ):
        raise InvalidStatus(
            kind, "state Running needs attempt >= 1 and batchJob '<jobrun>-<attempt>'"
        )
    if isinstance(state, JobRunSucceeded) and state.attempt < 1:
        raise InvalidStatus(kind, "state Succeeded needs attempt >= 1")
    if isinstance(state, JobRunSucceeded | JobRunFailed | JobRunCancelled) and (
        state.finished_at is None
    ):
        raise InvalidStatus(kind, f"state {cls.STATE} needs finishTime")
    return typing.cast(JobRunState, state)


def jobrun_status(state: JobRunState) -> dict[str, object]:
    """The ``status`` fields to write for a JobRun state (inverse of the loader)."""
    return {
        "state": state.STATE,
        "attempt": state.attempt,
        "failedAttempts": state.failed_attempts,
        "retryAfter": _iso(state.retry_after),
        "batchJob": state.batch_job or None,
        "startTime": _iso(state.started_at),
        "finishTime": _iso(state.finished_at),
        "missingPartitions": list(state.missing_partitions),
        "everMissing": list(state.ever_missing),
        "message": state.message,
    }


def load_want_state(status: Mapping[str, object]) -> WantState:
    """Validate a Want's ``status.state`` (plus ``reason``/``message``); missing: Pending."""
    kind = EntityKind.WANT
    cls = _pick(kind, WANT_STATES, status.get("state") or "Pending")
    state = cls(
        reason=_str(kind, "reason", status.get("reason")),
        message=_str(kind, "message", status.get("message")),
    )
    return typing.cast(WantState, state)


def want_status(state: WantState) -> dict[str, object]:
    """The state-carrying ``status`` fields of a Want (counts/conditions come separately)."""
    return {"state": state.STATE, "reason": state.reason, "message": state.message}


def _short_list(refs: tuple[str, ...], limit: int = 5) -> str:
    """Up to ``limit`` refs, comma-separated, then how many more (keeps events bounded)."""
    shown = ",".join(refs[:limit])
    more = len(refs) - limit
    return f"{shown} (+{more} more)" if more > 0 else shown


def _check_tables() -> None:
    # Every state class of a kind is reachable in the tables or is the initial state.
    for kind, classes in _STATES_BY_KIND.items():
        table = edges(kind)
        names = {c.STATE for c in classes}
        used = {s for pair in table for s in pair} | {INITIAL_STATES[kind]}
        if used != names:  # pragma: no cover - a programming error caught at import
            raise AssertionError(f"{kind} states without edges: {names - used}")
        for terminal in TERMINAL_STATES[kind]:
            if any(f == terminal for f, _ in table):  # pragma: no cover
                raise AssertionError(f"{kind} terminal state {terminal} has an outgoing edge")


_check_tables()
