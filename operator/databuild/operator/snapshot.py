"""Building the domain's World snapshot of one namespace from the world store."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from databuild import domain
from databuild.adapters import codec, taint_requests
from databuild.adapters.jobs import true_conditions, waiting_for_admission
from databuild.adapters.ownership import controlled_by
from databuild.operator.admission import WAITING, widen_limits, widen_pools
from databuild.operator.store import WorldStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BadWant:
    """A Want the operator cannot plan for, and why."""

    name: str
    problem: str
    generation: int
    ready_reason: str
    ready_message: str
    reason: str = "InvalidSpec"
    """The reason its conditions give: ``InvalidSpec``, or ``PlanningFailed``."""


def bad_want(
    name: str, body: Mapping[str, Any], problem: str, *, reason: str = "InvalidSpec"
) -> BadWant:
    """A :class:`BadWant` for the Want ``body``, with what its status says now."""
    ready: dict[str, object] = next(
        (c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        {},
    )
    return BadWant(
        name,
        problem,
        int((body.get("metadata") or {}).get("generation") or 1),
        str(ready.get("reason", "")),
        str(ready.get("message", "")),
        reason,
    )


@dataclass(frozen=True)
class PoolReport:
    """What a ConcurrencyPool's status says now, to tell whether it needs rewriting."""

    name: str
    generation: int
    observed_generation: int | None
    usage: domain.PoolUsage
    ready: tuple[str, str, str]
    """(status, reason, message) of its Ready condition; empty strings when absent."""
    since: str | None
    """lastTransitionTime of its Ready condition."""


@dataclass(frozen=True)
class Snapshot:
    """The World to plan from, plus what could not go into it."""

    namespace: str
    world: domain.World
    bad_wants: tuple[BadWant, ...] = ()
    wakeups: tuple[datetime, ...] = ()
    """Times the snapshot would read differently (e.g. a failed pod's grace period)."""
    skipped: tuple[str, ...] = field(default_factory=tuple)
    """Other objects left out, as messages for the log."""
    pool_reports: tuple[PoolReport, ...] = ()
    pools: Mapping[str, domain.ConcurrencyPool] = field(default_factory=dict)
    """The ConcurrencyPools as written (the World's may be widened for held runs)."""
    grace_jobs: frozenset[str] = frozenset()
    """Batch Jobs that failed before their pod said why (read again after the grace)."""
    held_jobs: frozenset[str] = frozenset()
    """Batch Jobs a queueing system holds back, counted in the widened limits."""
    incremental: bool = False
    """Made for a plan of the kept Planner (see :mod:`incremental`): only what the
    executor reads, and its sweeps of the whole namespace may wait until they are due."""


_T = TypeVar("_T")


