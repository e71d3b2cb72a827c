"""Where build logs come from: the pods of a JobRun's attempts, read through the API server.

A build's log is its pod's container log, kept by the node for as long as the pod exists,
that is until its batch Job is deleted (``ttlSecondsAfterFinished``, 24 hours by default;
the chart's ``operator.jobTTLSeconds``). :class:`PodLogs` is what ``databuild logs`` needs;
:class:`KubePodLogs` reads it with the kubernetes client (``pods/log``, the same request
as ``kubectl logs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from databuild.adapters.codec import attempt_of
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
    """:class:`PodLogs` over the kubernetes client."""

    def __init__(self, api: Any, namespace: str) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self.namespace = namespace

    def _fail(self, what: str, e: ApiException) -> CliError:
        if e.status == 404:
            return CliError(f"{what}: not found", ExitCode.NOT_FOUND)
        if e.status == 403:
            return CliError(f"{what}: forbidden (you need get on pods/log)", ExitCode.FAILED)
        detail = (e.body or b"").decode() if isinstance(e.body, bytes) else str(e.body or "")
        return CliError(f"{what}: {e.status} {e.reason or ''} {detail[:300]}".strip())

    def pods(self, job_run: str) -> list[RunPod]:
        try:
            listed = self._core.list_namespaced_pod(
                self.namespace, label_selector=f"{JOB_RUN_LABEL}={job_run}"
            )
        except ApiException as e:
            raise self._fail(f"listing the pods of JobRun {job_run}", e) from None
        found = [run_pod(self._api.sanitize_for_serialization(p)) for p in listed.items]
        return sorted((p for p in found if p is not None), key=lambda p: (p.attempt, p.created))

    def read(self, pod: RunPod, container: str, *, tail: int | None, follow: bool) -> Iterator[str]:
        kwargs: dict[str, Any] = {"container": container, "follow": follow}
        if tail is not None:
            kwargs["tail_lines"] = tail
        try:
            response: Any = self._core.read_namespaced_pod_log(
                pod.name, self.namespace, _preload_content=False, **kwargs
            )
        except ApiException as e:
            raise self._fail(f"reading the log of pod {pod.name}", e) from None
        try:
            pending = b""
            for chunk in response.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            response.release_conn()
