"""The chart's monitoring objects pass the Prometheus Operator's own CRD schemas.

The CRDs come from the Prometheus Operator's Go module (hack/fetch-prometheus-crds.sh,
cached); the API server checks every object with a strict server-side dry run, so the
check is the one a cluster with the Prometheus Operator would make.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest

from databuild.testing.demo import KubeError, install_crds, request
from databuild.testing.kube import Kube
from tests.unit.chart.helmtool import ROOT, template

MONITORING = {
    "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors",
    "PrometheusRule": "prometheusrules",
}
ENABLED = [
    "--set", "monitoring.serviceMonitor.enabled=true",
    "--set", "monitoring.podMonitor.enabled=true",
    "--set", "monitoring.prometheusRule.enabled=true",
    "--set", "monitoring.dashboard.enabled=true",
    "--set", "monitoring.serviceMonitor.labels.release=prometheus",
]  # fmt: skip


@pytest.fixture(scope="module")
def prometheus_crds(kube: Kube, tmp_path_factory: pytest.TempPathFactory) -> None:
    fetched = subprocess.run(
        [str(ROOT / "hack" / "fetch-prometheus-crds.sh")],
        capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    source = Path(fetched.stdout.strip().splitlines()[-1])
    chosen = tmp_path_factory.mktemp("prometheus-crds")
    for plural in MONITORING.values():
        name = f"monitoring.coreos.com_{plural}.yaml"
        (chosen / name).write_text((source / name).read_text())
    install_crds(kube, chosen)


def _dry_run(kube: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    path = f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/{MONITORING[doc['kind']]}"
    return request(
        kube, "POST", path, doc, query=[("dryRun", "All"), ("fieldValidation", "Strict")]
    )


def test_helm_template_with_monitoring_passes_the_prometheus_operator_schemas(
    kube: Kube, namespace: str, prometheus_crds: None
) -> None:
    docs = template(*ENABLED, namespace=namespace)
    monitoring = [d for d in docs if d["kind"] in MONITORING]
    assert sorted(d["kind"] for d in monitoring) == sorted(MONITORING)
    for doc in monitoring:
        accepted = _dry_run(kube, namespace, doc)
        assert accepted["metadata"]["name"] == doc["metadata"]["name"]
    rule = next(d for d in monitoring if d["kind"] == "PrometheusRule")
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert alerts == {
        "DataBuildEventsDropped",
        "DataBuildEventStoreDown",
        "DataBuildSLABreached",
        "DataBuildJobRunsFailing",
        "DataBuildScheduleBehind",
        "DataBuildScheduleStalled",
    }
    # The ServiceMonitor scrapes the metrics Service the chart renders with it.
    (monitor,) = [d for d in monitoring if d["kind"] == "ServiceMonitor"]
    services = [d for d in docs if d["kind"] == "Service"]
    selected = [
        s for s in services
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]  # fmt: skip
    assert [s["spec"]["ports"][0]["name"] for s in selected] == ["metrics"]
    dashboard = next(d for d in docs if d["kind"] == "ConfigMap")
    assert '"uid": "databuild"' in dashboard["data"]["databuild.json"]


def test_the_schema_check_can_fail(kube: Kube, namespace: str, prometheus_crds: None) -> None:
    docs = template(*ENABLED, namespace=namespace)
    monitor = copy.deepcopy(next(d for d in docs if d["kind"] == "ServiceMonitor"))
    unknown = copy.deepcopy(monitor)
    unknown["spec"]["endpoints"][0]["scrapeEvery"] = "30s"  # no such field
    with pytest.raises(KubeError, match=r'unknown field "spec.endpoints\[0\].scrapeEvery"'):
        _dry_run(kube, namespace, unknown)
    monitor["spec"]["endpoints"][0]["interval"] = "every now and then"  # not a duration
    with pytest.raises(KubeError, match=r"spec.endpoints\[0\].interval") as refused:
        _dry_run(kube, namespace, monitor)
    assert refused.value.status == 422
    # The healthy neighbour, checked right after, still passes.
    healthy = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert _dry_run(kube, namespace, healthy)["kind"] == "PrometheusRule"
