"""What the CLI reads from and writes to the cluster, behind one small protocol.

Commands see a :class:`Cluster` (the real one talks to the API server with the async
client of :mod:`databuild.adapters.kube`; tests use an in-memory one built from real
model objects) and render a :class:`Snapshot`: the namespace's Wants, Partitions,
JobRuns and batch Job attempts read at one moment.
"""

from __future__ import annotations

import contextlib
from collections.abc import Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import ValidationError

from databuild.adapters.codec import attempt_of, job_run_of
from databuild.adapters.jobs import (
    AttemptActive,
    AttemptFailed,
    AttemptMissedDependencies,
    AttemptSucceeded,
    read_outcome,
)
from databuild.adapters.kinds import KINDS
from databuild.adapters.kube import (
    ApiClient,
    BlockingClient,
    ConfigError,
    HttpTransport,
    KubeError,
    NotFound,
)
from databuild.adapters.kube import load as load_cluster_config
from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.adapters.resources import (
    JobRun,
    Partition,
    Resource,
    TaintRequest,
    Want,
)
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.follow import KubeFollower
from databuild.cli.podlogs import KubePodLogs, PodLogs
from databuild.cli.remote_bel import Fetch, ServiceRef
from databuild.domain import InvalidPartitionRef, PartitionRef, partition_name

__all__ = [
    "Attempt",
    "Cluster",
    "KubeCluster",
    "Snapshot",
    "check_ref",
    "connect",
]

_R = TypeVar("_R", bound=Resource)


def check_ref(text: str) -> PartitionRef:
    """`text` as a partition ref, or a usage error saying what is wrong with it."""
    try:
        return PartitionRef(text)
    except InvalidPartitionRef as e:
        raise CliError(str(e), ExitCode.USAGE) from None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One batch Job of a JobRun."""

    job_name: str
    attempt: int
    state: str
    """Running, Succeeded, Failed or DependencyMiss."""
    started: datetime | None = None
    finished: datetime | None = None
    exit_code: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Snapshot:
    """One namespace's DataBuild objects, read at ``now``."""

    namespace: str
    now: datetime
    wants: Mapping[str, Want] = field(default_factory=dict)
    partitions: Mapping[str, Partition] = field(default_factory=dict)
    """By ref."""
    job_runs: Mapping[str, JobRun] = field(default_factory=dict)
    attempts: Mapping[str, tuple[Attempt, ...]] = field(default_factory=dict)
    """By JobRun name, in attempt order."""

    def runs_for(self, ref: str) -> list[JobRun]:
        """Every JobRun that builds (or built, or tried to build) `ref`, oldest first."""
        runs = [r for r in self.job_runs.values() if ref in r.spec.partitions]
        return sorted(runs, key=lambda r: (_created(r), r.metadata.name))

    def builder_of(self, ref: str) -> JobRun | None:
        """The JobRun the Partition names as its builder, else the newest that builds it."""
        part = self.partitions.get(ref)
        if part is not None and part.status.job_run:
            run = self.job_runs.get(part.status.job_run)
            if run is not None:
                return run
        runs = self.runs_for(ref)
        return runs[-1] if runs else None

    def inputs_of(self, ref: str) -> list[str]:
        """Lineage: what `ref` was (or is being) built from."""
        part = self.partitions.get(ref)
        if part is not None and part.status.inputs:
            return list(part.status.inputs)
        run = self.builder_of(ref)
        return list(run.spec.inputs) if run is not None else []


def _created(resource: Resource) -> datetime:
    return resource.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC)


