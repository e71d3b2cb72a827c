"""An in-memory cluster of real model objects, and a small namespace to render."""

from __future__ import annotations

import io
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.resources import JobRun, Partition, TaintRequest, Want
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Attempt, Snapshot
from databuild.cli.main import run
from databuild.cli.podlogs import RunPod
from databuild.domain import PartitionRef, partition_name

NOW = datetime(2025, 1, 2, 12, 0, 0, tzinfo=UTC)
NS = "data"


def ago(seconds: float) -> str:
    """An RFC 3339 time `seconds` before NOW."""
    return (NOW - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def meta(name: str, created: float, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "creationTimestamp": ago(created),
        **extra,
    }


def want(
    name: str,
    refs: list[str],
    state: str | None,
    created: float = 600,
    *,
    source: str | None = None,
    **status: Any,
) -> Want:
    spec: dict[str, Any] = {"partitions": refs}
    if source:
        spec["source"] = {"jobRun": source}
    body: dict[str, Any] = {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Want",
        "metadata": meta(name, created),
        "spec": spec,
        "status": {"state": state, **status} if state else {},
    }
    return Want.model_validate(body)


def partition(
    ref: str,
    state: str,
    job_run: str | None = None,
    inputs: list[str] | None = None,
    *,
    live: float | None = None,
    created: float = 590,
) -> Partition:
    status: dict[str, Any] = {"state": state}
    if job_run:
        status["jobRun"] = job_run
    if inputs is not None:
        status["inputs"] = inputs
    if live is not None:
        status["liveSince"] = ago(live)
    return Partition.model_validate(
        {
            "metadata": meta(partition_name(PartitionRef(ref)), created),
            "spec": {"ref": ref},
            "status": status,
        }
    )


def job_run(
    name: str,
    job: str,
    outputs: list[str],
    inputs: list[str],
    state: str,
    *,
    created: float = 580,
    **status: Any,
) -> JobRun:
    return JobRun.model_validate(
        {
            "metadata": meta(name, created),
            "spec": {"jobDefinition": job, "partitions": outputs, "inputs": inputs},
            "status": {"state": state, **status},
        }
    )


def sample() -> dict[str, Any]:
    """raw <- clean <- daily for two dates; the second daily run is on its second attempt."""
    r1, r2 = "raw/date=2025-01-01", "raw/date=2025-01-02"
    c1, c2 = "clean/date=2025-01-01", "clean/date=2025-01-02"
    d1, d2 = "daily/date=2025-01-01", "daily/date=2025-01-02"
    wants = [
        want("daily-jan", [d1, d2], "Building", progress="1/2"),
        want("raw-only", [r1], "Successful", created=900, progress="1/1"),
        want("derived-1", [r2], "Successful", created=500, source="clean-2"),
    ]
    parts = [
        partition(r1, "Live", "raw-1", [], live=560),
        partition(r2, "Live", "raw-2", [], live=550),
        partition(c1, "Live", "clean-1", [r1], live=540),
        partition(c2, "Live", "clean-2", [r2], live=530),
        partition(d1, "Live", "daily-1", [c1, r1], live=500),
        partition(d2, "Building", "daily-2"),
    ]
    runs = [
        job_run(
            "raw-1",
            "raw",
            [r1],
            [],
            "Succeeded",
            attempt=1,
            startedAt=ago(570),
            finishedAt=ago(560),
        ),
        job_run(
            "raw-2",
            "raw",
            [r2],
            [],
            "Succeeded",
            attempt=1,
            startedAt=ago(560),
            finishedAt=ago(550),
        ),
        job_run(
            "clean-1",
            "clean",
            [c1],
            [r1],
            "Succeeded",
            attempt=1,
            startedAt=ago(550),
            finishedAt=ago(540),
        ),
        job_run(
            "clean-2",
            "clean",
            [c2],
            [r2],
            "Succeeded",
            attempt=1,
            startedAt=ago(540),
            finishedAt=ago(530),
        ),
        job_run(
            "daily-1",
            "daily",
            [d1],
            [c1, r1],
            "Succeeded",
            attempt=1,
            startedAt=ago(520),
            finishedAt=ago(500),
        ),
        job_run(
            "daily-2",
            "daily",
            [d2],
            [c2, r2],
            "Running",
            attempt=2,
            failedAttempts=1,
            startedAt=ago(60),
        ),
    ]
    attempts = {
        "daily-2": (
            Attempt(
                "daily-2-1",
                1,
                "Failed",
                NOW - timedelta(seconds=60),
                NOW - timedelta(seconds=50),
                1,
                "Error: exit 1",
            ),
            Attempt("daily-2-2", 2, "Running", NOW - timedelta(seconds=20)),
        )
    }
    return {"wants": wants, "partitions": parts, "job_runs": runs, "attempts": attempts}


@dataclass
class FakeCluster:
    """:class:`databuild.cli.kube.Cluster` in memory; records what was written."""

    wants: dict[str, Want] = field(default_factory=dict)
    partitions: dict[str, Partition] = field(default_factory=dict)
    job_runs: dict[str, JobRun] = field(default_factory=dict)
    attempts: dict[str, tuple[Attempt, ...]] = field(default_factory=dict)
    namespace: str = NS
    created: list[dict[str, Any]] = field(default_factory=list)
    taint_requests: dict[str, TaintRequest] = field(default_factory=dict)
    on_taint_request: Callable[[FakeCluster, str], None] | None = None
    """Called on each read of a TaintRequest (e.g. to play the operator applying it)."""
    on_snapshot: Callable[[FakeCluster], None] | None = None
    snapshots: int = 0
    logs: FakePodLogs = field(default_factory=lambda: FakePodLogs())  # noqa: PLW0108 (defined below)
    followed: list[list[str] | None] = field(default_factory=list)
    neighbours: dict[str, FakeCluster] = field(default_factory=dict)
    """Other namespaces, for -A."""

    @classmethod
    def of(cls, world: Mapping[str, Any]) -> FakeCluster:
        return cls(
            wants={w.metadata.name: w for w in world["wants"]},
            partitions={p.spec.ref: p for p in world["partitions"]},
            job_runs={r.metadata.name: r for r in world["job_runs"]},
            attempts=dict(world["attempts"]),
        )

    def snapshot(self, *, attempts: bool = False) -> Snapshot:
        self.snapshots += 1
        if self.on_snapshot is not None:
            self.on_snapshot(self)
        return Snapshot(
            self.namespace,
            NOW,
            dict(self.wants),
            dict(self.partitions),
            dict(self.job_runs),
            dict(self.attempts) if attempts else {},
        )

    def get_want(self, name: str) -> Want:
        if name not in self.wants:
            raise CliError(f"Want {name!r}: not found", ExitCode.NOT_FOUND)
        return self.wants[name]

    def get_partition(self, ref: str) -> Partition:
        if ref not in self.partitions:
            raise CliError(f"Partition for {ref!r}: not found", ExitCode.NOT_FOUND)
        return self.partitions[ref]

    def create_want(self, manifest: Mapping[str, Any]) -> Want:
        self.created.append(dict(manifest))
        body = {**manifest, "metadata": dict(manifest["metadata"])}
        md = body["metadata"]
        if "name" not in md:
            md["name"] = f"{md.pop('generateName')}abcde"
        md.update(namespace=NS, creationTimestamp=ago(0))
        created = Want.model_validate(body)
        self.wants[created.metadata.name] = created
        return created

    def get_job_run(self, name: str) -> JobRun:
        if self.on_snapshot is not None:
            self.on_snapshot(self)
        if name not in self.job_runs:
            raise CliError(f"JobRun {name!r}: not found", ExitCode.NOT_FOUND)
        return self.job_runs[name]

    def namespaces(self) -> list[str]:
        others = sorted(self.neighbours)
        return sorted({self.namespace, *others} if self.wants else set(others))

    def in_namespace(self, namespace: str) -> FakeCluster:
        return self if namespace == self.namespace else self.neighbours[namespace]

    def pod_logs(self) -> FakePodLogs:
        return self.logs

    def follow(self, wants: list[str] | None, tick: float) -> Generator[Snapshot, None, None]:
        """A fresh snapshot per step: the fake's "watch" is one change per snapshot."""
        self.followed.append(wants)
        while True:
            yield self.snapshot()

    def create_taint_request(self, manifest: Mapping[str, Any]) -> TaintRequest:
        body = dict(manifest)
        meta = dict(body["metadata"])
        meta.setdefault(
            "name", f"{meta.pop('generateName', 'taint-')}{len(self.taint_requests):05d}"
        )
        meta["creationTimestamp"] = NOW.isoformat()
        meta["generation"] = 1
        body["metadata"] = meta
        body["status"] = {"observedGeneration": 0}  # the CRD's default, as the server reads it
        request = TaintRequest.model_validate(body)
        self.taint_requests[request.metadata.name] = request
        return request

    def get_taint_request(self, name: str) -> TaintRequest:
        if self.on_taint_request is not None:
            self.on_taint_request(self, name)
        if name not in self.taint_requests:
            raise CliError(f"TaintRequest {name!r}: not found", ExitCode.NOT_FOUND)
        return self.taint_requests[name]


@dataclass
class FakePodLogs:
    """Pods by JobRun and their logs by (pod, container); records what was read."""

    pods_by_run: dict[str, list[RunPod]] = field(default_factory=dict)
    text: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    reads: list[tuple[str, str, int | None, bool]] = field(default_factory=list)

    def add(self, run: str, attempt: int, phase: str, lines: list[str]) -> RunPod:
        pod = RunPod(f"{run}-{attempt}-pod", attempt, phase, ("main",))
        self.pods_by_run.setdefault(run, []).append(pod)
        self.text[(pod.name, "main")] = lines
        return pod

    def pods(self, job_run: str) -> list[RunPod]:
        return list(self.pods_by_run.get(job_run, []))

    def read(self, pod: RunPod, container: str, *, tail: int | None, follow: bool) -> Iterator[str]:
        self.reads.append((pod.name, container, tail, follow))
        lines = self.text.get((pod.name, container), [])
        return iter(lines[-tail:] if tail else ([] if tail == 0 else lines))


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(cluster: FakeCluster | None, *argv: str, **context: Any) -> Result:
    """Run ``databuild argv`` against `cluster` with a fixed clock and no real sleeping."""
    out, err = io.StringIO(), io.StringIO()
    context.setdefault("clock", lambda: NOW)
    context.setdefault("sleep", lambda _: None)
    code = run(
        list(argv),
        out=out,
        err=err,
        connect_cluster=(lambda: cluster) if cluster is not None else None,
        **context,
    )
    return Result(code, out.getvalue(), err.getvalue())
