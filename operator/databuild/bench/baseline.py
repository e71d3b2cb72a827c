"""The baseline: a perfect orchestrator with zero overhead, in a few lines of asyncio.

It creates the same batch Jobs the operator would (rendered by the same code from the
same pod template), each the moment the Jobs of its inputs completed, as seen on one
watch of the namespace's Jobs. No custom resources, no event log, no planning: the wall
time it needs is what the control plane (job controller, scheduler, kwok) allows here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from databuild.adapters.jobs import JobRunIdentity, render_job
from databuild.adapters.resources import JobDefinitionSpec
from databuild.bench.dags import POD_TEMPLATE, Dag, Node
from databuild.bench.kube import ApiError, Kube, Watcher, job_finished
from databuild.domain.refs import batch_job_name as render_batch_job_name
from databuild.domain.refs import jobrun_name

__all__ = ["BuildFailed", "BuildTimes", "baseline_job", "job_name", "run_baseline"]

#: Label on the baseline's Jobs (their pods are told apart from the operator's by it).
BASELINE_LABEL = "bench.databuild.dev/side"


class BuildFailed(RuntimeError):
    """A benchmark build did not finish: a Job failed, or time ran out."""


@dataclass
class BuildTimes:
    """When things happened in one build of a graph (``time.monotonic()`` seconds)."""

    started: float = 0.0
    finished: float = 0.0
    jobs_created: dict[str, float] = field(default_factory=dict)
    """Job name -> when it was first seen (create response or watch)."""
    jobs_completed: dict[str, float] = field(default_factory=dict)
    """Job name -> when its completion was seen on the watch."""

    @property
    def wall_seconds(self) -> float:
        """From the first request to the last completion."""
        return self.finished - self.started

    @property
    def first_job_seconds(self) -> float | None:
        """From the start to the first Job."""
        if not self.jobs_created:
            return None
        return min(self.jobs_created.values()) - self.started

    @property
    def last_created_seconds(self) -> float | None:
        """From the start to the last Job's creation."""
        if not self.jobs_created:
            return None
        return max(self.jobs_created.values()) - self.started

    @property
    def last_job_seconds(self) -> float | None:
        """From the start to the last Job completion."""
        if not self.jobs_completed:
            return None
        return max(self.jobs_completed.values()) - self.started


def job_name(node: Node) -> str:
    """The batch Job name the operator gives the first attempt of ``node``'s build."""
    return render_batch_job_name(jobrun_name(node.job, [node.ref], 1), 1)


def baseline_job(
    node: Node, namespace: str, template: Mapping[str, Any] = POD_TEMPLATE
) -> dict[str, Any]:
    """The batch Job for ``node``: the operator's rendering, without the JobRun owner."""
    run = JobRunIdentity(
        name=jobrun_name(node.job, [node.ref], 1),
        namespace=namespace,
        uid="",
        job_definition=node.job,
    )
    spec = JobDefinitionSpec(outputs=[node.ref], template=dict(template))
    job = render_job(
        run=run,
        definition=spec,
        partitions=[node.ref],
        inputs=list(node.inputs),
        captures=node.captures,
        attempt=1,
    )
    # No JobRun exists: an owner reference to one would make the garbage collector
    # delete the Job at once.
    del job["metadata"]["ownerReferences"]
    # Nor is there an operator to record the outcome and let the Job go: its outcome
    # finalizer would hold the Job, and the namespace's deletion, for ever.
    job["metadata"].pop("finalizers", None)
    job["metadata"]["labels"][BASELINE_LABEL] = "baseline"
    return job


async def run_baseline(
    kube: Kube,
    namespace: str,
    dag: Dag,
    *,
    timeout: float,
    concurrency: int = 32,
    template: Mapping[str, Any] = POD_TEMPLATE,
) -> BuildTimes:
    """Build every node of ``dag`` in ``namespace`` as batch Jobs, upstream first."""
    times = BuildTimes()
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    by_job = {job_name(n): n for n in dag.nodes}
    waiting = {n.ref: len(n.inputs) for n in dag.nodes}
    dependents: dict[str, list[Node]] = {}
    for node in dag.nodes:
        for ref in node.inputs:
            dependents.setdefault(ref, []).append(node)
    done = asyncio.Event()
    failures: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    creations: set[asyncio.Task[None]] = set()

    async def create(node: Node) -> None:
        async with gate:
            try:
                await kube.request("POST", jobs_path, baseline_job(node, namespace, template))
            except ApiError as error:
                if error.status != 409:
                    failures.append(str(error))
                    done.set()
                    return
            times.jobs_created.setdefault(job_name(node), time.monotonic())

    def launch(node: Node) -> None:
        task = asyncio.create_task(create(node))
        creations.add(task)
        task.add_done_callback(creations.discard)

    def on_job(kind: str, job: dict[str, Any]) -> None:
        name = str(job["metadata"]["name"])
        node = by_job.get(name)
        if node is None or kind == "DELETED":
            return
        now = time.monotonic()
        times.jobs_created.setdefault(name, now)
        outcome = job_finished(job)
        if outcome is None or name in times.jobs_completed:
            return
        if outcome == "Failed":
            failures.append(f"batch Job {name} failed")
            done.set()
            return
        times.jobs_completed[name] = now
        for dependent in dependents.get(node.ref, ()):
            waiting[dependent.ref] -= 1
            if waiting[dependent.ref] == 0:
                launch(dependent)
        if len(times.jobs_completed) == len(by_job):
            times.finished = now
            done.set()

    watcher = Watcher(kube, "Job", namespace, on_job, label_selector=f"{BASELINE_LABEL}=baseline")
    watcher.start()
    try:
        await asyncio.wait_for(watcher.ready.wait(), 60)
        times.started = time.monotonic()
        for node in dag.nodes:
            if not node.inputs:
                launch(node)
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            raise BuildFailed(
                f"baseline {dag.name}: {len(times.jobs_completed)}/{len(by_job)} Jobs "
                f"completed after {timeout:.0f}s"
            ) from None
        if failures:
            raise BuildFailed(f"baseline {dag.name}: {failures[0]}")
        return times
    finally:
        await watcher.stop()
        for task in list(creations):
            task.cancel()
