"""The incremental path of the orchestration loop: one Planner per namespace, kept.

A full pass reads the whole namespace into a World (:func:`snapshot.build`) and plans
it; at 100,000 partitions that is seconds. Most changes are smaller: a batch Job or its
pod moved on. After a full pass whose plan was applied exactly (no conflict, error,
skipped or deferred write, still leading), the loop keeps the :class:`domain.Planner`
that made it, which believes the world is as its actions left it. When the next journal
(:class:`~databuild.operator.store.Journal`) holds only batch Job and pod changes and
echoes of the operator's own writes, those Jobs' outcomes are read as the snapshot reads
them and fed to the Planner, which plans around them alone. Anything else makes the loop
drop the Planner and take the full path again.

What the full snapshot gives besides the World is kept or refreshed here: the
JobDefinitions, ConcurrencyPools and unreadable Wants cannot change without a change from
outside (which forces the full path), so the kept snapshot's stay true; the pools' and
unreadable Wants' status reports are re-read from the store, because the executor
compares them with what it would write (the JobDefinitions' statuses are the Planner's
own decisions). Objects left out of planning are only logged by the full path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from databuild import domain
from databuild.adapters import codec
from databuild.adapters.jobs import job_name_of, waiting_for_admission
from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.operator.snapshot import (
    ConversionCache,
    Snapshot,
    bad_want,
    pool_report,
    read_job,
    release_settled,
)
from databuild.operator.store import Journal, WorldStore

log = logging.getLogger(__name__)

__all__ = ["FOLLOWED_KINDS", "IncrementalPlanners"]

FOLLOWED_KINDS = frozenset({"Job", "Pod"})
"""The kinds whose outside changes the kept Planner follows; any other needs a full pass."""

# The converters snapshot.build uses for the kinds the executor writes on every build.
_CONVERTERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "Want": codec.want_from,
    "JobRun": codec.job_run_from,
    "Partition": codec.partition_from,
}


@dataclass
class _Kept:
    """One namespace's Planner and what feeding it needs."""

    planner: domain.Planner
    snapshot: Snapshot
    """What the executor needs of the full snapshot the Planner was built from."""
    graces: set[str] = field(default_factory=set)
    """Jobs that failed before their pod said why: read again on every pass."""
    held: set[str] = field(default_factory=set)
    """Jobs a queueing system holds back: they widen the limits the full snapshot
    computes, so a change to one (or a Job becoming held) takes the full path."""


