"""What the Build Event Log stores: one :class:`BelEvent` per state transition.

An event is the domain's transition (entity kind and name, from-state, to-state, reason,
details) plus what the log needs to be useful on its own: the namespace, the time, the
partition refs the event is about (so ``events --ref 'reviews/*'`` works without the
cluster) and the JobDefinition (for per-job queries). Every event carries a stable
``event_id``: appending the same event twice stores it once, so a retry after an
ambiguous failure (the insert committed, the acknowledgement got lost) never duplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "ENTITY_KINDS",
    "BelEvent",
    "EntityKey",
    "EntityKind",
    "EventQuery",
    "StoredEvent",
    "glob_to_like",
    "glob_to_sqlite_glob",
    "stable_event_id",
    "utc",
]

EntityKind = Literal["Want", "Partition", "JobRun"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("Want", "Partition", "JobRun")


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; naive values are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def stable_event_id(
    namespace: str,
    kind: str,
    name: str,
    *,
    from_state: str | None,
    to_state: str,
    time: datetime,
) -> str:
    """A deterministic id for one transition of one entity.

    The same transition (same entity, edge and instant) always gets the same id, so
    whoever re-sends it cannot store it twice.
    """
    key = "\x1f".join([namespace, kind, name, from_state or "", to_state, utc(time).isoformat()])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EntityKey:
    """Identifies one entity across the log: namespace, kind and name."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}"


@dataclass(frozen=True, slots=True)
class BelEvent:
    """One transition of one entity, as recorded in the Build Event Log."""

    namespace: str
    kind: str
    name: str
    from_state: str | None
    to_state: str
    reason: str
    time: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    refs: tuple[str, ...] = ()
    """Partition refs the event is about (a Partition's ref, a JobRun's outputs, ...)."""
    job_definition: str | None = None
    event_id: str = ""
    """Stable id; derived from the transition when left empty."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", utc(self.time))
        object.__setattr__(self, "refs", tuple(self.refs))
        if not self.event_id:
            object.__setattr__(
                self,
                "event_id",
                stable_event_id(
                    self.namespace,
                    self.kind,
                    self.name,
                    from_state=self.from_state,
                    to_state=self.to_state,
                    time=self.time,
                ),
            )

    @property
    def entity(self) -> EntityKey:
        """The entity this event is a transition of."""
        return EntityKey(self.namespace, self.kind, self.name)

    def details_json(self) -> str:
        """Details as canonical JSON text."""
        return json.dumps(dict(self.details), sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from a store, with its position in the log."""

    seq: int
    """Position in the log: strictly increasing in append order, never reused."""
    event: BelEvent

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (the CLI's ``-o json``)."""
        e = self.event
        return {
            "seq": self.seq,
            "eventId": e.event_id,
            "time": e.time.isoformat().replace("+00:00", "Z"),
            "namespace": e.namespace,
            "kind": e.kind,
            "name": e.name,
            "from": e.from_state,
            "to": e.to_state,
            "reason": e.reason,
            "refs": list(e.refs),
            "jobDefinition": e.job_definition,
            "details": dict(e.details),
        }


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters for reading the log; every field left as None matches everything.

    ``ref_glob`` matches an event if any of its refs matches: ``*`` stands for any run of
    characters (``/`` included), ``?`` for one character; everything else is literal.
    ``state`` matches the to-state. ``since`` is inclusive, ``until`` exclusive.
    """

    namespace: str | None = None
    kind: str | None = None
    name: str | None = None
    ref_glob: str | None = None
    job_definition: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after_seq: int = 0
    limit: int | None = None
    reasons: Sequence[str] | None = None


def glob_to_like(glob: str) -> str:
    """A ref glob as a SQL LIKE pattern with ``\\`` as the escape character."""
    out: list[str] = []
    for ch in glob:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "\\%_":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def glob_to_sqlite_glob(glob: str) -> str:
    """A ref glob as an SQLite GLOB pattern (case-sensitive; ``[`` made literal)."""
    return glob.replace("[", "[[]")