class Cluster(Protocol):
    """What the commands need from the API server, in one namespace."""

    @property
    def namespace(self) -> str:
        """The namespace commands act in."""
        ...

    def snapshot(self, *, attempts: bool = False) -> Snapshot:
        """Everything DataBuild in the namespace (batch Job attempts only if asked)."""
        ...

    def get_want(self, name: str) -> Want:
        """The Want `name`, or a NOT_FOUND error."""
        ...

    def get_partition(self, ref: str) -> Partition:
        """The Partition of `ref`, or a NOT_FOUND error."""
        ...

    def create_want(self, manifest: Mapping[str, Any]) -> Want:
        """Create a Want; returns it as created (with its generated name)."""
        ...

    def create_taint_request(self, manifest: Mapping[str, Any]) -> TaintRequest:
        """Create a TaintRequest; returns it as created (with its generated name)."""
        ...

    def get_taint_request(self, name: str) -> TaintRequest:
        """The TaintRequest `name`, or a NOT_FOUND error."""
        ...

    def get_job_run(self, name: str) -> JobRun:
        """The JobRun `name`, or a NOT_FOUND error."""
        ...

    def pod_logs(self) -> PodLogs:
        """The pods of JobRuns and their logs (``databuild logs``)."""
        ...

    def namespaces(self) -> list[str]:
        """The namespaces that hold Wants, sorted (``-A``)."""
        ...

    def history_fetch(self, service: ServiceRef) -> Fetch:
        """GETs of the history API behind `service`, through the API server's proxy."""
        ...

    def in_namespace(self, namespace: str) -> Cluster:
        """The same cluster, acting in `namespace`."""
        ...

    def follow(self, wants: list[str] | None, tick: float) -> Generator[Snapshot, None, None]:
        """Snapshots of `wants` (``None``: every Want) as they change, at least every `tick` s.

        Only the Wants, their Partitions and the JobRuns building them are in each.
        """
        ...


# ---------------------------------------------------------------------------------------
# The real cluster
# ---------------------------------------------------------------------------------------


def connect(kubeconfig: Path | None, context: str | None, namespace: str | None) -> KubeCluster:
    """A :class:`KubeCluster` from a kubeconfig (``$KUBECONFIG``, ``~/.kube/config``), or
    in-cluster config.

    The namespace defaults to the context's, then ``default``.
    """
    try:
        config = load_cluster_config(kubeconfig, context)
    except ConfigError as e:
        raise CliError(
            f"no usable kubeconfig ({e}): pass --kubeconfig or set KUBECONFIG",
            ExitCode.UNAVAILABLE,
        ) from None
    transport = HttpTransport(config, connections=8, user_agent="databuild-cli")
    return KubeCluster(BlockingClient(ApiClient(transport)), namespace or config.namespace)


_T = TypeVar("_T")


def call(what: str, coro: Coroutine[Any, Any, _T], client: BlockingClient) -> _T:
    """Run one API call for a command; a failure becomes a :class:`CliError` saying what."""
    try:
        return client.run(coro)
    except NotFound:
        raise CliError(f"{what}: not found", ExitCode.NOT_FOUND) from None
    except KubeError as e:
        if not e.status:
            raise CliError(f"{what}: cannot reach the API server: {e}") from None
        raise CliError(f"{what}: {e.status} {e.reason}".strip(), ExitCode.UNAVAILABLE) from None


