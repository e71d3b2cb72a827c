"""Runs: created for needed refs nobody builds, cancelled when nobody needs them, settled
between waiting and queued, started in priority order within every limit, and given
their batch Jobs."""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Iterable

from databuild.domain.actions import CreateBatchJob, CreateJobRun, HoldJobRun, TransitionJobRun
from databuild.domain.concurrency import POOL_NOT_FOUND, pool_not_found
from databuild.domain.events import EntityKind, Event
from databuild.domain.planning.messages import short
from databuild.domain.planning.needs import edges
from databuild.domain.planning.resolution import Blocker, Resolution
from databuild.domain.planning.state import QUEUED, TERMINAL_WANT, PlanningState
from databuild.domain.priority import QueueKey, inherited_priorities
from databuild.domain.refs import PartitionRef, jobrun_name
from databuild.domain.states import (
    JobRunQueued,
    JobRunRunning,
    JobRunWaitingForUpstream,
    PartitionBuilding,
    PartitionLive,
)
from databuild.domain.world import JobDefinition, JobOutcome, JobRun, OutcomeKind


def settle_orphans(st: PlanningState) -> None:
    """Building partitions whose builder is not their active run follow that run."""
    for ref in sorted(st.parts):
        part = st.parts[ref]
        if isinstance(part, PartitionBuilding):
            builder = st.active.get(ref)
            if builder is None or builder != part.built_by:
                st.settle_partition(ref, part, st.runs.get(part.built_by or ""))


def claim_active(st: PlanningState) -> None:
    """Runs whose partitions were not (yet) moved to Building, e.g. after a crash."""
    for ref in sorted(st.active):
        st.claim(PartitionRef(ref), st.active[ref])


def create_runs(st: PlanningState) -> None:
    """A new run for every needed ref that is not Live, not built and buildable."""
    active, parts, doomed, resolve = st.active, st.parts, st.doomed, st.resolver.resolve
    for ref in st.needed_refs:
        if ref in active or isinstance(parts.get(ref), PartitionLive) or ref in doomed:
            continue
        resolved = resolve(ref)
        if isinstance(resolved, Blocker):
            continue
        if not active.keys().isdisjoint(resolved.outputs):
            st.blockers[ref] = Blocker(
                "OutputConflict",
                f"another JobRun builds an output of {resolved.job_definition.name!r} "
                f"for {ref!r}; waiting for it to finish",
            )
            continue
        new_run(st, resolved)


def new_run(st: PlanningState, res: Resolution) -> None:
    """Create a run for ``res``, claim its outputs, and settle it at once.

    A new run whose inputs are not all Live moves to WaitingForUpstream right after
    its creation (the same events as ``_settle_waiting`` would emit later in the
    pass: nothing goes Live in between), so it is not looked at twice.
    """
    jd = res.job_definition
    now = st.now
    # Named for the time of the decision, not for how many runs exist now: deleting
    # an old run can never make a new one take its name (and its old batch Jobs).
    decided = st.decided
    name = jobrun_name(jd.name, res.outputs, decided)
    serial = 1
    while name in st.runs:  # a second decision at the very same instant
        serial += 1
        name = jobrun_name(jd.name, res.outputs, f"{decided}#{serial}")
    event = Event(
        now,
        EntityKind.JOB_RUN,
        name,
        None,
        "Queued",
        "Created",
        {"jobDefinition": jd.name, "partitions": short(res.outputs)},
    )
    captures = dict(res.captures)
    st.actions.append(CreateJobRun(name, jd.name, res.outputs, res.inputs, captures, now, event))
    parts = st.parts
    not_live = tuple(r for r in res.inputs if not isinstance(parts.get(r), PartitionLive))
    state: JobRunQueued | JobRunWaitingForUpstream = QUEUED
    wait: Event | None = None
    if not_live:
        state, wait = QUEUED.wait_for_upstream(name, at=now, waiting_for=not_live)
    run = JobRun(name, jd.name, res.outputs, res.inputs, now, captures, state)
    st.runs[name] = run
    st.created_here.add(name)
    for ref in res.outputs:
        st.active[ref] = name
        # Claimed now, so what kept it from resolving alone (say, another definition
        # also matching it) blocks it no more: its run's inputs may, and the full pass
        # walks the needs again through this run (it may close a cycle).
        if st.blockers.pop(ref, None) is not None:
            st.claimed_blocked = True
    st.index_needs(run)
    st.needed_runs.add(name)
    for ref in res.outputs:
        st.claim(ref, name)
    if wait is not None:
        st.actions.append(TransitionJobRun(name, "Queued", state, wait))
        st.touched_runs.add(name)
    else:
        st.created_queued.append(name)


def cancel_unneeded(st: PlanningState) -> None:
    """Cancel the active runs no live Want needs any more."""
    for name in sorted(set(st.active.values()) - st.needed_runs):
        st.cancel(name, "no live Want needs it any more")


def settle_waiting(st: PlanningState, names: Iterable[str]) -> None:
    """Move each of the runs ``names`` between WaitingForUpstream and Queued as its inputs say."""
    for name in names:
        run = st.runs[name]
        state = run.state
        if not isinstance(state, JobRunQueued | JobRunWaitingForUpstream):
            continue
        waits = st.waits_of(run)
        if isinstance(state, JobRunWaitingForUpstream):
            waits = tuple(dict.fromkeys((*waits, *state.missing_partitions)))
        not_live = tuple(r for r in waits if not st.is_live(r))
        if isinstance(state, JobRunWaitingForUpstream) and not not_live:
            st.set_run(name, *state.inputs_ready(name, at=st.now))
        elif isinstance(state, JobRunQueued) and not_live:
            st.set_run(name, *state.wait_for_upstream(name, at=st.now, waiting_for=not_live))


