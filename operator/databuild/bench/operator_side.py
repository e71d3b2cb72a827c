"""The operator's side of a scenario: apply Wants, watch them (and the Jobs) until done.

The operator runs as a separate process (as users run it); this module only talks to
the API server, exactly like a user or a GitOps pipeline would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from databuild.adapters.jobs import ENV_PARTITIONS
from databuild.adapters.kinds import KINDS
from databuild.adapters.labels import JOB_DEFINITION_LABEL
from databuild.adapters.resources import API_VERSION
from databuild.bench.baseline import BASELINE_LABEL, BuildFailed, BuildTimes, baseline_job
from databuild.bench.dags import Dag
from databuild.bench.kube import ApiError, Kube, Watcher, job_finished

__all__ = [
    "apply_job_definitions",
    "baseline_latency",
    "build_with_operator",
    "job_partitions",
    "live_partitions",
    "operator_latency",
    "wait_for_wants",
]


#: The JobDefinition of the Want that warms an operator up before it is timed.
WARMUP_JOB = "bench-warmup"


def job_partitions(job: Mapping[str, Any]) -> list[str]:
    """The partitions a batch Job builds (``DATABUILD_PARTITIONS`` of its first container)."""
    spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in spec.get("containers") or []:
        for var in container.get("env") or []:
            if var.get("name") == ENV_PARTITIONS:
                try:
                    refs = json.loads(var.get("value") or "[]")
                except ValueError:
                    return []
                return [str(r) for r in refs] if isinstance(refs, list) else []
    return []


def _path(kind: str, namespace: str) -> str:
    return KINDS[kind].collection(namespace)


async def apply_job_definitions(kube: Kube, namespace: str, dag: Dag) -> None:
    """Create the graph's JobDefinitions in ``namespace`` (existing ones are kept)."""
    for job in dag.jobs:
        try:
            await kube.request("POST", _path("JobDefinition", namespace), job.manifest())
        except ApiError as error:
            if error.status != 409:
                raise


def _want_state(want: Mapping[str, Any]) -> str:
    return str((want.get("status") or {}).get("state") or "")


async def wait_for_wants(
    kube: Kube,
    namespace: str,
    wants: Sequence[Mapping[str, Any]],
    *,
    timeout: float,
    what: str,
    times: BuildTimes | None = None,
) -> BuildTimes:
    """Create ``wants`` and wait until all are Successful; Jobs' times go into ``times``.

    ``times.started`` is set just before the first Want is created, ``times.finished``
    when the last one is seen Successful.
    """
    times = times or BuildTimes()
    names = {str(w["metadata"]["name"]) for w in wants}
    successful: set[str] = set()
    states: dict[str, str] = {}
    done = asyncio.Event()
    failures: list[str] = []

    def on_want(kind: str, want: dict[str, Any]) -> None:
        name = str(want["metadata"]["name"])
        if name not in names or kind == "DELETED":
            return
        state = _want_state(want)
        states[name] = state
        if state == "Successful" and name not in successful:
            successful.add(name)
            if successful == names:
                times.finished = time.monotonic()
                done.set()
        elif state in ("Failed", "Expired"):
            message = (want.get("status") or {}).get("message") or ""
            failures.append(f"Want {name} is {state}: {message}")
            done.set()

    def on_job(kind: str, job: dict[str, Any]) -> None:
        if kind == "DELETED":
            return
        name = str(job["metadata"]["name"])
        now = time.monotonic()
        times.jobs_created.setdefault(name, now)
        if job_finished(job) is not None:
            times.jobs_completed.setdefault(name, now)

    watchers = [
        Watcher(kube, "Want", namespace, on_want).start(),
        Watcher(
            kube,
            "Job",
            namespace,
            on_job,
            label_selector=f"!{BASELINE_LABEL},{JOB_DEFINITION_LABEL}!={WARMUP_JOB}",
        ).start(),
    ]
    try:
        for watcher in watchers:
            await asyncio.wait_for(watcher.ready.wait(), 60)
        times.started = time.monotonic()
        for want in wants:
            await kube.request("POST", _path("Want", namespace), dict(want))
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            by_state: dict[str, int] = {}
            for state in states.values():
                by_state[state or "(no status)"] = by_state.get(state or "(no status)", 0) + 1
            raise BuildFailed(
                f"{what}: {len(successful)}/{len(names)} Wants Successful after {timeout:.0f}s "
                f"(Want states: {by_state or 'none seen'}; {len(times.jobs_completed)} Jobs "
                "completed)"
            ) from None
        if failures:
            raise BuildFailed(f"{what}: {failures[0]}")
        return times
    finally:
        for watcher in watchers:
            await watcher.stop()


