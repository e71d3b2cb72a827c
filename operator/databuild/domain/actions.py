"""What the planner asks the operator to do, as plain frozen values.

The operator executes a plan's actions in order and may crash between any two. Actions
are ordered so that re-planning from a partially applied world converges: entities are
created (deterministic names; AlreadyExists is success) before the transitions that
reference them, and a transition's ``from_state`` lets the executor skip one that is
already applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import assert_never

from databuild.domain.events import Event
from databuild.domain.refs import PartitionRef
from databuild.domain.states import JobRunState, PartitionBuilding, PartitionState, WantState
from databuild.domain.world import Condition, World

__all__ = [
    "Action",
    "CreateBatchJob",
    "CreateJobRun",
    "CreatePartition",
    "CreateWant",
    "DeleteBatchJob",
    "FlagSlaBreach",
    "HoldJobRun",
    "RecordWant",
    "TransitionJobRun",
    "TransitionPartition",
    "TransitionWant",
    "UpdateJobDefinitionStatus",
    "UpdateWantStatus",
    "WriteLane",
    "batch_jobs_first",
    "write_lanes",
]


@dataclass(frozen=True, slots=True)
class CreatePartition:
    """Create Partition ``name`` for ``ref`` in state Missing (``event`` is its creation)."""

    name: str
    ref: PartitionRef
    event: Event


@dataclass(frozen=True, slots=True)
class CreateJobRun:
    """Create JobRun ``name`` in state Queued (``created_at`` goes into its spec)."""

    name: str
    job_definition: str
    partitions: tuple[PartitionRef, ...]
    inputs: tuple[PartitionRef, ...]
    captures: Mapping[str, str]
    created_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class CreateWant:
    """Create the derived Want ``name`` (``spec.source`` and ownerReference: the JobRun)."""

    name: str
    partitions: tuple[PartitionRef, ...]
    source_job_run: str
    created_at: datetime
    event: Event


@dataclass(frozen=True, slots=True)
class RecordWant:
    """Append the creation event of a user's Want seen for the first time.

    Emitted while the Want's status was never written (no ``observedGeneration`` and
    state Pending), so the Build Event Log knows every Want from its start.
    """

    name: str
    event: Event


@dataclass(frozen=True, slots=True)
class CreateBatchJob:
    """Create batch Job ``name`` = ``<job_run>-<attempt>``, owned by the JobRun.

    ``inputs`` are the static inputs plus every ref a dependency miss reported.
    """

    name: str
    job_run: str
    attempt: int
    job_definition: str
    partitions: tuple[PartitionRef, ...]
    inputs: tuple[PartitionRef, ...]
    captures: Mapping[str, str]
    active_deadline_seconds: int | None


@dataclass(frozen=True, slots=True)
class DeleteBatchJob:
    """Delete batch Job ``name`` of a cancelled JobRun (NotFound is success)."""

    name: str
    job_run: str


@dataclass(frozen=True, slots=True)
class TransitionPartition:
    """Write Partition ``name``'s status to ``state`` and append ``event``."""

    name: str
    ref: PartitionRef
    from_state: str
    state: PartitionState
    event: Event


@dataclass(frozen=True, slots=True)
class TransitionJobRun:
    """Write JobRun ``name``'s status to ``state`` and append ``event``."""

    name: str
    from_state: str
    state: JobRunState
    event: Event


@dataclass(frozen=True, slots=True)
class TransitionWant:
    """Write Want ``name``'s ``status.state`` (reason, message) and append ``event``."""

    name: str
    from_state: str
    state: WantState
    event: Event


@dataclass(frozen=True, slots=True)
class UpdateWantStatus:
    """Write a Want's derived status: counts by partition state and conditions.

    Emitted only when they differ from what the Want's status holds.
    """

    name: str
    state: str
    counts: Mapping[str, int]
    conditions: tuple[Condition, ...]
    observed_generation: int
    sla_breached: bool = False


@dataclass(frozen=True, slots=True)
class FlagSlaBreach:
    """The Want's SLA passed before it was Successful: write ``slaBreached`` and warn once."""

    name: str
    deadline: datetime
    message: str = field(default="")


@dataclass(frozen=True, slots=True)
class HoldJobRun:
    """Say why Queued run ``name`` is held back (no transition), or stop saying it.

    ``hold`` is the (reason, message) its status shows; None clears them.
    """

    name: str
    hold: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class UpdateJobDefinitionStatus:
    """Write whether a JobDefinition is usable: its conditions for ``observed_generation``.

    Emitted only when the status says otherwise; ``warning`` (reason, message) is the
    Warning Event a person should see, for a definition that is not usable.
    """

    name: str
    conditions: tuple[Condition, ...]
    observed_generation: int
    warning: tuple[str, str] | None = None


