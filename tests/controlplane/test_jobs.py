"""Batch Jobs run for real: job controller, scheduler, and kwok playing the kubelet."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from databuild.testing.kube import Kube
from databuild.testing.outcomes import simulated

from .jobs import job_manifest, job_pods, wait_job


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    """The terminated state of the pod's one container."""
    [status] = pod["status"]["containerStatuses"]
    terminated: dict[str, Any] = status["state"]["terminated"]
    return terminated


def test_job_completes(kube: Kube, namespace: str) -> None:
    kube.create(job_manifest("ok"), namespace)

    assert wait_job(kube, namespace, "ok") == "Complete"

    [pod] = job_pods(kube, namespace, "ok")
    assert pod["spec"]["nodeName"] == "kwok-node-0"  # placed by the real scheduler
    assert pod["status"]["phase"] == "Succeeded"
    assert _terminated(pod)["exitCode"] == 0


def test_failing_job_reports_exit_code_and_message(kube: Kube, namespace: str) -> None:
    message = '{"missingPartitions": ["raw/date=2025-01-01"]}'
    meta = simulated("fail", exit_code=3, message=message)
    kube.create(job_manifest("bad", **meta), namespace)

    assert wait_job(kube, namespace, "bad") == "Failed"

    [pod] = job_pods(kube, namespace, "bad")
    assert pod["status"]["phase"] == "Failed"
    assert _terminated(pod)["exitCode"] == 3
    assert _terminated(pod).get("message") == message


def test_failing_job_defaults_to_exit_code_1(kube: Kube, namespace: str) -> None:
    kube.create(job_manifest("bad", **simulated("fail")), namespace)

    assert wait_job(kube, namespace, "bad") == "Failed"

    [pod] = job_pods(kube, namespace, "bad")
    assert _terminated(pod)["exitCode"] == 1


def test_fail_first_fails_attempt_1_and_passes_attempt_2(kube: Kube, namespace: str) -> None:
    kube.create(job_manifest("a1", **simulated("fail-first", attempt=1)), namespace)
    kube.create(job_manifest("a2", **simulated("fail-first", attempt=2)), namespace)

    assert wait_job(kube, namespace, "a1") == "Failed"
    assert wait_job(kube, namespace, "a2") == "Complete"


def test_duration_delays_completion(kube: Kube, namespace: str) -> None:
    kube.create(job_manifest("slow", **simulated(duration="5s")), namespace)
    kube.create(job_manifest("slow-fail", **simulated("fail", duration="5s")), namespace)
    created = time.monotonic()

    assert wait_job(kube, namespace, "slow") == "Complete"
    assert wait_job(kube, namespace, "slow-fail") == "Failed"
    elapsed = time.monotonic() - created

    assert elapsed >= 5.0
    assert elapsed < 45.0
    for name in ("slow", "slow-fail"):
        [pod] = job_pods(kube, namespace, name)
        finished = datetime.fromisoformat(_terminated(pod)["finishedAt"])
        ran = (finished - datetime.fromisoformat(pod["status"]["startTime"])).total_seconds()
        # Timestamps have one-second resolution.
        assert ran >= 4.0, f"{name} ran {ran}s"


def test_edge_cases_of_the_simulated_outcomes(kube: Kube, namespace: str) -> None:
    message = 'line one\nline "two" \\ ünïcode {"a": [1]}'
    jobs = {
        # No attempt annotation: a first attempt.
        "first-no-attempt": simulated("fail-first"),
        # A failed container cannot exit 0: it becomes 1.
        "exit-zero": simulated("fail", exit_code=0),
        "exit-junk": {
            "labels": {"kwok.databuild.dev/outcome": "fail"},
            "annotations": {"kwok.databuild.dev/exit-code": "three"},
        },
        "odd-message": simulated("fail", exit_code=42, message=message),
        # Annotations alone never make a pod fail.
        "annotations-only": {
            "labels": {},
            "annotations": simulated("fail", exit_code=5)["annotations"],
        },
    }
    for name, meta in jobs.items():
        kube.create(job_manifest(name, **meta), namespace)

    assert {name: wait_job(kube, namespace, name) for name in jobs} == {
        "first-no-attempt": "Failed",
        "exit-zero": "Failed",
        "exit-junk": "Failed",
        "odd-message": "Failed",
        "annotations-only": "Complete",
    }

    def terminated(name: str) -> dict[str, Any]:
        [pod] = job_pods(kube, namespace, name)
        return _terminated(pod)

    assert terminated("exit-zero")["exitCode"] == 1
    assert terminated("exit-junk")["exitCode"] == 1
    assert terminated("odd-message")["exitCode"] == 42
    assert terminated("odd-message").get("message") == message
    assert terminated("annotations-only")["exitCode"] == 0
