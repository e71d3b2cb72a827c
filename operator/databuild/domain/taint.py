"""Marking partitions bad: Live -> Tainted, transitively along lineage."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from databuild.domain.actions import TransitionPartition
from databuild.domain.refs import PartitionRef
from databuild.domain.states import PartitionLive
from databuild.domain.world import World

__all__ = ["taint"]


def taint(world: World, ref: str, now: datetime, message: str) -> tuple[TransitionPartition, ...]:
    """The transitions that taint ``ref`` and every Live partition built from it.

    The same cascade the planner applies to a Partition's taint request (see
    ``plan``); this helper computes it for one ref without planning. Lineage is each
    Live partition's ``inputs``. The first action is ``ref`` itself,
    then its dependents breadth-first (sorted per level, so the result is deterministic).
    Raises ValueError when ``ref`` is unknown or not Live: only Live data can be tainted.
    """
    root = world.partitions.get(ref)
    if root is None:
        raise ValueError(f"no Partition for {ref!r}")
    if not isinstance(root.state, PartitionLive):
        raise ValueError(
            f"{ref!r} is {root.state.STATE}, not Live: only Live partitions can be tainted"
        )
    dependents: dict[str, list[str]] = {}
    for other in world.partitions.values():
        if isinstance(other.state, PartitionLive):
            for source in other.state.inputs:
                dependents.setdefault(source, []).append(other.ref)
    actions: list[TransitionPartition] = []
    seen = {ref}
    queue: deque[tuple[str, str]] = deque([(ref, "")])  # (ref, the input it was built from)
    while queue:
        current, source = queue.popleft()
        part = world.partitions[current]
        assert isinstance(part.state, PartitionLive)
        if current == ref:
            state, event = part.state.taint(
                current, at=now, message=message, reason="TaintRequested"
            )
        else:
            state, event = part.state.taint(
                current,
                at=now,
                message=f"built from tainted {ref}: {message}",
                reason="UpstreamTainted",
                source=source,
            )
        actions.append(TransitionPartition(part.name, PartitionRef(current), "Live", state, event))
        for child in sorted(dependents.get(current, ())):
            if child not in seen:
                seen.add(child)
                queue.append((child, current))
    return tuple(actions)
