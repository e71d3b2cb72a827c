"""The real node: real containers from images built here, beside kwok's simulated node.

Pods that carry the real node's placement (`databuild.testing.node.placement()`) run in
containerd on a kubelet; the rest stay on kwok's node. These tests use the session's
control plane, which starts the real node by default where the machine can run it
(`DATABUILD_REAL_NODE=0` turns it off, and then these tests are skipped).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from databuild.testing import Cluster, ControlPlane, node
from databuild.testing.kube import Kube
from tests.controlplane.jobs import job_pods, wait_job
from tests.controlplane.realnode import built_image, kubectl, require_real_node


@pytest.fixture(scope="module")
def real(control_plane: Cluster) -> ControlPlane:
    """The session's control plane, which must have a real node."""
    return require_real_node(control_plane)


@pytest.fixture(scope="module")
def python_image(real: ControlPlane) -> str:
    """A Debian image with Python, built here (`make image`'s cached base), in containerd."""
    return real.load_image(built_image("base"))


def _job(name: str, image: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    **node.placement(),
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["python3", "-c", script],
                        }
                    ],
                }
            },
        },
    }


def test_a_job_runs_a_real_container_whose_logs_kubectl_reads(
    real: ControlPlane, python_image: str, kube: Kube, namespace: str
) -> None:
    token = uuid.uuid4().hex
    script = f"import platform; print('{token}', platform.python_version())"
    kube.create(_job("hello", python_image, script), namespace)
    assert wait_job(kube, namespace, "hello", timeout=120) == "Complete"
    (pod,) = job_pods(kube, namespace, "hello")
    assert pod["spec"]["nodeName"] == node.NAME
    logs = kubectl(real, "logs", "-n", namespace, "job/hello")
    assert logs.startswith(token + " 3."), logs  # printed by Python 3 in the container


def test_the_termination_message_and_exit_code_are_the_containers(
    real: ControlPlane, python_image: str, kube: Kube, namespace: str
) -> None:
    miss = {"missingPartitions": ["raw/date=2025-01-01"]}
    script = f"open('/dev/termination-log', 'w').write({json.dumps(miss)!r}); raise SystemExit(3)"
    kube.create(_job("miss", python_image, script), namespace)
    assert wait_job(kube, namespace, "miss", timeout=120) == "Failed"
    (pod,) = job_pods(kube, namespace, "miss")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3
    assert json.loads(terminated["message"]) == miss


def test_pods_reach_the_apiserver_through_the_kubernetes_service(
    real: ControlPlane, python_image: str, kube: Kube, namespace: str
) -> None:
    # What in-cluster configuration does: the Service's address from the environment,
    # the ServiceAccount's token and CA from the projected volume.
    script = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
url = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ['KUBERNETES_SERVICE_PORT']}"
request = urllib.request.Request(url + "/version")
request.add_header("Authorization", "Bearer " + open(sa + "/token").read())
context = ssl.create_default_context(cafile=sa + "/ca.crt")
print(json.load(urllib.request.urlopen(request, context=context, timeout=10))["gitVersion"])
"""
    kube.create(_job("incluster", python_image, script), namespace)
    outcome = wait_job(kube, namespace, "incluster", timeout=120)
    logs = kubectl(real, "logs", "-n", namespace, "job/incluster")
    assert outcome == "Complete", logs
    assert logs.strip().startswith("v1."), logs


def test_pods_without_the_placement_stay_on_the_simulated_node(
    real: ControlPlane, kube: Kube, namespace: str
) -> None:
    job = _job("simulated", "example.invalid/never-pulled:1", "")
    job["spec"]["template"]["spec"].pop("nodeSelector")
    job["spec"]["template"]["spec"].pop("tolerations")
    kube.create(job, namespace)
    assert wait_job(kube, namespace, "simulated") == "Complete"
    (pod,) = job_pods(kube, namespace, "simulated")
    assert pod["spec"].get("nodeName") != node.NAME
