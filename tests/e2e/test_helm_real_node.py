"""The chart on the real node: the operator image built here runs as a real pod.

`helm install` with the image of `make image` (imported into the node's containerd,
never pulled): the Deployment turns Available because the kubelet's probes really
reach the operator's health endpoint; the operator uses in-cluster configuration with the
chart's ServiceAccount token, serves its metrics, and builds a Want. Then, in the same
flow, that in-cluster operator builds examples/words' Want with real containers on the
real node (a real dependency miss included): the files they wrote exist on the node's
hostPath and `kubectl logs` of a build shows what it wrote.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
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
from databuild.testing.demo import apply_manifest, list_objects
from databuild.testing.demo_words import RealWork
from databuild.testing.kube import Kube

REPO = Path(__file__).resolve().parents[2]
#: examples/words/02-wants.yaml: ISO week 2025-W02 is Monday 2025-01-06 to Sunday 2025-01-12.
WEEK_DAYS = [f"2025-01-{day:02d}" for day in range(6, 13)]
#: examples/words/job/words.py writes 200 words a day.
WORDS_A_DAY = 200


@pytest.fixture
def real(control_plane: Cluster) -> ControlPlane:
    return require_real_node(control_plane)


@pytest.fixture
def release(real: ControlPlane, kube: Kube) -> Iterator[Release]:
    namespace = make_namespace(kube, "databuild-system", RESTRICTED)
    rel = Release(real, f"db-{uuid.uuid4().hex[:6]}", namespace)
    try:
        yield rel
    finally:
        if rel.helm("status", rel.name, "--namespace", namespace, check=False).returncode == 0:
            rel.uninstall()
        delete_namespace(kube, namespace)


def test_the_chart_runs_the_operator_image_on_the_real_node_and_it_builds_real_containers(
    real: ControlPlane, release: Release, kube: Kube, namespace: str, tmp_path: Path
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

    # Available: the kubelet's readiness probe reached the operator's health endpoint.
    deployment = kube.get("Deployment", release.namespace, release.fullname)
    assert deployment["status"].get("availableReplicas") == 1
    (pod,) = kube.list(
        "Pod", release.namespace, label_selector=f"app.kubernetes.io/instance={release.name}"
    )
    pod_name = pod["metadata"]["name"]
    assert pod["spec"].get("nodeName") == node.NAME
    assert pod["status"].get("phase") == "Running"
    assert pod["spec"].get("serviceAccountName") == release.fullname
    assert pod["status"]["containerStatuses"][0]["ready"]

    # In-cluster configuration under the chart's identity: it builds a Want.
    apply_pipeline(kube, namespace, "in-cluster")

    def successful() -> bool | None:
        state = want_state(kube, namespace, "in-cluster")
        assert state not in ("Failed", "Expired"), state
        return True if state == "Successful" else None

    logs = lambda: kubectl(real, "logs", "-n", release.namespace, pod_name)  # noqa: E731
    wait_for("the Want built by the in-cluster operator", successful, diagnose=logs)
    assert partitions(kube, namespace) == {
        "raw/date=2025-01-01": "Live",
        "summary/date=2025-01-01": "Live",
    }
    operator_log = logs()
    assert "Forbidden" not in operator_log, operator_log[-3000:]

    # Metrics, served for real inside the pod.
    metrics = kubectl(
        real, "exec", "-n", release.namespace, pod_name, "--", "python", "-c",
        "import urllib.request;"
        "print(urllib.request.urlopen('http://127.0.0.1:9090/metrics', timeout=5).read().decode())",
    )  # fmt: skip
    assert "databuild_" in metrics, metrics[:2000]

    # The examples' Want, built by the in-cluster operator with real containers.
    build_the_words_example(real, kube, namespace, logs)


def build_the_words_example(
    real: ControlPlane, kube: Kube, namespace: str, operator_logs: Callable[[], str]
) -> None:
    """examples/words in `namespace`: its Want Successful, its files and a build's logs."""
    assert real.real_node is not None
    started = time.monotonic()
    # The image imported into the node's containerd; the namespace's data directory on the
    # hostPath, owned by the job's uid. The chart's default admission rules admit these
    # JobDefinitions (the admin may create Jobs here); its opt-in restrictedPodTemplates,
    # like a namespace enforcing the baseline or restricted Pod Security Standard, would
    # refuse the hostPath.
    work = RealWork(REPO, real.real_node.socket, namespace)
    try:
        for doc in work.prepare():
            apply_manifest(kube, doc, namespace)

        def weekly_successful() -> bool | None:
            state = want_state(kube, namespace, "words-weekly-2025-w02")
            assert state not in ("Failed", "Expired"), state
            return True if state == "Successful" else None

        wait_for(
            "examples/words' Want built by real containers",
            weekly_successful,
            timeout=300,
            diagnose=lambda: operator_logs()[-3000:],
        )
        built = partitions(kube, namespace)
        for day in WEEK_DAYS:
            assert built.get(f"words/raw/date={day}") == "Live", built
            assert built.get(f"words/count/date={day}") == "Live", built
        assert built.get("words/weekly/week=2025-W02") == "Live", built

        # A real dependency miss: the weekly job's first run reported the days through
        # /dev/termination-log, and the in-cluster operator made Wants for them.
        wants = list_objects(kube, "Want", namespace)
        derived = [w for w in wants if (w["spec"].get("source") or {}).get("jobRun")]
        assert derived, [w["metadata"]["name"] for w in wants]

        # The files the real builds wrote, where the example's hostPath puts them.
        counts = {
            day: json.loads((work.data / f"words/count/date={day}/counts.json").read_text())
            for day in WEEK_DAYS
        }
        for day in WEEK_DAYS:
            words = (work.data / f"words/raw/date={day}/words.txt").read_text().split()
            assert len(words) == WORDS_A_DAY
            assert sum(counts[day].values()) == WORDS_A_DAY, counts[day]
        totals = json.loads((work.data / "words/weekly/week=2025-W02/totals.json").read_text())
        assert sum(totals.values()) == WORDS_A_DAY * len(WEEK_DAYS), totals

        # `kubectl logs` of one build: the real container's output, read through the kubelet.
        runs = list_objects(kube, "JobRun", namespace)
        (count_run,) = [
            r
            for r in runs
            if r["spec"]["jobDefinition"] == "words-count"
            and r["spec"]["partitions"] == [f"words/count/date={WEEK_DAYS[0]}"]
        ]
        job = count_run["status"]["jobName"]
        out = kubectl(real, "logs", "-n", namespace, f"job/{job}")
        assert f"read /data/{namespace}/words/raw/date={WEEK_DAYS[0]}/words.txt" in out, out
        assert f"wrote /data/{namespace}/words/count/date={WEEK_DAYS[0]}/counts.json" in out, out
        print(
            f"\nexamples/words built by the in-cluster operator: {time.monotonic() - started:.1f}s"
        )
    finally:
        work.cleanup()
