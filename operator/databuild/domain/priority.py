"""Which Queued run starts first when a concurrency limit holds runs back.

A Want's ``spec.priority`` passes to every run that builds its partitions or anything
upstream of them; a run needed by several Wants takes the highest of their priorities.
Runs start highest priority first, then oldest first, then by name (deterministic).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

__all__ = ["DEFAULT_PRIORITY", "QueueKey", "inherited_priorities", "queue_key"]

DEFAULT_PRIORITY = 0
"""The priority of a Want without ``spec.priority``, and of a run no Want reaches."""

QueueKey = tuple[int, datetime, str]
"""Sort key of a Queued run: smaller starts first."""


def queue_key(priority: int, created_at: datetime, name: str) -> QueueKey:
    """Highest priority first, then the oldest, then by name."""
    return (-priority, created_at, name)


def inherited_priorities(
    wants: Iterable[tuple[int, Iterable[str]]],
    run_of: Callable[[str], str | None],
    inputs_of: Callable[[str], Iterable[str]],
) -> dict[str, int]:
    """The priority of every run the Wants reach, by run name.

    ``wants`` are the live Wants as ``(priority, wanted refs)``; ``run_of`` is the
    non-terminal run building a ref, if any; ``inputs_of`` the refs a ref needs first.
    Wants are walked highest priority first and each ref is visited once, so the first
    Want that reaches a run is the highest one needing it: linear in the need graph.
    Runs missing from the result have :data:`DEFAULT_PRIORITY`; when every Want has the
    default nothing is walked at all (the common case costs nothing).
    """
    ordered = sorted(((p, tuple(refs)) for p, refs in wants), key=lambda w: -w[0])
    if all(p == DEFAULT_PRIORITY for p, _ in ordered):
        return {}
    found: dict[str, int] = {}
    seen: set[str] = set()
    for priority, refs in ordered:
        work = [r for r in refs if r not in seen]
        seen.update(work)
        while work:
            ref = work.pop()
            run = run_of(ref)
            if run is not None and run not in found:
                found[run] = priority
            for dep in inputs_of(ref):
                if dep not in seen:
                    seen.add(dep)
                    work.append(dep)
    return found