Action = (
    CreatePartition
    | CreateJobRun
    | CreateWant
    | RecordWant
    | CreateBatchJob
    | DeleteBatchJob
    | TransitionPartition
    | TransitionJobRun
    | TransitionWant
    | UpdateWantStatus
    | FlagSlaBreach
    | UpdateJobDefinitionStatus
    | HoldJobRun
)


WriteLane = tuple[str, str]
"""The object whose writes an action's write must follow: ``(kind, name)``."""


def batch_jobs_first(actions: Sequence[Action]) -> tuple[Action, ...]:
    """``actions`` with each new batch Job as early as its build allows.

    A run the plan starts gets its batch Job right after its own status, before the
    writes that claim its partitions (Missing, Failed or Tainted to Building): a build's
    writes go one after the other, and its pod should not wait for bookkeeping. The
    claims follow at once, in their order; a crash between the two leaves a Running
    run with partitions not yet Building, which the next plan claims (as after any
    crash before a claim), before it applies the run's outcome if the batch Job ended
    meanwhile (``planning.outcomes.apply_outcome``).
    """
    starts = {a.job_run: i for i, a in enumerate(actions) if isinstance(a, CreateBatchJob)}
    if not starts:
        return tuple(actions)
    claimed: dict[str, str] = {}  # ref -> the started run that claims it in this plan
    for action in actions:
        if not isinstance(action, TransitionPartition):
            continue
        state = action.state
        if isinstance(state, PartitionBuilding) and state.built_by in starts:
            claimed[str(action.ref)] = str(state.built_by)
    held: dict[str, list[Action]] = {}
    ordered: list[Action] = []
    for index, action in enumerate(actions):
        if isinstance(action, CreatePartition | TransitionPartition):
            run = claimed.get(str(action.ref))
            if run is not None and index < starts[run]:
                held.setdefault(run, []).append(action)
                continue
        ordered.append(action)
        if isinstance(action, CreateBatchJob):
            ordered.extend(held.pop(action.job_run, ()))
    return tuple(ordered)


def write_lanes(actions: Sequence[Action], world: World) -> list[WriteLane | None]:
    """For each action of a plan made from ``world``, the lane its write belongs to.

    A plan's writes may be sent several lanes at once, each lane in the planner's order,
    and a crash between any two writes keeps a prefix of every lane. So the writes of
    every run and every Partition that one action ties together share a lane: a build's
    JobRun, its batch Jobs, the Wants it derived and the Partitions it claims or
    finishes; and an old run with the new run planned for its refs (a taint cancels one
    and plans the other), so a crash never keeps the new run and loses the old one's end.
    Then a Partition never goes Live before its JobRun Succeeded, a derived Want exists
    before its run waits for it, and a ref never has two active runs. A Partition no run
    touches is a lane of its own. ``None``: a Want's or JobDefinition's status, derived
    from the rest, written after every lane.
    """
    parent: dict[WriteLane, WriteLane] = {}
    seen: dict[WriteLane, int] = {}  # key -> when the plan first touched it

    def root(key: WriteLane) -> WriteLane:
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def tie(keys: list[WriteLane]) -> None:
        """One lane for ``keys``; the first key ever seen names it (deterministic)."""
        if not keys:
            return
        first = root(keys[0])
        for key in keys[1:]:
            other = root(key)
            if other != first:
                first, other = sorted((first, other), key=seen.__getitem__)
                parent[other] = first

    tied: list[list[WriteLane]] = []
    for action in actions:
        keys = _lane_keys(action, world)
        for key in keys:
            seen.setdefault(key, len(seen))
        tie(keys)
        tied.append(keys)
    return [root(keys[0]) if keys else None for keys in tied]


def _lane_keys(action: Action, world: World) -> list[WriteLane]:
    """The runs and Partitions (by ref) whose writes ``action``'s write must follow."""

    def run(name: str) -> WriteLane:
        return ("JobRun", name)

    def partition(ref: PartitionRef) -> WriteLane:
        return ("Partition", str(ref))

    match action:
        case CreateJobRun():
            return [run(action.name), *map(partition, action.partitions)]
        case TransitionJobRun() | HoldJobRun():
            held = world.job_runs.get(action.name)
            return [run(action.name), *map(partition, held.partitions if held else ())]
        case CreateWant():
            return [run(action.source_job_run)]
        case CreateBatchJob() | DeleteBatchJob():
            return [run(action.job_run)]
        case CreatePartition():
            return [partition(action.ref)]
        case TransitionPartition():
            before = world.partitions.get(action.ref)
            builders = (
                getattr(action.state, "built_by", None),
                getattr(before.state, "built_by", None) if before is not None else None,
            )
            return [partition(action.ref), *(run(str(b)) for b in builders if b)]
        case RecordWant() | TransitionWant() | UpdateWantStatus() | FlagSlaBreach():
            return []
        case UpdateJobDefinitionStatus():
            return []  # no build depends on it
        case unreachable:
            assert_never(unreachable)  # a new action needs its lane decided here
