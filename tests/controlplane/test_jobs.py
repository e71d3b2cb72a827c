"""Batch Jobs run for real: job controller, scheduler, and kwok playing the kubelet."""

from __future__ import annotations

import time

from kubernetes import client

from databuild.testing.outcomes import simulated

from .jobs import job_manifest, job_pods, wait_job


def test_job_completes(kube: client.ApiClient, namespace: str) -> None:
    client.BatchV1Api(kube).create_namespaced_job(namespace, job_manifest("ok"))

    assert wait_job(kube, namespace, "ok") == "Complete"

    [pod] = job_pods(kube, namespace, "ok")
    assert pod.spec.node_name == "kwok-node-0"  # placed by the real scheduler
    assert pod.status.phase == "Succeeded"
    [status] = pod.status.container_statuses
    assert status.state.terminated.exit_code == 0


def test_failing_job_reports_exit_code_and_message(kube: client.ApiClient, namespace: str) -> None:
    message = '{"missingPartitions": ["raw/date=2025-01-01"]}'
    meta = simulated("fail", exit_code=3, message=message)
    client.BatchV1Api(kube).create_namespaced_job(namespace, job_manifest("bad", **meta))

    assert wait_job(kube, namespace, "bad") == "Failed"

    [pod] = job_pods(kube, namespace, "bad")
    assert pod.status.phase == "Failed"
    [status] = pod.status.container_statuses
    assert status.state.terminated.exit_code == 3
    assert status.state.terminated.message == message


def test_failing_job_defaults_to_exit_code_1(kube: client.ApiClient, namespace: str) -> None:
    client.BatchV1Api(kube).create_namespaced_job(
        namespace, job_manifest("bad", **simulated("fail"))
    )

    assert wait_job(kube, namespace, "bad") == "Failed"

    [pod] = job_pods(kube, namespace, "bad")
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1


def test_fail_first_fails_attempt_1_and_passes_attempt_2(
    kube: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(kube)
    batch.create_namespaced_job(namespace, job_manifest("a1", **simulated("fail-first", attempt=1)))
    batch.create_namespaced_job(namespace, job_manifest("a2", **simulated("fail-first", attempt=2)))

    assert wait_job(kube, namespace, "a1") == "Failed"
    assert wait_job(kube, namespace, "a2") == "Complete"


def test_duration_delays_completion(kube: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
    batch.create_namespaced_job(namespace, job_manifest("slow", **simulated(duration="5s")))
    batch.create_namespaced_job(
        namespace, job_manifest("slow-fail", **simulated("fail", duration="5s"))
    )
    created = time.monotonic()

    assert wait_job(kube, namespace, "slow") == "Complete"
    assert wait_job(kube, namespace, "slow-fail") == "Failed"
    elapsed = time.monotonic() - created

    assert elapsed >= 5.0
    assert elapsed < 45.0
    for name in ("slow", "slow-fail"):
        [pod] = job_pods(kube, namespace, name)
        terminated = pod.status.container_statuses[0].state.terminated
        ran = (terminated.finished_at - pod.status.start_time).total_seconds()
        # Timestamps have one-second resolution.
        assert ran >= 4.0, f"{name} ran {ran}s"


def test_edge_cases_of_the_simulated_outcomes(kube: client.ApiClient, namespace: str) -> None:
    batch = client.BatchV1Api(kube)
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
        batch.create_namespaced_job(namespace, job_manifest(name, **meta))

    assert {name: wait_job(kube, namespace, name) for name in jobs} == {
        "first-no-attempt": "Failed",
        "exit-zero": "Failed",
        "exit-junk": "Failed",
        "odd-message": "Failed",
        "annotations-only": "Complete",
    }

    def terminated(name: str) -> client.V1ContainerStateTerminated:
        [pod] = job_pods(kube, namespace, name)
        return pod.status.container_statuses[0].state.terminated

    assert terminated("exit-zero").exit_code == 1
    assert terminated("exit-junk").exit_code == 1
    assert terminated("odd-message").exit_code == 42
    assert terminated("odd-message").message == message
    assert terminated("annotations-only").exit_code == 0
