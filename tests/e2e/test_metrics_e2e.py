"""/metrics after a real run: build counters per JobDefinition, gauges, latency, BEL health."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from databuild.testing.demo import (
    OperatorProcess,
    create_object,
    get_object,
    wait_until,
    want_state,
)

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

DATE = "2025-01-01"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def operator(
    control_plane: Cluster, namespace: str, crds: None, tmp_path: Path
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=Path(control_plane.kubeconfig),
        namespaces=[namespace],
        log_path=tmp_path / "operator.log",
        metrics_port=_free_port(),
        extra_args=[
            "--lease-name",
            f"databuild-{namespace}"[:63],
            "--lease-duration-seconds",
            "4",
            "--bel-url",
            f"sqlite:///{tmp_path / 'bel.db'}",
        ],
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _scrape(process: OperatorProcess) -> Samples:
    url = f"http://127.0.0.1:{process.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _jobdef(name: str, output: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    template = {
        "metadata": {"labels": labels or {}},
        "spec": {"containers": [{"name": "main", "image": "x.invalid/j:1"}]},
    }
    return _doc("JobDefinition", name, {"outputs": [output], "template": template})


def test_metrics_after_a_successful_and_a_failed_want(
    operator: OperatorProcess, kube: Kube, namespace: str
) -> None:
    for doc in (
        _jobdef("good", "good/date={date}"),
        _jobdef("bad", "bad/date={date}", {"kwok.databuild.dev/outcome": "fail"}),
        _doc("Want", "ok", {"partitions": [f"good/date={DATE}"]}),
        _doc("Want", "ko", {"partitions": [f"bad/date={DATE}"]}),
    ):
        create_object(kube, doc, namespace)

    def finished() -> bool:
        states = [want_state(get_object(kube, "Want", namespace, n) or {}) for n in ("ok", "ko")]
        return states == ["Successful", "Failed"]

    wait_until(finished, timeout=90, what="both Wants to finish", describe=operator.log_tail)

    ns = ("namespace", namespace)

    def settled() -> Samples | None:
        s = _scrape(operator)
        done = s.get(("databuild_bel_buffered_events", ()), 1) == 0
        return s if done and s.get(("databuild_wants", (ns, ("state", "Failed")))) == 1 else None

    samples = wait_until(settled, timeout=30, what="metrics to settle")

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    good = {"namespace": namespace, "job_definition": "good"}
    bad = {"namespace": namespace, "job_definition": "bad"}
    assert value("databuild_job_runs_started_total", **good) == 1
    assert value("databuild_job_runs_succeeded_total", **good) == 1
    assert value("databuild_job_runs_failed_total", **good) is None
    assert value("databuild_job_runs_started_total", **bad) == 1
    assert value("databuild_job_runs_failed_total", **bad) == 1
    assert value("databuild_wants", namespace=namespace, state="Successful") == 1
    assert value("databuild_wants", namespace=namespace, state="Failed") == 1
    assert value("databuild_wants", namespace=namespace, state="Building") == 0
    assert value("databuild_job_runs", namespace=namespace, state="Succeeded") == 1
    assert value("databuild_partitions", namespace=namespace, state="Live") == 1
    assert value("databuild_partitions", namespace=namespace, state="Failed") == 1
    assert value("databuild_wants_finished_total", namespace=namespace, state="Failed") == 1
    latency_count = value("databuild_want_latency_seconds_count")
    assert latency_count == 1
    latency = value("databuild_want_latency_seconds_sum")
    assert latency is not None
    assert 0 < latency < 90
    assert value("databuild_transitions_total", kind="Want", to_state="Successful") == 1
    assert (value("databuild_reconcile_duration_seconds_count", result="ok") or 0) >= 1
    assert value("databuild_bel_store_up") == 1
    assert (value("databuild_bel_written_events_total") or 0) >= 10
    assert value("databuild_bel_dropped_events_total") == 0
    assert value("databuild_bel_store_errors_total") == 0
    # Histograms carry no names of objects that come and go (Wants, partitions, runs):
    # a JobDefinition is the one name allowed, for run durations per JobDefinition, since
    # a namespace has few of them and they last.
    allowed = {"le", "result", "job_definition", "outcome"}
    for (name, labels), _ in samples.items():
        if name.endswith(("_bucket", "_sum", "_count")):
            assert {k for k, _ in labels} <= allowed, (name, labels)
    assert (
        value("databuild_job_run_duration_seconds_count", job_definition="bad", outcome="Failed")
        == 1
    )


def test_job_completions_are_planned_incrementally(
    operator: OperatorProcess, kube: Kube, namespace: str
) -> None:
    """A Want of 12 independent partitions: one full pass decides the builds, and the
    completions of their Jobs are planned by the kept Planner, not by full passes."""
    create_object(kube, _jobdef("wide", "wide/shard={shard}"), namespace)
    refs = [f"wide/shard={i}" for i in range(12)]

    def plans() -> dict[str, float]:
        s = _scrape(operator)
        return {
            kind: s.get(("databuild_plans_total", (("kind", kind),)), 0)
            for kind in ("full", "incremental")
        }

    def first_plan() -> dict[str, float] | None:
        try:
            counted = plans()
        except OSError:
            return None  # the metrics server is not listening yet
        return counted if counted["full"] >= 1 else None

    before = wait_until(first_plan, timeout=60, what="a first plan", describe=operator.log_tail)
    create_object(kube, _doc("Want", "wide", {"partitions": refs}), namespace)
    wait_until(
        lambda: want_state(get_object(kube, "Want", namespace, "wide") or {}) == "Successful",
        timeout=90,
        what="the wide Want to succeed",
        describe=operator.log_tail,
    )
    after = plans()
    full = after["full"] - before["full"]
    incremental = after["incremental"] - before["incremental"]
    # 12 Jobs start and complete and their pods come and go: the changes that arrive
    # together are planned together, always by the kept Planner; the one full pass is
    # the new Want's (a second one is allowed for a surprise, say a retried write).
    assert incremental >= 1, (full, incremental)
    assert full <= 2, (full, incremental)
