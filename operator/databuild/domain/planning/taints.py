"""Taints: requests applied to Live data, the one cascade along lineage, and runs
reading tainted data stopped."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from databuild.domain.events import Event
from databuild.domain.planning.state import PlanningState
from databuild.domain.states import JobRunRunning, PartitionLive, PartitionState, PartitionTainted


def cascade(
    parts: Mapping[str, PartitionState],
    tainted: Iterable[str],
    now: datetime,
    set_part: Callable[[str, PartitionState, Event], None],
) -> None:
    """Taint every Live partition built from one of ``tainted``, transitively.

    Lineage is each Live partition's ``inputs``. Breadth-first from ``tainted`` in
    order, each one's dependents sorted; ``set_part`` applies each transition and must
    update ``parts``, so a partition reached twice (a diamond) is tainted once: it is no
    longer Live. Messages name the input and the first tainted ref's reason, not the
    whole path: ``built from tainted <input> (tainted with <origin>): <reason>``.
    """
    dependents: dict[str, list[str]] = {}
    for ref, part in parts.items():
        if isinstance(part, PartitionLive):
            for source in part.inputs:
                dependents.setdefault(source, []).append(ref)
    queue = deque((r, r, parts[r].message) for r in tainted)
    while queue:
        source, origin, cause = queue.popleft()
        for child in sorted(dependents.get(source, ())):
            part = parts[child]
            if not isinstance(part, PartitionLive):
                continue  # tainted already, through another input
            via = "" if origin == source else f" (tainted with {origin})"
            message = f"built from tainted {source}{via}" + (f": {cause}" if cause else "")
            set_part(
                child,
                *part.taint(
                    child,
                    at=now,
                    message=message[:1024],
                    reason="UpstreamTainted",
                    source=source,
                ),
            )
            queue.append((child, origin, cause))


def taint_due(st: PlanningState, ref: str, live_since: datetime | None) -> bool:
    """Whether a taint request of ``ref`` applies to data Live since ``live_since``.

    A request counts only once the operator's clock has reached its time: one dated
    in the future (a skewed or forged clock) waits for its time, then taints the data
    Live before it once; the rebuild is Live after it, so it is not tainted again.
    """
    request = st.taint_requests.get(ref)
    return (
        request is not None
        and request.requested_at <= st.now
        and (live_since is None or live_since < request.requested_at)
    )


def apply_taints(st: PlanningState) -> None:
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
    for ref in sorted(st.taint_requests):
        part = st.parts.get(ref)
        if isinstance(part, PartitionLive) and taint_due(st, ref, part.live_since):
            request = st.taint_requests[ref]
            st.set_part(
                ref,
                *part.taint(
                    ref,
                    at=st.now,
                    message=request.reason[:1024],
                    reason="TaintRequested",
                ),
            )
    tainted = sorted(r for r, p in st.parts.items() if isinstance(p, PartitionTainted))
    if not tainted:
        return
    cascade(st.parts, tainted, st.now, st.set_part)
    for ref in sorted(r for r, p in st.parts.items() if isinstance(p, PartitionTainted)):
        for run_name in list(st.needers.get(ref, ())):
            run = st.runs[run_name]
            if isinstance(run.state, JobRunRunning):
                st.cancel(
                    run_name,
                    f"input {ref} was tainted while the job ran",
                    event_reason="InputTainted",
                )


__all__ = ["apply_taints", "cascade", "taint_due"]
