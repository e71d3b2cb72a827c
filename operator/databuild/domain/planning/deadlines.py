"""Deadlines: Want TTL and SLA times, retry-after times, and when to plan again."""

from __future__ import annotations

import heapq
from datetime import datetime

from databuild.domain.limits import after
from databuild.domain.planning.state import TERMINAL_WANT, PlanningState
from databuild.domain.states import JobRunQueued
from databuild.domain.world import Want


def want_deadlines(st: PlanningState, want: Want) -> list[tuple[datetime, str]]:
    """The TTL and SLA times of ``want`` while it is not terminal."""
    out: list[tuple[datetime, str]] = []
    if isinstance(want.state, TERMINAL_WANT):
        return out
    for seconds in (want.ttl_seconds, want.sla_seconds):
        if seconds is not None:
            out.append((after(want.clock_start, seconds), want.name))
    return out


def index_deadlines(st: PlanningState) -> None:
    """Rebuild the heap of every Want's TTL and SLA times."""
    st.deadlines = [d for w in st.wants.values() for d in want_deadlines(st, w)]
    heapq.heapify(st.deadlines)


def ttl_valid(st: PlanningState, when: datetime, name: str) -> bool:
    """Whether ``when`` is still the TTL of Want ``name`` (and it is not terminal)."""
    want = st.wants.get(name)
    return (
        want is not None
        and want.ttl_seconds is not None
        and not isinstance(want.state, TERMINAL_WANT)
        and after(want.clock_start, want.ttl_seconds) == when
    )


def deadline_valid(st: PlanningState, when: datetime, name: str) -> bool:
    """Whether ``when`` is still a TTL or SLA time of Want ``name``."""
    want = st.wants.get(name)
    return want is not None and (when, name) in want_deadlines(st, want)


def retry_valid(st: PlanningState, when: datetime, name: str) -> bool:
    """Whether ``when`` is still the retry-after time of the Queued run ``name``."""
    run = st.runs.get(name)
    return (
        run is not None
        and isinstance(run.state, JobRunQueued)
        and run.state.retry_after == when
        and st.active.get(run.partitions[0]) == name
    )


def pop_due(heap: list[tuple[datetime, str]], now: datetime) -> list[tuple[datetime, str]]:
    """Take the entries due at ``now`` off ``heap``."""
    due: list[tuple[datetime, str]] = []
    while heap and heap[0][0] <= now:
        due.append(heapq.heappop(heap))
    return due


def next_wakeup(st: PlanningState) -> datetime | None:
    """The earliest future retry-after, TTL or SLA deadline (stale entries dropped).

    Deadlines at or before now were dealt with by this pass, so they are dropped too.
    """
    found: datetime | None = None
    for heap, valid in (
        (st.retries, retry_valid),
        (st.deadlines, deadline_valid),
    ):
        while heap and (heap[0][0] <= st.now or not valid(st, *heap[0])):
            heapq.heappop(heap)
        if heap and (found is None or heap[0][0] < found):
            found = heap[0][0]
    for request in st.taint_requests.values():
        if request.requested_at > st.now and (found is None or request.requested_at < found):
            found = request.requested_at
    return found


__all__ = [
    "deadline_valid",
    "index_deadlines",
    "next_wakeup",
    "pop_due",
    "retry_valid",
    "ttl_valid",
    "want_deadlines",
]
