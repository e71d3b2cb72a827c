"""The chart on the real node: the operator image built here runs as a real pod.

`helm install` with the image of `make image` (imported into the node's containerd,
never pulled): the Deployment turns Available because the kubelet's probes really
reach kopf's health endpoint; the operator uses in-cluster configuration with the
chart's ServiceAccount token, serves its metrics, and builds a Want.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import ApiClient
from tests.controlplane.realnode import built_image, kubectl, require_real_node
from tests.e2e.test_helm import (
    RESTRICTED,
    Release,
    apply_pipeline,
    delete_namespace,
    make_namespace,
    partitions,
    wait_for,
    want_state,
)

from databuild.testing import Cluster, ControlPlane, node


@pytest.fixture
def real(control_plane: Cluster) -> ControlPlane:
    return require_real_node(control_plane)


@pytest.fixture
def release(real: ControlPlane, kube: ApiClient) -> Iterator[Release]:
    namespace = make_namespace(kube, "databuild-system", RESTRICTED)
    rel = Release(real, f"db-{uuid.uuid4().hex[:6]}", namespace)
    try:
        yield rel
    finally:
        if rel.helm("status", rel.name, "--namespace", namespace, check=False).returncode == 0:
            rel.uninstall()
        delete_namespace(kube, namespace)


def test_the_chart_runs_the_operator_image_on_the_real_node_and_builds_a_want(
    real: ControlPlane, release: Release, kube: ApiClient, namespace: str, tmp_path: Path
) -> None:
    image = real.load_image(built_image("operator"))  # docker.io/library/databuild-operator:...
    repository, _, tag = image.rpartition(":")
    placement = node.placement()
    release.install(
        "--set", f"image.repository={repository}",
        "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",
        # The pod has a network namespace of its own: the chart's default ports.
        "--set", "health.port=8080",
        "--set", "metrics.port=9090",
        "--set-json", f"nodeSelector={json.dumps(placement['nodeSelector'])}",
        "--set-json", f"tolerations={json.dumps(placement['tolerations'])}",
    )  # fmt: skip

    # Available: the kubelet's readiness probe reached kopf's health endpoint.
    deployment = client.AppsV1Api(kube).read_namespaced_deployment(
        release.fullname, release.namespace
    )
    assert deployment.status.available_replicas == 1
    (pod,) = (
        client.CoreV1Api(kube)
        .list_namespaced_pod(
            release.namespace, label_selector=f"app.kubernetes.io/instance={release.name}"
        )
        .items
    )
    assert pod.spec.node_name == node.NAME
    assert pod.status.phase == "Running"
    assert pod.spec.service_account_name == release.fullname
    assert pod.status.container_statuses[0].ready

    # In-cluster configuration under the chart's identity: it builds a Want.
    apply_pipeline(kube, namespace, "in-cluster")

    def successful() -> bool | None:
        state = want_state(kube, namespace, "in-cluster")
        assert state not in ("Failed", "Expired"), state
        return True if state == "Successful" else None

    logs = lambda: kubectl(real, "logs", "-n", release.namespace, pod.metadata.name)  # noqa: E731
    wait_for("the Want built by the in-cluster operator", successful, diagnose=logs)
    assert partitions(kube, namespace) == {
        "raw/date=2025-01-01": "Live",
        "summary/date=2025-01-01": "Live",
    }
    operator_log = logs()
    assert "Forbidden" not in operator_log, operator_log[-3000:]

    # Metrics, served for real inside the pod.
    metrics = kubectl(
        real, "exec", "-n", release.namespace, pod.metadata.name, "--", "python", "-c",
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:9090/metrics', timeout=5).read().decode())",
    )  # fmt: skip
    assert "databuild_" in metrics, metrics[:2000]