def index_priorities(st: PlanningState) -> None:
    """Each needed run's priority: the highest of the live Wants needing it."""
    wants = [
        (w.priority, w.partitions)
        for w in st.wants.values()
        if not isinstance(w.state, TERMINAL_WANT)
    ]
    st.priorities = inherited_priorities(wants, st.active.get, lambda ref: edges(st, ref))


def index_queue(st: PlanningState) -> None:
    """Index the Queued runs (and retry times); note the Running ones."""
    st.queue = []
    st.retries = []
    st.running = []
    # Runs created by this pass are not Running, and the Queued ones were listed.
    for name in st.created_queued:
        run = st.runs[name]
        if isinstance(run.state, JobRunQueued) and st.active.get(run.partitions[0]) == name:
            st.queue.append(st.queue_entry(run))
    for name in set(st.active.values()) - st.created_here:
        run = st.runs[name]
        if isinstance(run.state, JobRunRunning):
            st.running.append(name)
        elif isinstance(run.state, JobRunQueued):
            st.queue.append(st.queue_entry(run))
            if run.state.retry_after is not None:
                st.retries.append((run.state.retry_after, name))
    heapq.heapify(st.queue)
    heapq.heapify(st.retries)


def start_runs(st: PlanningState) -> None:
    """Start Queued runs, highest priority then oldest first, while the limits allow."""
    limit = st.settings.max_concurrent_runs
    held: list[QueueKey] = []
    seen: set[str] = set()
    while st.queue:
        if limit is not None and st.running_total >= limit:
            break
        entry = heapq.heappop(st.queue)
        name = entry[2]
        run = st.runs.get(name)
        if run is None or name in seen:
            continue
        state = run.state
        if not isinstance(state, JobRunQueued) or st.active.get(run.partitions[0]) != name:
            continue  # stale entry: the run moved on
        seen.add(name)
        jd = st.defs.get(run.job_definition)
        if (
            (state.retry_after is not None and state.retry_after > st.now)
            or jd is None
            or jd.error is not None  # its JobDefinition vanished or broke: wait for a fix
            or (
                jd.max_concurrent_runs is not None
                and st.running_by_jd.get(jd.name, 0) >= jd.max_concurrent_runs
            )
            or pool_full(st, jd, run)
        ):
            held.append(entry)
            continue
        started, event = state.start(name, at=st.now)
        priority = st.priorities.get(name, 0)
        if priority:  # the BEL says why it started before older runs
            event = dataclasses.replace(event, details={**event.details, "priority": str(priority)})
        st.set_run(name, started, event)
        st.started_here.add(name)
    for entry in held:
        heapq.heappush(st.queue, entry)


def pool_full(st: PlanningState, jd: JobDefinition, run: JobRun) -> bool:
    """Whether ``jd``'s pool holds ``run`` back; a missing pool does, and says so."""
    name = jd.concurrency_pool
    if name is None:
        return False
    pool = st.pools.get(name)
    if pool is None:
        blocker = Blocker(POOL_NOT_FOUND, pool_not_found(jd.name, name))
        for ref in run.partitions:
            st.blockers[ref] = blocker
        return True
    return st.running_by_pool.get(name, 0) >= pool.max_concurrent_runs


def ensure_batch_jobs(st: PlanningState, names: Iterable[str]) -> None:
    """Every Running run has its batch Job (created just now, or recreated after a crash).

    ``names`` must include every run that may be Running: the full pass passes the
    ones Running when the queue was indexed and those ``_start_runs`` started.
    """
    for name in sorted(names):
        run = st.runs.get(name)
        if run is None:
            continue
        state = run.state
        if not isinstance(state, JobRunRunning):
            continue
        key = (name, state.attempt)
        if name not in st.started_here and key in st.outcomes:
            continue
        jd = st.defs.get(run.job_definition)
        st.actions.append(
            CreateBatchJob(
                state.batch_job,
                name,
                state.attempt,
                run.job_definition,
                run.partitions,
                tuple(PartitionRef(r) for r in st.waits_of(run)),
                run.captures,
                jd.active_deadline_seconds if jd is not None else None,
            )
        )
        # It will exist (AlreadyExists counts): do not create it again next time.
        st.outcomes.setdefault(key, JobOutcome(name, state.attempt, OutcomeKind.RUNNING))


def hold_runs(st: PlanningState, names: Iterable[str] | None = None) -> None:
    """A Queued run that a ConcurrencyPool which does not exist holds back says so on its
    status (no transition: it stays Queued), once; it stops saying so when the pool
    exists. Starting the run replaces the reason anyway. Looks at ``names``, default
    every run (a local pass passes the runs it moved)."""
    if all(jd.concurrency_pool is None for jd in st.defs.values()):
        return  # a namespace without pools pays nothing for them
    for name in sorted(st.runs if names is None else names):
        run = st.runs[name]
        if not isinstance(run.state, JobRunQueued):
            continue
        jd = st.defs.get(run.job_definition)
        pool = jd.concurrency_pool if jd is not None else None
        hold: tuple[str, str] | None = None
        if jd is not None and pool is not None and pool not in st.pools:
            hold = (POOL_NOT_FOUND, pool_not_found(jd.name, pool))
        if hold != run.hold:
            st.actions.append(HoldJobRun(name, hold))
            st.runs[name] = dataclasses.replace(run, hold=hold)


__all__ = [
    "cancel_unneeded",
    "claim_active",
    "create_runs",
    "ensure_batch_jobs",
    "hold_runs",
    "index_priorities",
    "index_queue",
    "new_run",
    "pool_full",
    "settle_orphans",
    "settle_waiting",
    "start_runs",
]
