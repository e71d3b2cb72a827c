"""The operator's Prometheus metrics: names, units, labels and what feeds them."""

from __future__ import annotations

import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from databuild import __version__
from databuild.adapters.bel import BelEvent, BelWriter, open_store
from databuild.domain import (
    EntityKind,
    Event,
    JobRun,
    JobRunFailed,
    JobRunRunning,
    Partition,
    PartitionLive,
    PartitionRef,
    Want,
    WantBuilding,
    WantSuccessful,
    World,
)
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.metrics import (
    OperatorCollector,
    OperatorMetrics,
    serve,
    start_metrics_server,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _run_event(
    to_state: str, from_state: str | None, *, jd: str = "daily", attempt: str = "1"
) -> BelEvent:
    return BelEvent(
        "data",
        "JobRun",
        f"run-{to_state}-{attempt}",
        from_state,
        to_state,
        "X",
        T0,
        details={"attempt": attempt},
        job_definition=jd,
    )


def test_job_run_totals_per_job_definition() -> None:
    m = OperatorMetrics()
    m.record_event(_run_event("Running", "Queued"))
    m.record_event(_run_event("Queued", "Running"))  # attempt failed, retried
    m.record_event(_run_event("Running", "Queued", attempt="2"))
    m.record_event(_run_event("Succeeded", "Running"))
    m.record_event(_run_event("Running", "Queued", jd="raw"))
    m.record_event(_run_event("Failed", "Running", jd="raw"))
    value = m.registry.get_sample_value
    labels = {"namespace": "data", "job_definition": "daily"}
    assert value("databuild_job_runs_started_total", labels) == 1
    assert value("databuild_job_attempts_started_total", labels) == 2
    assert value("databuild_job_attempts_failed_total", labels) == 1
    assert value("databuild_job_runs_succeeded_total", labels) == 1
    assert value("databuild_job_runs_failed_total", labels) is None
    raw = {"namespace": "data", "job_definition": "raw"}
    assert value("databuild_job_runs_failed_total", raw) == 1


def test_want_latency_is_observed_from_the_clock_start() -> None:
    m = OperatorMetrics()
    done = BelEvent("data", "Want", "w", "Building", "Successful", "AllLive", T0)
    m.record_event(done, want_clock_start=T0 - timedelta(seconds=42))
    failed = BelEvent("data", "Want", "v", "Building", "Failed", "BuildFailed", T0)
    m.record_event(failed, want_clock_start=T0 - timedelta(seconds=1))
    value = m.registry.get_sample_value
    assert value("databuild_want_latency_seconds_count") == 1
    assert value("databuild_want_latency_seconds_sum") == 42
    assert value("databuild_want_latency_seconds_bucket", {"le": "30.0"}) == 0
    assert value("databuild_want_latency_seconds_bucket", {"le": "60.0"}) == 1
    finished = {"namespace": "data", "state": "Failed"}
    assert value("databuild_wants_finished_total", finished) == 1


def test_state_gauges_from_the_world_reset_drained_states() -> None:
    m = OperatorMetrics()
    ref = PartitionRef("raw/date=2025-01-01")
    world = World(
        wants={
            "a": Want("a", (ref,), T0, state=WantBuilding()),
            "b": Want("b", (ref,), T0, state=WantBuilding()),
        },
        partitions={ref: Partition(ref, PartitionLive())},
        job_runs={"r": JobRun("r", "raw", (ref,), (), T0, state=JobRunRunning(attempt=1))},
    )
    m.observe_world("data", world)
    value = m.registry.get_sample_value
    assert value("databuild_wants", {"namespace": "data", "state": "Building"}) == 2
    assert value("databuild_wants", {"namespace": "data", "state": "Failed"}) == 0
    assert value("databuild_job_runs", {"namespace": "data", "state": "Running"}) == 1
    assert value("databuild_partitions", {"namespace": "data", "state": "Live"}) == 1
    later = World(
        wants={"a": Want("a", (ref,), T0, state=WantSuccessful())},
        job_runs={"r": JobRun("r", "raw", (ref,), (), T0, state=JobRunFailed())},
    )
    m.observe_world("data", later)
    assert value("databuild_wants", {"namespace": "data", "state": "Building"}) == 0
    assert value("databuild_wants", {"namespace": "data", "state": "Successful"}) == 1
    assert value("databuild_job_runs", {"namespace": "data", "state": "Running"}) == 0


def test_reconcile_duration_queue_depth_and_sla() -> None:
    m = OperatorMetrics()
    with m.reconcile():
        pass
    try:
        with m.reconcile():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    m.set_queue_depth(7)
    m.sla_breached("data")
    value = m.registry.get_sample_value
    assert value("databuild_reconcile_duration_seconds_count", {"result": "ok"}) == 1
    assert value("databuild_reconcile_duration_seconds_count", {"result": "error"}) == 1
    assert value("databuild_queue_depth") == 7
    assert value("databuild_sla_breaches_total", {"namespace": "data"}) == 1


def test_bel_writer_health_is_read_at_scrape_time(tmp_path: Path) -> None:
    m = OperatorMetrics()
    store = open_store(f"sqlite:///{tmp_path / 'bel.db'}")
    writer = BelWriter(store, max_buffer=2)
    m.watch_bel_writer(writer)
    value = m.registry.get_sample_value
    assert value("databuild_bel_store_up") == 1
    assert value("databuild_bel_buffered_events") == 0
    events = [BelEvent("data", "Want", f"w{i}", None, "Pending", "Created", T0) for i in range(3)]
    writer.submit(events)  # not started yet: stays buffered, one is dropped
    assert value("databuild_bel_buffered_events") == 2
    assert value("databuild_bel_dropped_events_total") == 1
    writer.start()
    assert writer.flush(timeout=10)
    assert value("databuild_bel_buffered_events") == 0
    assert value("databuild_bel_written_events_total") == 2
    assert value("databuild_bel_store_errors_total") == 0
    writer.close()
    store.close()


def test_naming_conventions() -> None:
    m = OperatorMetrics()
    m.record_event(_run_event("Running", "Queued"))
    with m.reconcile():
        pass
    families = list(text_string_to_metric_families(m.render().decode()))
    assert families
    for family in families:
        if family.name.startswith(("process_", "python_")):
            continue  # the standard process and runtime metrics, under their usual names
        assert family.name.startswith("databuild_"), family.name
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
            for sample in family.samples:
                # No object names: only bounded labels on histograms (JobDefinitions
                # are few and written by people, unlike Wants and JobRuns).
                assert set(sample.labels) <= {"le", "result", "job_definition", "outcome"}


def test_http_endpoint_serves_metrics() -> None:
    m = OperatorMetrics()
    m.sla_breached("data")
    server = start_metrics_server(m, port=0, addr="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert 'databuild_sla_breaches_total{namespace="data"} 1.0' in body
    finally:
        server.stop()


@dataclass
class _Gateway:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    codes: Counter[tuple[str, str, str]] = field(default_factory=Counter)


@dataclass
class _Loop:
    full_plans: int = 0
    incremental_plans: int = 0
    actions: int = 0
    conflicts: int = 0


def test_operator_collector_and_observed_metrics_share_one_endpoint() -> None:
    gateway, loop, bel = (
        _Gateway(),
        _Loop(full_plans=1, incremental_plans=2, actions=9),
        BuildEventLog(recent=1),
    )
    gateway.requests["create", "JobRun"] += 2
    gateway.writes["create", "JobRun"] += 1
    gateway.errors["create", "JobRun", "AlreadyExists"] += 1
    gateway.codes["create", "JobRun", "409"] += 1
    bel.append("data", Event(T0, EntityKind.WANT, "w", "Pending", "Building", "Building"))
    bel.append("data", Event(T0, EntityKind.WANT, "v", "Pending", "Building", "Building"))
    assert len(bel.events) == 1  # memory holds the recent events; the counts hold all
    m = OperatorMetrics()
    m.sla_breached("data")
    server = serve(OperatorCollector(gateway, loop, bel, lambda: True), 0, "127.0.0.1", m)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    assert samples["databuild_plans_total", (("kind", "full"),)] == 1
    assert samples["databuild_plans_total", (("kind", "incremental"),)] == 2
    assert samples["databuild_api_writes_total", (("kind", "JobRun"), ("verb", "create"))] == 1
    assert samples["databuild_transitions_total", (("kind", "Want"), ("to_state", "Building"))] == 2
    assert samples["databuild_leader", ()] == 1
    assert samples["databuild_sla_breaches_total", (("namespace", "data"),)] == 1
    code = (("code", "409"), ("kind", "JobRun"), ("verb", "create"))
    assert samples["databuild_api_responses_total", code] == 1


@dataclass
class _Store:
    data: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)

    def namespaces(self) -> list[str]:
        return sorted(self.data)

    def objects(self, kind: str, namespace: str) -> dict[str, dict[str, Any]]:
        return self.data.get(namespace, {}).get(kind, {})


def test_state_gauges_and_sla_breaches_are_read_from_the_store_at_scrape_time() -> None:
    store = _Store(
        {
            "data": {
                "Want": {
                    "a": {"metadata": {"name": "a"}, "status": {"state": "Building"}},
                    "b": {"metadata": {"name": "b"}, "status": {}},
                    "c": {
                        "metadata": {"name": "c"},
                        "status": {"state": "Building", "slaBreached": True},
                    },
                },
                "JobRun": {"r": {"status": {"state": "Running"}}},
            }
        }
    )
    m = OperatorMetrics()
    m.watch_store(store)
    value = m.registry.get_sample_value
    assert value("databuild_wants", {"namespace": "data", "state": "Building"}) == 2
    assert value("databuild_wants", {"namespace": "data", "state": "Pending"}) == 1
    assert value("databuild_job_runs", {"namespace": "data", "state": "Running"}) == 1
    assert value("databuild_partitions", {"namespace": "data", "state": "Live"}) == 0
    assert value("databuild_sla_breaches_total", {"namespace": "data"}) == 1
    store.data["data"]["Want"]["a"]["status"] = {"state": "Successful", "slaBreached": True}
    assert value("databuild_wants", {"namespace": "data", "state": "Building"}) == 1
    assert value("databuild_sla_breaches_total", {"namespace": "data"}) == 2
    value("databuild_wants", {"namespace": "data", "state": "Building"})
    assert value("databuild_sla_breaches_total", {"namespace": "data"}) == 2  # counted once


def test_observe_event_reads_the_want_clock_start_from_the_want() -> None:
    m = OperatorMetrics()
    done = BelEvent("data", "Want", "w", "Building", "Successful", "AllLive", T0)
    created = {"metadata": {"creationTimestamp": "2024-12-31T23:59:00Z"}, "spec": {}}
    m.observe_event(done, created)
    stamped = {
        "metadata": {"creationTimestamp": "2024-12-31T23:00:00Z"},
        "spec": {"dataTimestamp": "2024-12-31T23:59:50Z"},
    }
    m.observe_event(done, stamped)
    m.observe_event(done, None)  # unknown Want: counted as finished, no latency
    value = m.registry.get_sample_value
    assert value("databuild_want_latency_seconds_count") == 2
    assert value("databuild_want_latency_seconds_sum") == 70
    assert (
        value("databuild_wants_finished_total", {"namespace": "data", "state": "Successful"}) == 3
    )
    m.observe_reconcile(0.2, ok=False)
    assert value("databuild_reconcile_duration_seconds_count", {"result": "error"}) == 1


def test_process_build_info_and_run_durations_per_job_definition() -> None:
    m = OperatorMetrics()
    start = BelEvent("data", "JobRun", "r1", "Queued", "Running", "Started", T0,
                     details={"attempt": "1"}, job_definition="daily")  # fmt: skip
    retry = BelEvent("data", "JobRun", "r1", "Queued", "Running", "Started",
                     T0 + timedelta(seconds=30), details={"attempt": "2"},
                     job_definition="daily")  # fmt: skip
    done = BelEvent("data", "JobRun", "r1", "Running", "Succeeded", "Succeeded",
                    T0 + timedelta(seconds=42), job_definition="daily")  # fmt: skip
    for event in (start, retry, done):
        m.record_event(event)
    value = m.registry.get_sample_value
    labels = {"job_definition": "daily", "outcome": "Succeeded"}
    assert value("databuild_job_run_duration_seconds_sum", labels) == 42  # from attempt 1
    assert value("databuild_job_run_duration_seconds_count", labels) == 1
    build = [s for f in text_string_to_metric_families(m.render().decode())
             if f.name == "databuild_build_info" for s in f.samples]  # fmt: skip
    assert build[0].labels["version"] == __version__ and build[0].value == 1
    names = {f.name for f in text_string_to_metric_families(m.render().decode())}
    assert {"process_cpu_seconds", "process_resident_memory_bytes"} <= names
