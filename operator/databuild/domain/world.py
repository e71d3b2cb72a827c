"""The immutable snapshot of one namespace that the planner plans from.

Everything here is what the operator reads from the API (specs, persisted statuses and
the observed batch Jobs); nothing is kept only in memory, so after a restart the same
world can be rebuilt and planned again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from databuild.domain.concurrency import ConcurrencyPool
from databuild.domain.limits import (
    NEED_DEPTH_PER_WANT,
    NEED_REFS_PER_NAMESPACE,
    NEED_REFS_PER_WANT,
)
from databuild.domain.priority import DEFAULT_PRIORITY
from databuild.domain.refs import (
    InputTemplate,
    OutputPattern,
    PartitionRef,
    PatternError,
    partition_name,
)
from databuild.domain.states import (
    JobRunQueued,
    JobRunState,
    PartitionMissing,
    PartitionState,
    WantPending,
    WantState,
)

__all__ = [
    "Condition",
    "JobDefinition",
    "JobDefinitionStatus",
    "JobOutcome",
    "JobRun",
    "OutcomeKind",
    "Partition",
    "RefusedAttempt",
    "Retry",
    "Settings",
    "TaintRequest",
    "Want",
    "WantStatus",
    "World",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Retry:
    """``spec.retry``: how many failed attempts may be retried, and the wait between."""

    limit: int = 0
    backoff_seconds: float = 0.0


@dataclass(frozen=True)
class JobDefinition:
    """How partitions are built (``spec`` of a JobDefinition, minus the Pod template).

    ``error`` is None when the outputs and inputs parse and agree; otherwise it says what
    is wrong, and Wants that resolve to it wait with ``InvalidJobDefinition``.
    """

    name: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    retry: Retry = field(default_factory=Retry)
    max_concurrent_runs: int | None = None
    active_deadline_seconds: int | None = None
    probe_interval_seconds: int | None = None
    """Set for a probe: exit 75 means "not yet", look again after this many seconds."""
    concurrency_pool: str | None = None
    """``spec.concurrencyPool``: the pool whose limit its runs share with other members."""

    def __post_init__(self) -> None:
        patterns: list[OutputPattern] = []
        templates: list[InputTemplate] = []
        error: str | None = None
        try:
            if not self.outputs:
                raise ValueError("spec.outputs is empty")
            for text in self.outputs:
                patterns.append(OutputPattern(text))
            names = set(patterns[0].captures)
            for pattern in patterns[1:]:
                if set(pattern.captures) != names:
                    raise ValueError(
                        f"outputs {patterns[0].text!r} and {pattern.text!r} capture different "
                        "names; every output must capture the same names"
                    )
            for text in self.inputs:
                templates.append(InputTemplate(text, names))
        except (PatternError, ValueError) as exc:
            error = str(exc)
            templates = []
        object.__setattr__(self, "patterns", tuple(patterns))
        object.__setattr__(self, "templates", tuple(templates))
        object.__setattr__(self, "error", error)

    # Set in __post_init__ (the compiled forms of outputs and inputs).
    patterns: tuple[OutputPattern, ...] = field(init=False, repr=False, compare=False)
    templates: tuple[InputTemplate, ...] = field(init=False, repr=False, compare=False)
    error: str | None = field(init=False, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Condition:
    """A ``metav1.Condition``."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str
    last_transition_time: datetime


@dataclass(frozen=True, slots=True)
class JobDefinitionStatus:
    """What a JobDefinition's status says now, and which generation it should describe."""

    generation: int = 1
    """``metadata.generation``: the spec the status should describe."""
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class WantStatus:
    """The derived part of a Want's status, as last written (to avoid rewriting it)."""

    counts: Mapping[str, int] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()
    observed_generation: int = 0
    sla_breached: bool = False


@dataclass(frozen=True, slots=True)
class Want:
    """A request for partitions (spec + persisted status)."""

    name: str
    partitions: tuple[PartitionRef, ...]
    created_at: datetime
    ttl_seconds: float | None = None
    sla_seconds: float | None = None
    data_timestamp: datetime | None = None
    source_job_run: str | None = None
    """The JobRun whose dependency miss created it (``spec.source``), if derived."""
    deleted: bool = False
    """``metadata.deletionTimestamp`` is set: it is no longer wanted."""
    generation: int = 1
    state: WantState = field(default_factory=WantPending)
    status: WantStatus = field(default_factory=WantStatus)
    priority: int = DEFAULT_PRIORITY
    """``spec.priority``: its runs start before lower ones when a limit holds runs back."""

    @property
    def clock_start(self) -> datetime:
        """TTL and SLA count from here: ``dataTimestamp``, default the creation time."""
        return self.data_timestamp or self.created_at


@dataclass(frozen=True, slots=True)
class TaintRequest:
    """Someone asked for a Partition to be tainted (``databuild taint``).

    It applies to the data that was Live when it was asked: a Live partition whose
    ``live_since`` is before ``requested_at`` is tainted; one rebuilt since is not.
    """

    reason: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class Partition:
    """The catalog entry of one partition (``spec.ref`` + persisted status).

    ``taint_request`` is the last taint request written on it, if any (it stays after
    it was acted on; the planner compares its time with ``live_since``).
    """

    ref: PartitionRef
    state: PartitionState = field(default_factory=PartitionMissing)
    taint_request: TaintRequest | None = None

    @property
    def name(self) -> str:
        """Resource name, derived from the ref."""
        return partition_name(self.ref)


