"""The two drivers over the same phases: the full pass looks at everything, the local
pass only around new batch Job outcomes and deadlines that came due."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from databuild.domain.actions import Action, batch_jobs_first
from databuild.domain.planning.deadlines import index_deadlines, next_wakeup, pop_due, ttl_valid
from databuild.domain.planning.definitions import report_job_definitions
from databuild.domain.planning.needs import cascade_failures, failed_inputs, find_needs
from databuild.domain.planning.outcomes import apply_outcome, local_outcome, observe_outcomes
from databuild.domain.planning.runs import (
    cancel_unneeded,
    claim_active,
    create_runs,
    ensure_batch_jobs,
    hold_runs,
    index_priorities,
    index_queue,
    settle_orphans,
    settle_waiting,
    start_runs,
)
from databuild.domain.planning.state import PlanningState
from databuild.domain.planning.taints import apply_taints
from databuild.domain.planning.wants import (
    derive_want,
    expire_wants,
    fail_wants_on_failed_partitions,
    record_new_wants,
)
from databuild.domain.states import JobRunRunning
from databuild.domain.world import OutcomeKind

__all__ = ["Plan", "full_pass", "local_pass"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The actions to execute in order, and when to plan again if nothing else happens."""

    actions: tuple[Action, ...]
    next_wakeup: datetime | None = None

    def __iter__(self) -> Iterator[Action]:
        return iter(self.actions)

    def __len__(self) -> int:
        return len(self.actions)


def full_pass(st: PlanningState, now: datetime) -> Plan:
    """Look at everything: every phase in turn, needs walked to a fixpoint."""
    st.begin(now)
    record_new_wants(st)
    st.index()
    observe_outcomes(st)
    settle_orphans(st)
    apply_taints(st)
    claim_active(st)
    while True:
        while True:
            cascade_failures(st, failed_inputs(st))
            fail_wants_on_failed_partitions(st)
            expire_wants(st)
            if not find_needs(st):
                break
        st.claimed_blocked = False
        create_runs(st)
        # A new run that claimed a ref the walk found blocked (another definition matches
        # it too) changes the need graph: walk it again, so what that run closes (a
        # cycle) is decided in this pass and a second pass has nothing left to do.
        if not st.claimed_blocked:
            break
    cancel_unneeded(st)
    # Runs created by this pass were settled when created (nothing went Live since).
    settle_waiting(st, sorted(st.needed_runs - st.created_here))
    index_priorities(st)
    index_queue(st)
    start_runs(st)
    ensure_batch_jobs(st, {*st.running, *st.started_here})
    hold_runs(st)
    for name in sorted(st.wants):
        derive_want(st, name)
    report_job_definitions(st)
    index_deadlines(st)
    return Plan(batch_jobs_first(st.actions), next_wakeup(st))


def local_pass(st: PlanningState, now: datetime, dirty_runs: set[str]) -> Plan | None:
    """Plan only around ``dirty_runs`` (new outcomes) and deadlines that came due.

    Returns None, having changed nothing the full pass relies on, when the changes
    need the full pass: a failure for good or a dependency miss (they change what is
    needed), a TTL deadline, or an output conflict waiting for a run to finish.
    """
    if any(b.reason == "OutputConflict" for b in st.blockers.values()):
        return None
    for name in dirty_runs:
        if not local_outcome(st, name, now):
            return None
    due = pop_due(st.deadlines, now)
    if any(ttl_valid(st, when, name) for when, name in due):
        return None  # the full pass rebuilds the deadline heap
    if any(st.now < r.requested_at <= now for r in st.taint_requests.values()):
        return None  # a taint request came due: the full pass applies it
    st.begin(now)
    for name in sorted(dirty_runs):
        run = st.runs[name]
        if isinstance(run.state, JobRunRunning):
            outcome = st.outcomes.get((name, run.state.attempt))
            if outcome is not None and outcome.kind is not OutcomeKind.RUNNING:
                apply_outcome(st, run, run.state, outcome)
    waiting = {n for ref in st.newly_live for n in st.needers.get(ref, ()) if n in st.needed_runs}
    settle_waiting(st, sorted(waiting))
    start_runs(st)
    ensure_batch_jobs(st, dirty_runs | st.started_here)
    hold_runs(st, waiting | dirty_runs)
    wants = {name for _, name in due if name in st.wants}  # SLA deadlines
    for ref in st.touched_refs:
        wants.update(st.wants_by_ref.get(ref, ()))
    for name in st.touched_runs:
        for ref in st.runs[name].partitions:
            wants.update(st.wants_by_ref.get(ref, ()))
    for name in sorted(wants):
        derive_want(st, name)
    return Plan(batch_jobs_first(st.actions), next_wakeup(st))
