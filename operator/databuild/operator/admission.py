"""Admission: a Running JobRun whose batch Job a queueing system keeps suspended says so.

A Job for a queue (Kueue and the like) is created suspended and runs once the queue
admits it. Until then the JobRun is Running in the state machine (its Job exists) but
nothing runs; ``status.admission`` tells people which it is: ``WaitingForAdmission``
while the current Job is suspended, ``Admitted`` once it was let run. No state
transition is involved, so this is a status field beside the state, written by this
small observer only when it changes. Such runs do not count against
``maxConcurrentRuns`` (:func:`widen_limits`, applied when the world is read).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Mapping

from databuild import domain
from databuild.adapters.gateway import Gateway, GatewayError
from databuild.adapters.jobs import waiting_for_admission
from databuild.operator.store import WorldStore

log = logging.getLogger("databuild.operator.admission")

WAITING = "WaitingForAdmission"
ADMITTED = "Admitted"


def widen_limits(
    job_definitions: dict[str, domain.JobDefinition],
    settings: domain.Settings,
    held: Mapping[str, int],
) -> domain.Settings:
    """Runs a queueing system holds back do not count against concurrency limits.

    ``held`` counts, by JobDefinition, the Running runs whose batch Job is suspended.
    The planner counts every Running run; raising each limit by the runs held back
    leaves exactly ``limit`` runs that really run. Updates ``job_definitions`` in place
    and returns the namespace's settings, widened the same way.
    """
    for name, count in held.items():
        jd = job_definitions.get(name)
        if jd is not None and jd.max_concurrent_runs is not None and count:
            job_definitions[name] = dataclasses.replace(
                jd, max_concurrent_runs=jd.max_concurrent_runs + count
            )
    total = sum(held.values())
    if settings.max_concurrent_runs is None or not total:
        return settings
    return dataclasses.replace(settings, max_concurrent_runs=settings.max_concurrent_runs + total)


def widen_pools(
    pools: Mapping[str, domain.ConcurrencyPool],
    job_definitions: Mapping[str, domain.JobDefinition],
    held: Mapping[str, int],
) -> dict[str, domain.ConcurrencyPool]:
    """The pools, each widened by its members' runs a queueing system holds back.

    As for :func:`widen_limits`: such runs do not count against a pool's limit.
    """
    extra: dict[str, int] = {}
    for name, count in held.items():
        jd = job_definitions.get(name)
        if jd is not None and jd.concurrency_pool is not None:
            extra[jd.concurrency_pool] = extra.get(jd.concurrency_pool, 0) + count
    return {
        name: dataclasses.replace(pool, max_concurrent_runs=pool.max_concurrent_runs + extra[name])
        if extra.get(name)
        else pool
        for name, pool in pools.items()
    }


class AdmissionReporter:
    """Keeps ``status.admission`` of Running JobRuns in line with their batch Jobs."""

    def __init__(
        self, gateway: Gateway, store: WorldStore, *, is_leading: Callable[[], bool]
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.is_leading = is_leading

    async def run(self, ready: asyncio.Event | None = None, poll_seconds: float = 0.5) -> None:
        """Look again whenever the store changed (a Job resumed, a run started)."""
        if ready is not None:
            await ready.wait()
        seen = -1
        while True:
            if self.is_leading() and self.store.version != seen:
                seen = self.store.version
                await self.reconcile_all()
            await asyncio.sleep(poll_seconds)

    async def reconcile_all(self) -> int:
        """One pass over every namespace; the number of status writes."""
        writes = 0
        for namespace in self.store.namespaces():
            for name, run in list(self.store.objects("JobRun", namespace).items()):
                status = run.get("status") or {}
                if status.get("state") != "Running" or not status.get("jobName"):
                    continue
                job = self.store.get("Job", namespace, str(status["jobName"]))
                if job is None:
                    continue
                current = status.get("admission")
                if waiting_for_admission(job):
                    wanted: str | None = WAITING
                elif current is not None:
                    wanted = ADMITTED
                else:
                    continue  # never held back: nothing to say
                if wanted == current or not self.is_leading():
                    continue
                try:
                    written = await self.gateway.patch_status(
                        "JobRun",
                        namespace,
                        name,
                        {"admission": wanted},
                        resource_version=(run.get("metadata") or {}).get("resourceVersion"),
                    )
                except GatewayError as error:
                    # A Conflict means the planner wrote first: the next pass sees it.
                    log.debug("JobRun %s/%s admission not written: %s", namespace, name, error)
                    continue
                self.store.put("JobRun", written)
                writes += 1
        return writes
