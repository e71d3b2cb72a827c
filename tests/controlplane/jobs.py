"""Helpers for control-plane tests: batch Jobs and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from databuild.testing.kube import Kube

T = TypeVar("T")

# Generous: the point is that something happens, not how fast; a loaded CI machine
# must not turn these into flakes.
TIMEOUT = 60.0


def job_manifest(
    name: str,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A batch Job with one pod that Kubernetes never retries (the operator's convention)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": labels or {}, "annotations": annotations or {}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example.invalid/build:1"}],
                },
            },
        },
    }


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """Poll `probe` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def job_finished(kube: Kube, namespace: str, name: str) -> str | None:
    """'Complete' or 'Failed' once the Job has that condition, else None."""
    job = kube.get("Job", namespace, name)
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return str(condition["type"])
    return None


def wait_job(kube: Kube, namespace: str, name: str, timeout: float = TIMEOUT) -> str:
    """Wait until the Job is Complete or Failed; return which."""
    return wait_for(
        f"Job {namespace}/{name} to finish", lambda: job_finished(kube, namespace, name), timeout
    )


def job_pods(kube: Kube, namespace: str, name: str) -> list[dict[str, Any]]:
    """The pods of a Job (by the label the Job controller sets)."""
    return kube.list("Pod", namespace, label_selector=f"job-name={name}")
