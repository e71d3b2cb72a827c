"""Outcomes: what a finished batch Job means for its run (success, retry, failure, a
dependency miss, a probe's "not yet")."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from databuild.domain.actions import CreateWant
from databuild.domain.events import EntityKind, Event
from databuild.domain.limits import MAX_EVER_MISSING
from databuild.domain.planning.messages import short
from databuild.domain.planning.resolution import Blocker
from databuild.domain.planning.state import TERMINAL_WANT, PlanningState
from databuild.domain.refs import derived_want_name
from databuild.domain.states import PROBE_NOT_YET_EXIT_CODE, JobRunRunning
from databuild.domain.world import JobOutcome, JobRun, OutcomeKind, Want

MAX_BACKOFF_SECONDS = 3600.0
"""Upper bound of the exponential retry backoff."""


def observe_outcomes(st: PlanningState) -> None:
    """Apply the outcome of every Running run whose batch Job has finished."""
    for name in sorted(st.runs):
        run = st.runs[name]
        if not isinstance(run.state, JobRunRunning):
            continue
        outcome = st.outcomes.get((name, run.state.attempt))
        if outcome is None or outcome.kind is OutcomeKind.RUNNING:
            continue
        apply_outcome(st, run, run.state, outcome)


def apply_outcome(
    st: PlanningState, run: JobRun, state: JobRunRunning, outcome: JobOutcome
) -> None:
    """What the finished attempt of ``run`` means: success, a dependency miss, a
    probe's "not yet", a retry or a failure for good."""
    now = st.now
    for ref in run.partitions:
        if st.active.get(ref) == run.name:
            # Claimed first: a crash can end a plan after the batch Job and before the
            # claims, and a success must still make the partition Live, never Missing
            # (which would build it again).
            st.claim(ref, run.name)
    if outcome.kind is OutcomeKind.SUCCEEDED:
        st.set_run(run.name, *state.succeed(run.name, at=now))
        st.finish_outputs(run.name)
        return
    if outcome.kind is OutcomeKind.DEPENDENCY_MISS and outcome.missing_partitions:
        missing = tuple(dict.fromkeys(outcome.missing_partitions))
        again = [r for r in missing if r in state.ever_missing or r in run.partitions]
        total = len(set(state.ever_missing) | set(missing))
        if not again and total > MAX_EVER_MISSING:
            message = (
                f"attempt {state.attempt} reported {len(missing)} missing partitions, "
                f"{total} over all attempts: more than {MAX_EVER_MISSING}; declare the "
                "inputs in the JobDefinition or split the job"
            )
            st.set_run(
                run.name,
                *state.fail(run.name, at=now, message=message, reason="TooManyMissing"),
            )
            st.finish_outputs(run.name)
            return
        nobody_builds = unbuildable(st, missing) if not again else []
        if nobody_builds:
            message = (
                f"attempt {state.attempt} reported {short(nobody_builds)} missing, and no "
                "JobDefinition has an output pattern matching it: add one, then want "
                "these partitions again"
            )
            st.set_run(
                run.name,
                *state.fail(run.name, at=now, message=message, reason="UnbuildableDependency"),
            )
            st.finish_outputs(run.name)
            return
        if again:
            message = (
                f"attempt {state.attempt} reported {short(again)} missing again after it "
                "was built (or reported its own output): not retrying a dependency miss"
            )
            st.set_run(
                run.name, *state.fail(run.name, at=now, message=message, reason="RepeatedMiss")
            )
            st.finish_outputs(run.name)
            return
        want_name = derived_want_name(run.name, state.attempt)
        if want_name not in st.wants:
            event = Event(
                now,
                EntityKind.WANT,
                want_name,
                None,
                "Pending",
                "DependencyMiss",
                {"source": run.name, "partitions": short(missing)},
            )
            st.actions.append(CreateWant(want_name, missing, run.name, now, event))
            st.wants[want_name] = Want(want_name, missing, created_at=now, source_job_run=run.name)
            st.wants_by_source.setdefault(run.name, []).append(want_name)
            for ref in missing:
                st.wants_by_ref.setdefault(ref, []).append(want_name)
        st.set_run(run.name, *state.dependency_miss(run.name, at=now, missing=missing))
        st.index_needs(st.runs[run.name])
        return
    jd = st.defs.get(run.job_definition)
    if (
        jd is not None
        and jd.probe_interval_seconds is not None
        and outcome.exit_code == PROBE_NOT_YET_EXIT_CODE
    ):
        # A probe's "not yet": look again after the interval, no retry spent; the
        # run is cancelled like any other once no live Want needs it (e.g. its TTL).
        retry_after = now + timedelta(seconds=jd.probe_interval_seconds)
        st.set_run(run.name, *state.not_yet(run.name, at=now, retry_after=retry_after))
        return
    # A plain failure (or a dependency miss naming nothing).
    limit = jd.retry.limit if jd is not None else 0
    code = "" if outcome.exit_code is None else f" (exit code {outcome.exit_code})"
    detail = f": {outcome.message}" if outcome.message else ""
    message = f"attempt {state.attempt} failed{code}{detail}"[:1024]
    if state.failed_attempts < limit and jd is not None:
        backoff = jd.retry.backoff_seconds * (2**state.failed_attempts)
        retry_after = now + timedelta(seconds=min(backoff, MAX_BACKOFF_SECONDS))
        st.set_run(
            run.name, *state.retry(run.name, at=now, retry_after=retry_after, message=message)
        )
        return
    if limit:
        message += f"; {limit} retries spent"
    st.set_run(run.name, *state.fail(run.name, at=now, message=message))
    st.finish_outputs(run.name)


def unbuildable(st: PlanningState, refs: Iterable[str]) -> list[str]:
    """The refs no JobDefinition matches, that are neither Live nor being built.

    A dependency miss on one of them would wait for ever; one that an ambiguous or
    broken JobDefinition matches waits instead (fixing the definition helps), with
    the Want's TTL as its end.
    """
    found: list[str] = []
    for ref in refs:
        if ref in st.active or st.is_live(ref):
            continue
        resolved = st.resolver.resolve(ref)
        if isinstance(resolved, Blocker) and resolved.reason == "NoJobDefinition":
            found.append(ref)
    return found


def local_outcome(st: PlanningState, name: str, now: datetime) -> bool:
    """Whether the observed outcome of run ``name`` can be handled by the local pass."""
    run = st.runs.get(name)
    if run is None:
        return False
    state = run.state
    if not isinstance(state, JobRunRunning):
        return True  # outcomes of runs that are not Running are ignored
    outcome = st.outcomes.get((name, state.attempt))
    if outcome is None or outcome.kind is OutcomeKind.RUNNING:
        return True
    if outcome.kind is OutcomeKind.SUCCEEDED:
        return (
            all(
                isinstance(st.wants[w].state, TERMINAL_WANT)
                for w in st.wants_by_source.get(name, ())
                if w in st.wants
            )
            # A taint request dated after the outputs go Live (clocks apart) taints
            # them at once: that needs the full pass, which rebuilds them.
            and not any(
                (request := st.taint_requests.get(r)) is not None and request.requested_at > now
                for r in run.partitions
            )
        )
    if outcome.kind is OutcomeKind.FAILED:
        jd = st.defs.get(run.job_definition)
        return jd is not None and state.failed_attempts < jd.retry.limit
    return False


__all__ = [
    "MAX_BACKOFF_SECONDS",
    "apply_outcome",
    "local_outcome",
    "observe_outcomes",
    "unbuildable",
]