class ConversionCache:
    """Domain objects converted from API objects, reused while the resourceVersion holds.

    Converting (and validating) every object on every plan would cost more than the
    plan itself in a big namespace; an object that did not change converts the same.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[str, object]] = {}
        self._seen: set[tuple[str, str, str]] = set()

    def convert(
        self, kind: str, body: Mapping[str, Any], convert: Callable[[Mapping[str, Any]], _T]
    ) -> _T:
        """``convert(body)``, or the cached result for this resourceVersion (errors too)."""
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
        version = str(meta.get("resourceVersion", ""))
        self._seen.add(key)
        cached = self._entries.get(key)
        if cached is not None and version and cached[0] == version:
            value = cached[1]
        else:
            try:
                value = convert(body)
            except codec.BadObject as error:
                value = error
            except Exception as error:  # a converter bug must stay with this object
                log.exception("converting %s %s/%s failed", kind, key[1], key[2])
                value = codec.BadObject(kind, key[2], f"cannot be read: {error!r}"[:500])
            self._entries[key] = (version, value)
        if isinstance(value, codec.BadObject):
            raise value
        return value  # type: ignore[return-value]

    def prune(self, namespace: str) -> None:
        """Forget the objects of ``namespace`` not converted since the last prune."""
        for key in [k for k in self._entries if k[1] == namespace and k not in self._seen]:
            del self._entries[key]
        self._seen = {k for k in self._seen if k[1] != namespace}


def _direct(kind: str, body: Mapping[str, Any], convert: Callable[[Mapping[str, Any]], _T]) -> _T:
    try:
        return convert(body)
    except codec.BadObject:
        raise
    except Exception as error:  # a converter bug must stay with this object
        name = str((body.get("metadata") or {}).get("name", ""))
        raise codec.BadObject(kind, name, f"cannot be read: {error!r}"[:500]) from error


def _outcome(
    job: Mapping[str, Any], pods: list[dict[str, Any]], now: datetime, run: str, run_uid: str
) -> domain.JobOutcome | None:
    """The outcome of one batch Job; one the operator cannot read fails that attempt
    (only if the JobRun controls it: somebody else's Job fails nothing)."""
    try:
        return codec.outcome_from(job, pods, now, run_uid)
    except Exception as error:
        if not controlled_by(job, "JobRun", run_uid):
            return None
        attempt = codec.attempt_of(job)
        name = str((job.get("metadata") or {}).get("name", ""))
        log.exception("reading the outcome of batch Job %s failed", name)
        if attempt is None:
            return None
        if true_conditions(job).keys().isdisjoint(("Complete", "Failed")):
            return domain.JobOutcome(run, attempt, domain.OutcomeKind.RUNNING)
        message = f"UnreadableOutcome: the operator cannot read how {name} ended: {error!r}"
        return domain.JobOutcome(run, attempt, domain.OutcomeKind.FAILED, None, message[:1024])


@dataclass(frozen=True)
class JobReading:
    """What one batch Job says about its attempt."""

    outcome: domain.JobOutcome
    grace: bool
    """It failed, but its pod may still report why: read it again after the grace period."""
    held: str | None
    """The JobDefinition of a Running run whose Job a queueing system holds back."""


def read_job(
    store: WorldStore,
    namespace: str,
    body: Mapping[str, Any],
    now: datetime,
    job_run: Callable[[str], domain.JobRun | None],
) -> JobReading | None:
    """The outcome of the batch Job ``body``, or None when it tells nothing.

    ``job_run`` gives the domain's JobRun by name (the snapshot's, or the planner's).
    """
    run = codec.job_run_of(body)
    run_body = store.get("JobRun", namespace, run) if run else None
    if run is None or run_body is None:
        return None
    run_uid = str(run_body["metadata"].get("uid") or "")
    outcome = _outcome(body, store.pods_of(namespace, run), now, run, run_uid)
    if outcome is None:
        return None
    running = outcome.kind is domain.OutcomeKind.RUNNING
    grace = running and "Failed" in true_conditions(body)
    held = None
    if running and waiting_for_admission(body):
        owner = job_run(run)
        if (
            owner is not None
            and isinstance(owner.state, domain.JobRunRunning)
            and owner.state.attempt == outcome.attempt
        ):
            held = owner.job_definition
    return JobReading(outcome, grace, held)


def release_settled(
    store: WorldStore,
    namespace: str,
    job_run: Callable[[str], domain.JobRun | None],
    names: Iterable[str] | None = None,
) -> list[str]:
    """Forget the deleted finished Jobs (of ``names``, or all) whose run moved on.

    A finished Job deleted before the loop saw it end is kept until its JobRun is no
    longer Running that attempt (then its outcome is recorded). Returns those forgotten.
    """
    finished = store.finished_jobs(namespace)
    live_jobs = store.objects("Job", namespace)
    released = []
    for name in list(finished if names is None else names):
        body = finished.get(name)
        if body is None:
            continue
        run_name = codec.job_run_of(body)
        owner = job_run(run_name or "")
        attempt = codec.attempt_of(body)
        waiting = (
            owner is not None
            and isinstance(owner.state, domain.JobRunRunning)
            and owner.state.attempt == attempt
        )
        if name in live_jobs or not waiting:
            store.release_finished(namespace, name, run_name or "")
            released.append(name)
    return released


def build(
    store: WorldStore,
    namespace: str,
    now: datetime,
    *,
    settings: domain.Settings | None = None,
    cache: ConversionCache | None = None,
) -> Snapshot:
    """The World of ``namespace`` as the store holds it at ``now``."""
    convert = cache.convert if cache is not None else _direct
    skipped: list[str] = []
    job_definitions: dict[str, domain.JobDefinition] = {}
    definition_statuses: dict[str, domain.JobDefinitionStatus] = {}
    for name, body in store.objects("JobDefinition", namespace).items():
        try:
            job_definitions[name] = convert("JobDefinition", body, codec.job_definition_from)
        except codec.BadObject as error:
            skipped.append(str(error))
            continue
        definition_statuses[name] = codec.job_definition_status_from(body)

    pools: dict[str, domain.ConcurrencyPool] = {}
    pool_reports: list[PoolReport] = []
    for name, body in store.objects("ConcurrencyPool", namespace).items():
        try:
            pools[name] = convert("ConcurrencyPool", body, codec.concurrency_pool_from)
        except codec.BadObject as error:
            skipped.append(str(error))  # its members wait, as for a missing pool
            continue
        pool_reports.append(pool_report(name, body))

    wants: dict[str, domain.Want] = {}
    bad: list[BadWant] = []
    for name, body in store.objects("Want", namespace).items():
        try:
            wants[name] = convert("Want", body, codec.want_from)
        except codec.BadObject as error:
            bad.append(bad_want(name, body, error.problem))

    partitions: dict[str, domain.Partition] = {}
    for body in store.objects("Partition", namespace).values():
        try:
            part = convert("Partition", body, codec.partition_from)
        except codec.BadObject as error:
            skipped.append(str(error))
            continue
        partitions[part.ref] = part
    # Pending TaintRequests reach the planner as the Partitions' taint requests (the
    # later one wins); applied ones never do again.
    for body in store.objects("TaintRequest", namespace).values():
        try:
            pending = convert("TaintRequest", body, taint_requests.read).pending
        except codec.BadObject as error:
            skipped.append(str(error))
            continue
        if pending is None:
            continue
        for ref in pending.refs:
            found = partitions.get(ref)
            if found is not None:
                latest = domain.latest_request(found.taint_request, pending.taint)
                partitions[ref] = dataclasses.replace(found, taint_request=latest)

    job_runs: dict[str, domain.JobRun] = {}
    for name, body in store.objects("JobRun", namespace).items():
        try:
            job_runs[name] = convert("JobRun", body, codec.job_run_from)
        except codec.BadObject as error:
            skipped.append(str(error))

    outcomes: dict[tuple[str, int], domain.JobOutcome] = {}
    wakeups: list[datetime] = []
    release_settled(store, namespace, job_runs.get)
    jobs = {**store.finished_jobs(namespace), **store.objects("Job", namespace)}
    held: dict[str, int] = {}  # Running runs a queueing system holds back, by definition
    grace_jobs: set[str] = set()
    held_jobs: set[str] = set()
    for job_name, body in jobs.items():
        reading = read_job(store, namespace, body, now, job_runs.get)
        if reading is None:
            continue
        outcome = reading.outcome
        if reading.grace:
            wakeups.append(now + codec.POD_GRACE)
            grace_jobs.add(job_name)
        if reading.held is not None:
            held[reading.held] = held.get(reading.held, 0) + 1
            held_jobs.add(job_name)
        outcomes[outcome.job_run, outcome.attempt] = outcome

    if cache is not None:
        cache.prune(namespace)

    for message in skipped:
        log.warning("left out of planning: %s", message)
    written_definitions = dict(job_definitions)
    world = domain.World(
        job_definitions=job_definitions,
        wants=wants,
        partitions=partitions,
        job_runs=job_runs,
        outcomes=outcomes,
        settings=widen_limits(job_definitions, settings or domain.Settings(), held),
        concurrency_pools=widen_pools(pools, written_definitions, held),
        job_definition_statuses=definition_statuses,
    )
    return Snapshot(
        namespace,
        world,
        tuple(bad),
        tuple(wakeups),
        tuple(skipped),
        tuple(pool_reports),
        pools,
        frozenset(grace_jobs),
        frozenset(held_jobs),
    )


def pool_report(name: str, body: Mapping[str, Any]) -> PoolReport:
    """What the ConcurrencyPool ``body``'s status says now."""
    status = body.get("status") or {}
    ready: dict[str, object] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    return PoolReport(
        name,
        int((body.get("metadata") or {}).get("generation") or 1),
        status.get("observedGeneration"),
        domain.PoolUsage(int(status.get("running") or 0), int(status.get("waiting") or 0)),
        (str(ready.get("status", "")), str(ready.get("reason", "")), str(ready.get("message", ""))),
        str(ready["lastTransitionTime"]) if ready.get("lastTransitionTime") else None,
    )


def pool_usage(
    store: WorldStore, namespace: str, job_definitions: Mapping[str, domain.JobDefinition]
) -> dict[str, domain.PoolUsage]:
    """Runs Running and Queued per pool, as the store holds the JobRuns now.

    A Running run whose batch Job a queueing system holds back is neither: it does not
    count against the pool, and it is not waiting for the pool either.
    """
    pool_of = {name: jd.concurrency_pool for name, jd in job_definitions.items()}
    counts: dict[tuple[str, str], int] = {}
    for (job_definition, state, admission), n in store.job_run_tally(namespace).items():
        key = (job_definition, WAITING if admission == WAITING else state)
        counts[key] = counts.get(key, 0) + n
    return domain.pool_usage(counts, pool_of)