@dataclass(frozen=True, slots=True)
class RefusedAttempt:
    """An attempt whose batch Job could not be created, as the JobRun's status records it.

    The API server refused the Job (``InvalidPodTemplate``), or somebody else's Job holds
    the attempt's name (``ForeignJob``). The record is durable, so after a restart the
    planner still counts the attempt as failed and never tries to create its Job again.
    """

    attempt: int
    reason: str
    message: str = ""

    def outcome(self, job_run: str) -> JobOutcome:
        """The failed outcome the planner reads for this attempt."""
        text = f"{self.reason}: {self.message}" if self.message else self.reason
        return JobOutcome(job_run, self.attempt, OutcomeKind.FAILED, None, text)


@dataclass(frozen=True, slots=True)
class JobRun:
    """One logical build (spec + persisted status).

    ``created_at`` is the planner's time when it decided the run (written as
    ``spec.createdAt`` or similar, full precision): a failure of an input after it
    fails this run, an older failure is rebuilt instead.
    """

    name: str
    job_definition: str
    partitions: tuple[PartitionRef, ...]
    inputs: tuple[PartitionRef, ...]
    created_at: datetime
    captures: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    state: JobRunState = field(default_factory=JobRunQueued)
    refused: RefusedAttempt | None = None
    """The last attempt whose batch Job could not be created (a failed attempt)."""
    hold: tuple[str, str] | None = None
    """(reason, message) a Queued run's status shows while something holds it back
    (no transition, e.g. a ConcurrencyPool that does not exist); any transition's
    status write replaces them."""

    def with_state(self, state: JobRunState) -> JobRun:
        """This run in ``state`` (a faster ``dataclasses.replace``: the planner's hot path).

        The transition's status write replaces the reason and message, so no hold is
        left.
        """
        return JobRun(
            self.name,
            self.job_definition,
            self.partitions,
            self.inputs,
            self.created_at,
            self.captures,
            state,
            self.refused,
        )

    def refused_outcome(self) -> JobOutcome | None:
        """The failed outcome of the refused attempt, if the status records one."""
        return None if self.refused is None else self.refused.outcome(self.name)


class OutcomeKind(StrEnum):
    """What the operator observed of one batch Job."""

    RUNNING = "Running"
    """The batch Job exists and has not finished (pending pods included)."""
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DEPENDENCY_MISS = "DependencyMiss"
    """Failed with a termination message ``{"missingPartitions": [...]}``."""


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """The observed state of the batch Job of ``(job_run, attempt)``."""

    job_run: str
    attempt: int
    kind: OutcomeKind
    exit_code: int | None = None
    message: str = ""
    missing_partitions: tuple[PartitionRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """Operator-wide settings that the planner honours."""

    max_concurrent_runs: int | None = None
    """Running JobRuns allowed in the namespace at once (None: no limit)."""
    need_refs_per_want: int = NEED_REFS_PER_WANT
    """Refs one Want's need graph may reach; beyond it the Want fails (NeedBudgetExceeded)."""
    need_depth_per_want: int = NEED_DEPTH_PER_WANT
    """Longest chain of inputs below a wanted ref; beyond it the Want fails."""
    need_refs_per_namespace: int = NEED_REFS_PER_NAMESPACE
    """Refs the need graph of all Wants of a namespace may hold together."""


_K = TypeVar("_K")
_V = TypeVar("_V")


def _freeze(items: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return items if isinstance(items, MappingProxyType) else MappingProxyType(dict(items))


@dataclass(frozen=True)
class World:
    """Everything the planner sees of one namespace.

    ``partitions`` is keyed by ref, the others by name; ``outcomes`` by
    ``(job_run, attempt)``; ``concurrency_pools`` by pool name. Only outcomes of
    existing batch Jobs are listed: a Running JobRun without an outcome for its attempt
    gets its batch Job (re)created.
    """

    job_definitions: Mapping[str, JobDefinition] = field(default_factory=dict)
    wants: Mapping[str, Want] = field(default_factory=dict)
    partitions: Mapping[str, Partition] = field(default_factory=dict)
    job_runs: Mapping[str, JobRun] = field(default_factory=dict)
    outcomes: Mapping[tuple[str, int], JobOutcome] = field(default_factory=dict)
    settings: Settings = field(default_factory=Settings)
    concurrency_pools: Mapping[str, ConcurrencyPool] = field(default_factory=dict)
    job_definition_statuses: Mapping[str, JobDefinitionStatus] = field(default_factory=dict)
    """The statuses of the JobDefinitions the planner reports on (the operator lists
    every one); the plan says whether each is usable, once per generation and verdict."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "job_definitions", _freeze(self.job_definitions))
        object.__setattr__(self, "wants", _freeze(self.wants))
        object.__setattr__(self, "partitions", _freeze(self.partitions))
        object.__setattr__(self, "job_runs", _freeze(self.job_runs))
        object.__setattr__(self, "outcomes", _freeze(self.outcomes))
        object.__setattr__(self, "concurrency_pools", _freeze(self.concurrency_pools))
        object.__setattr__(self, "job_definition_statuses", _freeze(self.job_definition_statuses))
