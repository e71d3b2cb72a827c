"""Where build logs come from: the pods of a JobRun's attempts, read through the API server.

A build's log is its pod's container log, kept by the node for as long as the pod exists,
that is until its batch Job is deleted (``ttlSecondsAfterFinished``, 24 hours by default;
the chart's ``operator.jobTTLSeconds``). :class:`PodLogs` is what ``databuild logs`` needs;
:class:`KubePodLogs` reads it with the async API client (``pods/log``, the same request
as ``kubectl logs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from databuild.adapters.codec import attempt_of
from databuild.adapters.kube import BlockingClient, KubeError
from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.cli.errors import CliError, ExitCode

__all__ = ["KubePodLogs", "PodLogs", "RunPod", "logs_hint"]


def logs_hint(run: str, namespace: str) -> str:
    """The command that prints the logs of `run` (shown under failed runs)."""
    ns = "" if namespace == "default" else f" -n {namespace}"
    return f"databuild logs{ns} {run} --failed"


@dataclass(frozen=True, slots=True)
class RunPod:
    """One pod of one attempt of a JobRun."""

    name: str
    attempt: int
    phase: str
    """Pending, Running, Succeeded, Failed or Unknown."""
    containers: tuple[str, ...]
    created: str = ""
    """creationTimestamp, to order retries of the same attempt (a batch Job's backoff)."""


class PodLogs(Protocol):
    """The pods of a JobRun and their logs, in one namespace."""

    def pods(self, job_run: str) -> list[RunPod]:
        """Every pod of `job_run` still in the cluster, oldest attempt first."""
        ...

    def read(self, pod: RunPod, container: str, *, tail: int | None, follow: bool) -> Iterator[str]:
        """The container's log, line by line (with ``follow``: until the container ends)."""
        ...


def run_pod(body: dict[str, Any]) -> RunPod | None:
    """A :class:`RunPod` from a pod as JSON (``None`` without an attempt annotation)."""
    number = attempt_of(body)
    if number is None:
        return None
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    containers = tuple(str(c.get("name")) for c in spec.get("containers") or [])
    return RunPod(
        name=str(meta.get("name", "")),
        attempt=number,
        phase=str((body.get("status") or {}).get("phase") or "Unknown"),
        containers=containers,
        created=str(meta.get("creationTimestamp") or ""),
    )


class KubePodLogs:
    """:class:`PodLogs` over the async API client."""

    def __init__(self, client: BlockingClient, namespace: str) -> None:
        self._client = client
        self.namespace = namespace

    def _fail(self, what: str, e: KubeError) -> CliError:
        if e.status == 404:
            return CliError(f"{what}: not found", ExitCode.NOT_FOUND)
        if e.status == 403:
            return CliError(f"{what}: forbidden (you need get on pods/log)", ExitCode.FAILED)
        if not e.status:
            return CliError(f"{what}: cannot reach the API server: {e}")
        return CliError(f"{what}: {e}")

    def pods(self, job_run: str) -> list[RunPod]:
        try:
            listed = self._client.run(
                self._client.api.list(
                    "Pod", self.namespace, label_selector=f"{JOB_RUN_LABEL}={job_run}"
                )
            )
        except KubeError as e:
            raise self._fail(f"listing the pods of JobRun {job_run}", e) from None
        found = [run_pod(p) for p in listed.items]
        return sorted((p for p in found if p is not None), key=lambda p: (p.attempt, p.created))

    def read(self, pod: RunPod, container: str, *, tail: int | None, follow: bool) -> Iterator[str]:
        query = [("container", container), ("follow", "true" if follow else "false")]
        if tail is not None:
            query.append(("tailLines", str(tail)))
        api = self._client.api
        path = f"{api.path('Pod', self.namespace, pod.name)}/log"
        chunks = api.stream(path, query=query)
        try:
            pending = b""
            for chunk in self._client.iterate(chunks):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        except KubeError as e:
            raise self._fail(f"reading the log of pod {pod.name}", e) from None
        finally:
            self._client.run(chunks.aclose())
