"""Wants: recorded when first seen, failed or expired, their states derived from their
partitions, and their status (counts, conditions, SLA) kept in step."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from databuild.domain.actions import FlagSlaBreach, RecordWant, UpdateWantStatus
from databuild.domain.events import EntityKind, Event
from databuild.domain.limits import after
from databuild.domain.planning.messages import short
from databuild.domain.planning.needs import edges
from databuild.domain.planning.resolution import Blocker
from databuild.domain.planning.state import ACTIVE, TERMINAL_WANT, PlanningState
from databuild.domain.states import (
    JobRunWaitingForUpstream,
    PartitionFailed,
    PartitionLive,
    WantBuilding,
    WantExpired,
    WantFailed,
    WantPending,
    WantSuccessful,
    WantUpstreamBuilding,
)
from databuild.domain.world import Condition, Want, WantStatus


def record_new_wants(st: PlanningState) -> None:
    """A creation event for each user Want seen for the first time."""
    for name in sorted(st.wants):
        want = st.wants[name]
        if (
            want.source_job_run is None
            and want.status.observed_generation == 0
            and isinstance(want.state, WantPending)
        ):
            event = Event(
                st.now,
                EntityKind.WANT,
                name,
                None,
                "Pending",
                "Created",
                {"partitions": short(want.partitions)},
            )
            st.actions.append(RecordWant(name, event))


_CREATION_PRECISION = timedelta(seconds=1)
"""``metadata.creationTimestamp`` has whole seconds."""


def fail_wants_on_failed_partitions(st: PlanningState) -> None:
    """Fail the live Wants one of whose partitions failed after the Want was made.

    A Want's creation time is the API server's, cut to the second, and a failure's is
    ours: a Want made in the second a partition failed looks older than the failure.
    Within that second, a Want seen for the first time (no status written yet) is not
    failed by a failure an earlier pass recorded: it arrived after it, and asks for a
    rebuild. (A failure a second or more after the creation time is certainly later.)
    """
    for name in sorted(st.wants):
        want = st.wants[name]
        if isinstance(want.state, TERMINAL_WANT):
            continue
        first_seen = want.status.observed_generation == 0
        failed = []
        for ref in want.partitions:
            part = st.parts.get(ref)
            if (
                isinstance(part, PartitionFailed)
                and part.failed_at is not None
                and part.failed_at > want.created_at
                and not (
                    first_seen
                    and part.failed_at < st.now
                    and part.failed_at < want.created_at + _CREATION_PRECISION
                )
            ):
                failed.append(ref)
        if failed:
            first = st.parts[failed[0]]
            message = f"partition {short(failed)} failed: {first.message}"[:1024]
            st.set_want(
                name,
                *want.state.fail(name, at=st.now, reason="PartitionFailed", message=message),
            )


def expire_wants(st: PlanningState) -> None:
    """Wants past their TTL stop being needs (before needs are computed)."""
    for name in sorted(st.wants):
        want = st.wants[name]
        state = want.state
        if want.ttl_seconds is None or isinstance(state, TERMINAL_WANT):
            continue
        deadline = after(want.clock_start, want.ttl_seconds)
        if st.now < deadline or all(st.is_live(r) for r in want.partitions):
            continue  # not yet; or it is Successful now (success wins)
        st.set_want(
            name,
            *state.expire(
                name,
                at=st.now,
                reason="TTLExpired",
                message=f"ttlSeconds passed at {deadline.isoformat()}",
            ),
        )


def derive_want(st: PlanningState, name: str) -> None:
    """Move Want ``name`` along its edges as its partitions say; write a changed status."""
    want = st.wants[name]
    now = st.now
    counts: dict[str, int] = {}
    live = 0
    upstream = building = False
    blocker: Blocker | None = None
    for ref in want.partitions:
        part = st.parts.get(ref)
        state_name = part.STATE if part is not None else "Missing"
        counts[state_name] = counts.get(state_name, 0) + 1
        if isinstance(part, PartitionLive):
            live += 1
            continue
        run_name = st.active.get(ref)
        if run_name is not None:
            run_state = st.runs[run_name].state
            if isinstance(run_state, JobRunWaitingForUpstream):
                upstream = True
            else:
                building = True
        if blocker is None:
            blocker = blocker_of(st, ref)
    if want.source_job_run is not None and not isinstance(want.state, TERMINAL_WANT):
        blocker = unverified_source(st, want) or blocker
    state = want.state
    if not isinstance(state, TERMINAL_WANT):
        source = want.source_job_run
        source_run = st.runs.get(source) if source is not None else None
        if live == len(want.partitions):
            if isinstance(state, WantPending | WantUpstreamBuilding):
                st.set_want(name, *state.build(name, at=now))
                state = st.wants[name].state
            assert isinstance(state, WantBuilding)
            st.set_want(name, *state.succeed(name, at=now))
        elif source is not None and (
            source_run is None or not isinstance(source_run.state, ACTIVE)
        ):
            ended = "is gone" if source_run is None else f"is {source_run.state.STATE}"
            st.set_want(
                name,
                *state.expire(
                    name,
                    at=now,
                    reason="SourceJobRunEnded",
                    message=f"the JobRun {source} that needed these partitions {ended}",
                ),
            )
        elif upstream and isinstance(state, WantPending | WantBuilding):
            st.set_want(name, *state.wait_for_upstream(name, at=now))
        elif building and not upstream and isinstance(state, WantPending | WantUpstreamBuilding):
            st.set_want(name, *state.build(name, at=now))
    want = st.wants[name]
    sla_breached = want.status.sla_breached
    if want.sla_seconds is not None and not isinstance(want.state, TERMINAL_WANT):
        sla = after(want.clock_start, want.sla_seconds)
        if now >= sla and not sla_breached:
            sla_breached = True
            st.actions.append(
                FlagSlaBreach(name, sla, f"not Successful by its SLA ({sla.isoformat()})")
            )
    conditions = want_conditions(st, want, blocker)
    status = WantStatus(dict(sorted(counts.items())), conditions, want.generation, sla_breached)
    if status != want.status:
        st.actions.append(
            UpdateWantStatus(
                name,
                want.state.STATE,
                status.counts,
                conditions,
                want.generation,
                sla_breached,
            )
        )
        st.wants[name] = dataclasses.replace(want, status=status)


def unverified_source(st: PlanningState, want: Want) -> Blocker | None:
    """Why ``spec.source`` of ``want`` is not honoured, if it is not.

    The operator writes a derived Want only for refs its JobRun reported missing,
    and the JobRun's status (``everMissing``) is written only by the operator: a Want
    naming other refs was not written by it, and adds nothing to that run's needs.
    """
    run = st.runs.get(want.source_job_run or "")
    if run is None or not isinstance(run.state, ACTIVE):
        return None  # the Want expires (SourceJobRunEnded)
    reported = set(run.state.ever_missing)
    foreign = [r for r in want.partitions if r not in reported]
    if not foreign:
        return None
    return Blocker(
        "UnverifiedSource",
        f"spec.source names JobRun {run.name!r}, which did not report {short(foreign)} "
        "missing; only the operator sets spec.source: create a Want without it",
    )


def blocker_of(st: PlanningState, ref: str) -> Blocker | None:
    """The first reason found upstream of ``ref`` why it cannot progress."""
    if not st.blockers and not st.doomed:
        return None
    seen: set[str] = set()
    work = [ref]
    while work:
        cur = work.pop()
        if cur in seen or cur in st.unblocked:
            continue
        seen.add(cur)
        found = st.blockers.get(cur) or st.doomed.get(cur)
        if found is not None:
            return found
        run_name = st.active.get(cur)
        if run_name is not None and isinstance(st.runs[run_name].state, JobRunWaitingForUpstream):
            work.extend(r for r in edges(st, cur) if not st.is_live(r))
    st.unblocked |= seen  # nothing blocks anything upstream of these (this pass)
    return None


def want_conditions(
    st: PlanningState, want: Want, blocker: Blocker | None
) -> tuple[Condition, ...]:
    """The Ready (and Stalled) conditions of ``want``; a time changes only with its status."""
    state = want.state
    if isinstance(state, WantSuccessful):
        ready = ("True", "Successful", "every partition is Live")
    elif isinstance(state, WantFailed | WantExpired):
        ready = ("False", state.reason or state.STATE, state.message)
    elif blocker is not None:
        ready = ("False", blocker.reason, blocker.message)
    else:
        ready = ("False", state.STATE, f"the Want is {state.STATE}")
    wanted: list[tuple[str, str, str, str]] = [("Ready", *ready)]
    # kstatus (Flux, kubectl wait tools): Stalled=True means "will not get there
    # without someone acting", which holds for a blocked Want and for a Failed or
    # Expired one alike; without it a failed Want reads as in progress.
    if isinstance(state, WantFailed | WantExpired):
        wanted.append(("Stalled", "True", *ready[1:]))
    elif blocker is not None and not isinstance(state, TERMINAL_WANT):
        wanted.append(("Stalled", "True", blocker.reason, blocker.message))
    old = {c.type: c for c in want.status.conditions}
    out: list[Condition] = []
    for ctype, status, reason, message in wanted:
        prev = old.get(ctype)
        since = prev.last_transition_time if prev and prev.status == status else st.now
        out.append(Condition(ctype, status, reason, message, since))
    return tuple(out)


__all__ = [
    "blocker_of",
    "derive_want",
    "expire_wants",
    "fail_wants_on_failed_partitions",
    "record_new_wants",
    "unverified_source",
    "want_conditions",
]