class KubeCluster:
    """:class:`Cluster` over the async API client (:mod:`databuild.adapters.kube`)."""

    def __init__(self, client: BlockingClient, namespace: str) -> None:
        self.client = client
        self._namespace = namespace

    @property
    def namespace(self) -> str:
        return self._namespace

    def _call(self, what: str, coro: Coroutine[Any, Any, _T]) -> _T:
        return call(what, coro, self.client)

    def _list(self, kind: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        listing = self._call(
            f"listing {KINDS[kind].plural} in namespace {self.namespace}",
            self.client.api.list(kind, self.namespace, label_selector=label_selector),
        )
        return listing.items

    def _get(self, kind: str, name: str, what: str) -> dict[str, Any]:
        return self._call(what, self.client.api.get(kind, self.namespace, name))

    def _create(self, kind: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        body = {
            **manifest,
            "metadata": {**(manifest.get("metadata") or {}), "namespace": self.namespace},
        }
        return self._call(
            f"creating a {kind} in namespace {self.namespace}",
            self.client.api.create(body, kind=KINDS[kind]),
        )

    def snapshot(self, *, attempts: bool = False) -> Snapshot:
        now = datetime.now(UTC)
        wants = {w.metadata.name: w for w in _parse_all(Want, self._list("Want"))}
        parts = {p.spec.ref: p for p in _parse_all(Partition, self._list("Partition"))}
        runs = {r.metadata.name: r for r in _parse_all(JobRun, self._list("JobRun"))}
        found: dict[str, tuple[Attempt, ...]] = {}
        if attempts:
            found = self._attempts()
        return Snapshot(self.namespace, now, wants, parts, runs, found)

    def _attempts(self) -> dict[str, tuple[Attempt, ...]]:
        jobs = self._list("Job", JOB_RUN_LABEL)
        pods = self._list("Pod", JOB_RUN_LABEL)
        by_run: dict[str, list[Attempt]] = {}
        for body in jobs:
            run, number = job_run_of(body), attempt_of(body)
            if run is None or number is None:
                continue
            by_run.setdefault(run, []).append(attempt_from(body, pods, number))
        return {k: tuple(sorted(v, key=lambda a: a.attempt)) for k, v in by_run.items()}

    def get_want(self, name: str) -> Want:
        body = self._get("Want", name, f"Want {name!r} in namespace {self.namespace}")
        return _parse(Want, body)

    def get_partition(self, ref: str) -> Partition:
        name = partition_name(check_ref(ref))
        body = self._get(
            "Partition",
            name,
            f"Partition for {ref!r} in namespace {self.namespace} (no Want asked for it yet?)",
        )
        return _parse(Partition, body)

    def create_want(self, manifest: Mapping[str, Any]) -> Want:
        return _parse(Want, self._create("Want", manifest))

    def get_job_run(self, name: str) -> JobRun:
        body = self._get("JobRun", name, f"JobRun {name!r} in namespace {self.namespace}")
        return _parse(JobRun, body)

    def pod_logs(self) -> PodLogs:
        return KubePodLogs(self.client, self.namespace)

    def namespaces(self) -> list[str]:
        def namespace_only(obj: dict[str, Any]) -> dict[str, Any]:
            return {"namespace": str(obj["metadata"]["namespace"])}

        listing = self._call(
            "listing Wants in every namespace",
            self.client.api.list("Want", None, keep=namespace_only),
        )
        return sorted({item["namespace"] for item in listing.items})

    def history_fetch(self, service: ServiceRef) -> Fetch:
        def fetch(path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
            try:
                response = self.client.run(
                    self.client.api.send(
                        "GET", service.proxy_path(path), query=list(params.items())
                    )
                )
            except KubeError as e:  # no response at all
                raise CliError(f"{service}: cannot reach the API server: {e}") from None
            return response.status, response.body

        return fetch

    def in_namespace(self, namespace: str) -> KubeCluster:
        return KubeCluster(self.client, namespace)

    def follow(self, wants: list[str] | None, tick: float) -> Generator[Snapshot, None, None]:
        # Closing this generator closes the follower's, which stops its watches.
        with contextlib.closing(
            KubeFollower(self.client, self.namespace, wants).follow(tick)
        ) as it:
            for seen in it:
                now = datetime.now(UTC)
                yield Snapshot(self.namespace, now, seen.wants, seen.partitions, seen.job_runs)

    def create_taint_request(self, manifest: Mapping[str, Any]) -> TaintRequest:
        return _parse(TaintRequest, self._create(TaintRequest.KIND, manifest))

    def get_taint_request(self, name: str) -> TaintRequest:
        body = self._get(
            TaintRequest.KIND, name, f"TaintRequest {name!r} in namespace {self.namespace}"
        )
        return _parse(TaintRequest, body)


def attempt_from(job: Mapping[str, Any], pods: list[dict[str, Any]], number: int) -> Attempt:
    """An :class:`Attempt` from a batch Job (as JSON) and the pods of its JobRun."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    started = _time(status.get("startTime"))
    finished = _time(status.get("completionTime"))
    outcome = read_outcome(job, pods)
    state, code, message = "Running", None, ""
    match outcome:
        case AttemptActive():
            pass
        case AttemptSucceeded():
            state = "Succeeded"
        case AttemptMissedDependencies(missing=missing, exit_code=exit_code):
            state, code, message = "DependencyMiss", exit_code, "missing: " + ", ".join(missing)
        case AttemptFailed(reason=reason, message=text, exit_code=exit_code):
            state, code, message = "Failed", exit_code, f"{reason}: {text}".strip(": ")
    if finished is None and state != "Running":
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Failed", "Complete") and cond.get("status") == "True":
                finished = _time(cond.get("lastTransitionTime"))
    return Attempt(str(meta.get("name", "")), number, state, started, finished, code, message)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _parse(model: type[_R], body: Mapping[str, Any]) -> _R:
    try:
        return model.model_validate(body)
    except ValidationError as e:
        name = (body.get("metadata") or {}).get("name", "?")
        raise CliError(
            f"cannot read {model.KIND} {name!r}: {e.errors()[0]['msg']}", ExitCode.UNAVAILABLE
        ) from None


def _parse_all(model: type[_R], items: list[dict[str, Any]]) -> list[_R]:
    parsed = []
    for body in items:
        try:
            parsed.append(model.model_validate(body))
        except ValidationError:
            continue  # one malformed object must not hide the others
    return parsed
