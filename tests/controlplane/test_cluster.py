"""What the control plane is: versions, names, the node, and pods that are not Jobs'."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from kubernetes import client

from databuild.testing import NODE_NAME, Cluster
from databuild.testing import node as real_node
from databuild.testing._binaries import read_versions

from .jobs import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_apiserver_reports_the_pinned_version(kube: client.ApiClient) -> None:
    version = client.VersionApi(kube).get_code()
    assert version.git_version == read_versions(REPO / "hack" / "versions.env")["KUBE_VERSION"]


def test_kubernetes_service_and_serving_certificate(
    control_plane: Cluster, kube: client.ApiClient
) -> None:
    service = client.CoreV1Api(kube).read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == "10.0.0.1"

    # In-cluster clients dial the Service's name; the serving certificate must match.
    host = kube.configuration.host.removeprefix("https://")
    address, port = host.rsplit(":", 1)
    context = ssl.create_default_context(cafile=kube.configuration.ssl_ca_cert)
    for name in ("kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"):
        with (
            socket.create_connection((address, int(port)), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            assert tls.version() is not None


def test_one_schedulable_simulated_node(kube: client.ApiClient) -> None:
    # The real node, where the machine runs one, is tainted: only pods that ask go there.
    nodes = client.CoreV1Api(kube).list_node().items
    [node] = [n for n in nodes if n.metadata.name != real_node.NAME]
    for other in nodes:
        if other is not node:
            assert [(t.key, t.value, t.effect) for t in other.spec.taints or []] == [
                tuple(real_node.TAINT.values())
            ]
    assert node.metadata.name == NODE_NAME
    assert node.metadata.annotations["kwok.x-k8s.io/node"] == "fake"
    assert not node.spec.taints
    assert node.status.node_info.kubelet_version.startswith("kwok-")
    assert node.status.allocatable["pods"] == "10k"  # generous: never the limit


def test_the_node_renews_its_lease_like_a_kubelet(kube: client.ApiClient) -> None:
    """Without a renewed Lease the node-lifecycle controller finds the node silent
    every ~50 s and marks every pod on it NotReady for good: a Deployment's pod then
    never becomes Ready again."""
    leases = client.CoordinationV1Api(kube)
    lease = leases.read_namespaced_lease(NODE_NAME, "kube-node-lease")
    assert lease.spec.lease_duration_seconds == 40
    first = lease.spec.renew_time

    def renewed() -> bool | None:
        now = leases.read_namespaced_lease(NODE_NAME, "kube-node-lease").spec.renew_time
        return True if now > first else None

    wait_for("the node Lease to be renewed", renewed, timeout=30)  # every ~10 s


def test_pods_that_are_not_jobs_become_ready_and_stay(
    kube: client.ApiClient, namespace: str
) -> None:
    """What `helm install --wait` needs from a Deployment."""
    apps = client.AppsV1Api(kube)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
                },
            },
        },
    )

    def available() -> bool | None:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return True if status.available_replicas == 2 else None

    wait_for("the Deployment to be available", available)
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector="app=web").items
    assert {p.status.phase for p in pods} == {"Running"}
