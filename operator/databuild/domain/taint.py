"""Marking partitions bad: Live -> Tainted, transitively along lineage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from databuild.domain.actions import TransitionPartition
from databuild.domain.events import Event
from databuild.domain.planning.taints import cascade
from databuild.domain.refs import PartitionRef, partition_name
from databuild.domain.states import PartitionLive, PartitionState, PartitionTainted
from databuild.domain.world import Partition, TaintRequest, World

__all__ = ["TaintOutcome", "latest_request", "request_outcome", "taint"]


def latest_request(a: TaintRequest | None, b: TaintRequest | None) -> TaintRequest | None:
    """The later of two taint requests of one ref (either may be None).

    The later one taints everything the earlier one would (all data Live before it), so
    a ref asked to be tainted twice needs only the later request.
    """
    if a is None:
        return b
    if b is None or a.requested_at >= b.requested_at:
        return a
    return b


@dataclass(frozen=True, slots=True)
class TaintOutcome:
    """What a taint request of several refs found, ref by ref (each tuple sorted)."""

    tainted: tuple[str, ...] = ()
    """Tainted now (by this request, or already before it)."""
    not_live: tuple[str, ...] = ()
    """Not Live, or Live only since after the request: nothing to taint."""
    unknown: tuple[str, ...] = ()
    """No Partition: the namespace never built or wanted it."""
    pending: tuple[str, ...] = ()
    """Live since before the request: the planner has not tainted them yet."""

    @property
    def applied(self) -> bool:
        """Whether the planner has acted on every ref (the request can be closed)."""
        return not self.pending


def request_outcome(
    refs: Iterable[str], requested_at: datetime, partitions: Mapping[str, Partition]
) -> TaintOutcome:
    """Classify the refs of a taint request made at ``requested_at`` by their state now.

    The planner decides the taint (a Live partition whose ``live_since`` is before the
    request goes Tainted); this only reports, and says whether that decision is made.
    """
    found: dict[str, list[str]] = {"tainted": [], "not_live": [], "unknown": [], "pending": []}
    for ref in sorted(set(refs)):
        part = partitions.get(ref)
        if part is None:
            found["unknown"].append(ref)
        elif isinstance(part.state, PartitionLive):
            since = part.state.live_since
            key = "pending" if since is None or since < requested_at else "not_live"
            found[key].append(ref)
        elif isinstance(part.state, PartitionTainted):
            found["tainted"].append(ref)
        else:
            found["not_live"].append(ref)
    return TaintOutcome(**{k: tuple(v) for k, v in found.items()})


def taint(world: World, ref: str, now: datetime, message: str) -> tuple[TransitionPartition, ...]:
    """The transitions that taint ``ref`` and every Live partition built from it.

    The cascade the planner applies to a Partition's taint request (the same code,
    :func:`databuild.domain.planning.taints.cascade`), for one ref without planning.
    Lineage is each Live partition's ``inputs``. The first action is ``ref`` itself,
    then its dependents breadth-first (sorted per source, so the result is deterministic).
    Raises ValueError when ``ref`` is unknown or not Live: only Live data can be tainted.
    """
    root = world.partitions.get(ref)
    if root is None:
        raise ValueError(f"no Partition for {ref!r}")
    if not isinstance(root.state, PartitionLive):
        raise ValueError(
            f"{ref!r} is {root.state.STATE}, not Live: only Live partitions can be tainted"
        )
    states: dict[str, PartitionState] = {r: p.state for r, p in world.partitions.items()}
    actions: list[TransitionPartition] = []

    def set_part(current: str, state: PartitionState, event: Event) -> None:
        before = states[current].STATE
        actions.append(
            TransitionPartition(
                partition_name(current), PartitionRef(current), before, state, event
            )
        )
        states[current] = state

    set_part(ref, *root.state.taint(ref, at=now, message=message, reason="TaintRequested"))
    cascade(states, [ref], now, set_part)
    return tuple(actions)