async def build_with_operator(
    kube: Kube, namespace: str, dag: Dag, *, timeout: float, prefix: str | None = None
) -> BuildTimes:
    """Apply ``dag``'s Wants (its JobDefinitions must exist) and wait until built."""
    return await wait_for_wants(
        kube, namespace, dag.want_manifests(prefix), timeout=timeout, what=f"operator {dag.name}"
    )


async def live_partitions(kube: Kube, namespace: str, refs: Sequence[str]) -> int:
    """How many of ``refs`` have a Partition in state Live."""
    items = (await kube.list("Partition", namespace)).items
    live = {
        str((p.get("spec") or {}).get("ref"))
        for p in items
        if (p.get("status") or {}).get("state") == "Live"
    }
    return len(live.intersection(refs))


class _JobSightings:
    """Times at which Jobs for given partitions were first seen on a watch."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    def event(self, ref: str) -> asyncio.Event:
        return self.events.setdefault(ref, asyncio.Event())

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        if kind != "ADDED":
            return
        now = time.monotonic()
        for ref in job_partitions(job):
            if ref not in self.seen:
                self.seen[ref] = now
                self.event(ref).set()


async def operator_latency(
    kube: Kube, namespace: str, dag: Dag, *, gap: float = 0.2, timeout: float = 60.0
) -> list[float]:
    """Seconds from creating a one-partition Want to its batch Job, for each node in turn."""
    sightings = _JobSightings()
    watcher = Watcher(kube, "Job", namespace, sightings.on_job).start()
    samples: list[float] = []
    try:
        await asyncio.wait_for(watcher.ready.wait(), 60)
        for i, node in enumerate(dag.nodes):
            want = {
                "apiVersion": API_VERSION,
                "kind": "Want",
                "metadata": {"name": f"latency-{i:04d}"},
                "spec": {"partitions": [node.ref]},
            }
            started = time.monotonic()
            await kube.request("POST", _path("Want", namespace), want)
            try:
                await asyncio.wait_for(sightings.event(node.ref).wait(), timeout)
            except TimeoutError:
                raise BuildFailed(
                    f"operator latency: no batch Job for {node.ref} within {timeout:.0f}s"
                ) from None
            samples.append(sightings.seen[node.ref] - started)
            await asyncio.sleep(gap)
        return samples
    finally:
        await watcher.stop()


async def baseline_latency(
    kube: Kube, namespace: str, dag: Dag, *, gap: float = 0.2, timeout: float = 60.0
) -> list[float]:
    """Seconds from deciding to build a node to seeing its Job on the watch, in turn."""
    sightings = _JobSightings()
    watcher = Watcher(kube, "Job", namespace, sightings.on_job).start()
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    samples: list[float] = []
    try:
        await asyncio.wait_for(watcher.ready.wait(), 60)
        for node in dag.nodes:
            started = time.monotonic()
            await kube.request("POST", path, baseline_job(node, namespace))
            try:
                await asyncio.wait_for(sightings.event(node.ref).wait(), timeout)
            except TimeoutError:
                raise BuildFailed(f"baseline latency: Job for {node.ref} not seen") from None
            samples.append(sightings.seen[node.ref] - started)
            await asyncio.sleep(gap)
        return samples
    finally:
        await watcher.stop()
