"""Build Event Log (BEL) event types: one event per state transition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = ["EntityKind", "Event", "IllegalTransition"]


class EntityKind(StrEnum):
    """The kinds of entity that have a state machine."""

    PARTITION = "Partition"
    JOB_RUN = "JobRun"
    WANT = "Want"


@dataclass(frozen=True, slots=True)
class Event:
    """One state change of one entity.

    ``from_state`` is None for the creation of an entity in its initial state (Partitions
    start Missing, JobRuns Queued, Wants Pending), so replaying from empty knows every
    entity. ``reason`` is CamelCase (also the Kubernetes Event reason); ``details`` holds
    small extras such as the batch Job name or the missing refs (comma-separated).
    """

    time: datetime
    kind: EntityKind
    name: str
    from_state: str | None
    to_state: str
    reason: str
    details: Mapping[str, str] = field(default_factory=dict)


class IllegalTransition(ValueError):
    """A state change that is not an edge of the entity's state machine."""

    def __init__(self, kind: EntityKind | str, name: str, from_state: str | None, to_state: str):
        origin = "(created)" if from_state is None else from_state
        super().__init__(
            f"illegal {kind} transition {origin} -> {to_state} for {name!r}: "
            "not an edge of the state machine (see docs/state-machines.md)"
        )
        self.kind = kind
        self.name = name
        self.from_state = from_state
        self.to_state = to_state