class IncrementalPlanners:
    """The kept Planner of every namespace whose last pass went exactly as planned."""

    def __init__(self, cache: ConversionCache) -> None:
        self.cache = cache
        self._kept: dict[str, _Kept] = {}

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._kept

    def keep(self, snap: Snapshot, planner: domain.Planner) -> None:
        """Keep ``planner``, made by a full pass over ``snap`` whose plan was applied."""
        world = snap.world
        # Only what the executor reads later; the partitions, runs and outcomes are the
        # Planner's to keep.
        slim = domain.World(
            job_definitions=world.job_definitions,
            settings=world.settings,
            concurrency_pools=world.concurrency_pools,
        )
        kept = _Kept(
            planner,
            dataclasses.replace(snap, world=slim, wakeups=(), skipped=()),
            set(snap.grace_jobs),
            set(snap.held_jobs),
        )
        self._kept[snap.namespace] = kept

    def drop(self, namespace: str) -> None:
        """Forget ``namespace``'s Planner: its next pass is a full one."""
        self._kept.pop(namespace, None)

    def clear(self) -> None:
        """Forget every Planner (leadership changed hands)."""
        self._kept.clear()

    def prepare(
        self, store: WorldStore, namespace: str, journal: Journal, now: datetime
    ) -> domain.Planner | None:
        """The kept Planner, fed with ``journal``'s batch Jobs; None: plan in full.

        Returns None (and drops the Planner) when the journal holds a change from outside
        to any other kind (or overflowed), or a change to a Job a queueing system holds
        back.
        """
        kept = self._kept.get(namespace)
        if kept is None:
            return None
        surprises = journal.external_kinds() - FOLLOWED_KINDS
        if surprises or journal.overflowed:
            log.debug("namespace %s: %s changed, planning in full", namespace, sorted(surprises))
            self.drop(namespace)
            return None
        names = set(kept.graces)
        for name in journal.names("Job"):
            # The operator's own creates and patches are what the Planner assumed; its
            # own deletes are not (the Planner keeps an outcome until told otherwise).
            if journal.changes["Job", name] or store.get("Job", namespace, name) is None:
                names.add(name)
        for pod in journal.names("Pod"):
            body = store.get("Pod", namespace, pod) or journal.deleted.get(("Pod", pod))
            job = None if body is None else _job_of_pod(body)
            if journal.changes["Pod", pod] and job is not None:
                names.add(job)
        job_run = self._job_run(store, namespace)
        release_settled(store, namespace, job_run)
        finished = store.finished_jobs(namespace)
        for name in sorted(names):
            body = store.get("Job", namespace, name) or finished.get(name)
            if name in kept.held or (body is not None and waiting_for_admission(body)):
                self.drop(namespace)
                return None
            reading = None if body is None else read_job(store, namespace, body, now, job_run)
            if reading is None:
                # Gone, or tells nothing (not ours): an outcome it gave no longer counts.
                kept.graces.discard(name)
                gone = body or journal.deleted.get(("Job", name))
                key = None if gone is None else _key_of(gone)
                if key is not None:
                    kept.planner.forget_outcome(*key)
                continue
            kept.planner.observe_outcome(reading.outcome)
            if reading.grace:
                kept.graces.add(name)
            else:
                kept.graces.discard(name)
        self._warm(store, namespace, journal)
        return kept.planner

    def _warm(self, store: WorldStore, namespace: str, journal: Journal) -> None:
        """Convert the objects the last pass wrote, as a full pass would have.

        The next full pass then finds them in the conversion cache: without this it
        converts every object changed since the last full pass at once (at 10,000
        partitions most of a 1.8 s pass).
        """
        for (kind, name), outside in journal.changes.items():
            convert = _CONVERTERS.get(kind)
            body = None if convert is None else store.get(kind, namespace, name)
            if convert is not None and body is not None and not outside:
                with contextlib.suppress(codec.BadObject):
                    self.cache.convert(kind, body, convert)

    def snapshot(
        self, store: WorldStore, namespace: str, plan: domain.Plan, now: datetime
    ) -> Snapshot:
        """What the executor needs to apply ``plan``, made by the kept Planner.

        Its World holds only what the executor reads: the JobRuns and Partitions the
        plan moves, as they were before it (the store holds the echoes of the last
        pass's writes, which the Planner counted on), the outcomes and JobDefinitions.
        """
        kept = self._kept[namespace]
        runs: dict[str, domain.JobRun] = {}
        parts: dict[str, domain.Partition] = {}
        outcomes: dict[tuple[str, int], domain.JobOutcome] = {}
        job_run = self._job_run(store, namespace)
        finished = store.finished_jobs(namespace)
        for action in plan.actions:
            if isinstance(action, domain.TransitionJobRun) and action.name not in runs:
                run = job_run(action.name)
                if run is None:
                    continue
                runs[action.name] = run
                if run.state.attempt < 1:
                    continue  # never started (a waiting run made ready): no attempt ended
                # The exit code of the attempt that ended goes into the run's status.
                job = domain.batch_job_name(run.name, run.state.attempt)
                body = store.get("Job", namespace, job) or finished.get(job)
                reading = None if body is None else read_job(store, namespace, body, now, job_run)
                if reading is not None:
                    outcomes[run.name, run.state.attempt] = reading.outcome
            elif isinstance(action, domain.TransitionPartition) and action.ref not in parts:
                body = store.get("Partition", namespace, action.name)
                # One that cannot be read is left out of the full snapshot too.
                if body is not None:
                    with contextlib.suppress(codec.BadObject):
                        parts[action.ref] = self.cache.convert(
                            "Partition", body, codec.partition_from
                        )
        full = kept.snapshot
        world = domain.World(
            job_definitions=full.world.job_definitions,
            partitions=MappingProxyType(parts),
            job_runs=MappingProxyType(runs),
            outcomes=MappingProxyType(outcomes),
            settings=full.world.settings,
            concurrency_pools=full.world.concurrency_pools,
        )
        bad = tuple(
            bad_want(b.name, body, b.problem, reason=b.reason)
            for b in full.bad_wants
            if (body := store.get("Want", namespace, b.name)) is not None
        )
        pools = tuple(
            pool_report(r.name, body)
            for r in full.pool_reports
            if (body := store.get("ConcurrencyPool", namespace, r.name)) is not None
        )
        wakeups = (now + codec.POD_GRACE,) if kept.graces else ()
        return Snapshot(
            namespace,
            world,
            bad,
            wakeups,
            (),
            pools,
            full.pools,
            incremental=True,
        )

    def _job_run(self, store: WorldStore, namespace: str) -> Callable[[str], domain.JobRun | None]:
        """JobRuns by name as the store holds them (the echoes of the Planner's writes)."""

        def job_run(name: str) -> domain.JobRun | None:
            body = store.get("JobRun", namespace, name)
            if body is None:
                return None
            try:
                return self.cache.convert("JobRun", body, codec.job_run_from)
            except codec.BadObject:
                return None

        return job_run


def _key_of(job: Mapping[str, Any]) -> tuple[str, int] | None:
    """The (JobRun, attempt) a batch Job of the operator's is named for, or None."""
    run, attempt = codec.job_run_of(job), codec.attempt_of(job)
    if run is None or attempt is None:
        return None
    if (job.get("metadata") or {}).get("name") != domain.batch_job_name(run, attempt):
        return None  # not the operator's: it never gave an outcome
    return (run, attempt)


def _job_of_pod(pod: Mapping[str, Any]) -> str | None:
    """The batch Job a pod belongs to: the job controller's label, or the operator's."""
    name = job_name_of(pod)
    if name is not None:
        return name
    run = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_RUN_LABEL)
    attempt = codec.attempt_of(pod)
    if not run or attempt is None:
        return None
    return domain.batch_job_name(str(run), attempt)
