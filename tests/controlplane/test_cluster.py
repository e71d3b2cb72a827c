"""What the control plane is: versions, names, the node, and pods that are not Jobs'."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from databuild.testing import NODE_NAME, Cluster
from databuild.testing import node as real_node
from databuild.testing._binaries import read_versions
from databuild.testing.kube import Kube

from .jobs import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_apiserver_reports_the_pinned_version(kube: Kube) -> None:
    version = kube.request("GET", "/version")
    assert version["gitVersion"] == read_versions(REPO / "hack" / "versions.env")["KUBE_VERSION"]


def test_kubernetes_service_and_serving_certificate(control_plane: Cluster, kube: Kube) -> None:
    service = kube.get("Service", "default", "kubernetes")
    assert service["spec"]["clusterIP"] == "10.0.0.1"

    # In-cluster clients dial the Service's name; the serving certificate must match.
    server = urlsplit(kube.config.server)
    assert server.scheme == "https" and server.hostname and server.port
    assert kube.config.ca_data is not None
    context = ssl.create_default_context(cadata=kube.config.ca_data.decode())
    for name in ("kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"):
        with (
            socket.create_connection((server.hostname, server.port), timeout=10) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            assert tls.version() is not None


def test_one_schedulable_simulated_node(kube: Kube) -> None:
    # The real node, where the machine runs one, is tainted: only pods that ask go there.
    nodes = kube.list("Node")
    [node] = [n for n in nodes if n["metadata"]["name"] != real_node.NAME]
    for other in nodes:
        if other is not node:
            taints = other["spec"].get("taints") or []
            assert [(t["key"], t.get("value"), t["effect"]) for t in taints] == [
                tuple(real_node.TAINT.values())
            ]
    assert node["metadata"]["name"] == NODE_NAME
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert not node["spec"].get("taints")
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("kwok-")
    assert node["status"]["allocatable"]["pods"] == "10k"  # generous: never the limit


def _renew_time(lease: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(lease["spec"]["renewTime"])


def test_the_node_renews_its_lease_like_a_kubelet(kube: Kube) -> None:
    """Without a renewed Lease the node-lifecycle controller finds the node silent
    every ~50 s and marks every pod on it NotReady for good: a Deployment's pod then
    never becomes Ready again."""
    lease = kube.get("Lease", "kube-node-lease", NODE_NAME)
    assert lease["spec"]["leaseDurationSeconds"] == 40
    first = _renew_time(lease)

    def renewed() -> bool | None:
        now = _renew_time(kube.get("Lease", "kube-node-lease", NODE_NAME))
        return True if now > first else None

    wait_for("the node Lease to be renewed", renewed, timeout=30)  # every ~10 s


def test_pods_that_are_not_jobs_become_ready_and_stay(kube: Kube, namespace: str) -> None:
    """What `helm install --wait` needs from a Deployment."""
    labels = {"app": "web"}
    kube.create(
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
        namespace,
    )

    def available() -> bool | None:
        status = kube.get("Deployment", namespace, "web").get("status") or {}
        return True if status.get("availableReplicas") == 2 else None

    wait_for("the Deployment to be available", available)
    pods = kube.list("Pod", namespace, label_selector="app=web")
    assert {p["status"]["phase"] for p in pods} == {"Running"}
