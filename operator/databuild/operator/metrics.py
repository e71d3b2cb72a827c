"""Prometheus metrics of the operator: one prefix (``databuild_``), base units.

Conventions: counters end in ``_total``, durations are ``_seconds`` histograms, and
histograms carry no object names in their labels (a Want's or JobRun's name would make
one time series per object). Counters may carry the JobDefinition's name: there are few
of those, and "which job fails" is the question they answer.

Two sources, one registry. :class:`OperatorCollector` is read at scrape time from the
gateway's request counters, the orchestration loop's statistics and the in-memory BEL,
so nothing on the hot path touches Prometheus objects. :class:`OperatorMetrics` holds
what must be observed as it happens, in its own registry (so tests, and several
operators in one process, do not share global state). The operator feeds it:

* :meth:`OperatorMetrics.observe_event` (a :class:`~databuild.adapters.bel.BelRecorder`
  observer) or :meth:`OperatorMetrics.record_event` for every transition: JobRun
  started/succeeded/failed totals per JobDefinition, want latency;
* :meth:`OperatorMetrics.watch_store` once: Want/JobRun/Partition gauges and new SLA
  breaches are read from the world store at every scrape (or push them with
  :meth:`OperatorMetrics.observe_world` and :meth:`OperatorMetrics.sla_breached`);
* :meth:`OperatorMetrics.reconcile` around (or :meth:`OperatorMetrics.observe_reconcile`
  after) each orchestration pass;
* :meth:`OperatorMetrics.set_queue_depth` when its work queue changes;
* :meth:`OperatorMetrics.watch_bel_writer` once, so the BEL writer's health is read at
  every scrape;

and :func:`serve` (or :func:`start_metrics_server`) serves ``/metrics`` over HTTP.
"""

from __future__ import annotations

import contextlib
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

from databuild import __version__
from databuild.adapters.bel import BelEvent, BelWriter
from databuild.adapters.codec import time_or_none
from databuild.adapters.resources import JobRunState, PartitionState, WantState
from databuild.domain import World
from databuild.domain.schedule import READY_REASONS as SCHEDULE_REASONS

__all__ = [
    "JOB_RUN_STATES",
    "PARTITION_STATES",
    "PREFIX",
    "WANT_STATES",
    "MetricsServer",
    "OperatorCollector",
    "OperatorMetrics",
    "serve",
    "start_metrics_server",
]

PREFIX = "databuild_"

WANT_STATES: tuple[str, ...] = get_args(WantState)
JOB_RUN_STATES: tuple[str, ...] = get_args(JobRunState)
PARTITION_STATES: tuple[str, ...] = get_args(PartitionState)


def _now() -> datetime:
    return datetime.now(UTC)


_STATES: Mapping[str, tuple[str, ...]] = {
    "Want": WANT_STATES,
    "JobRun": JOB_RUN_STATES,
    "Partition": PARTITION_STATES,
}


class _ObjectStore(Protocol):
    """The operator's world store, as far as metrics read it."""

    def namespaces(self) -> list[str]: ...
    def objects(self, kind: str, namespace: str) -> Mapping[str, Mapping[str, Any]]: ...


# From a second to a day: a want covers anything from one quick job to a daily backfill.
_WANT_LATENCY_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_RECONCILE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RUN_DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
#: JobRuns whose start is remembered for the duration histogram (a bound, not a target).
_MAX_RUNNING_TRACKED = 100_000


class _Refresher(Collector):
    """Yields nothing; refreshes the store-derived metrics just before they are read."""

    def __init__(self, metrics: OperatorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.refresh()
        return []


class _BelWriterCollector(Collector):
    """Reads the BEL writer's health at scrape time (no bookkeeping twice)."""

    def __init__(self) -> None:
        self._writers: list[BelWriter] = []
        self._lock = threading.Lock()

    def add(self, writer: BelWriter) -> None:
        with self._lock:
            self._writers.append(writer)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            healths = [w.health() for w in self._writers]
        buffered = GaugeMetricFamily(
            PREFIX + "bel_buffered_events",
            "BEL events accepted by the writer but not yet stored.",
        )
        up = GaugeMetricFamily(
            PREFIX + "bel_store_up",
            "1 when the last append to the BEL store succeeded (or none failed yet), else 0.",
        )
        errors = CounterMetricFamily(
            PREFIX + "bel_store_errors",
            "Failed appends to the BEL store (each is retried).",
        )
        dropped = CounterMetricFamily(
            PREFIX + "bel_dropped_events",
            "BEL events lost because the writer's buffer was full.",
        )
        written = CounterMetricFamily(
            PREFIX + "bel_written_events",
            "BEL events appended to the store.",
        )
        buffered.add_metric([], sum(h.buffered for h in healths))
        up.add_metric([], 1.0 if all(h.last_error is None for h in healths) else 0.0)
        errors.add_metric([], sum(h.errors_total for h in healths))
        dropped.add_metric([], sum(h.dropped_total for h in healths))
        written.add_metric([], sum(h.written_total for h in healths))
        return [buffered, up, errors, dropped, written]


class OperatorMetrics:
    """The operator's metrics, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # Registered first, so the gauges it refreshes are up to date when they are read.
        r.register(_Refresher(self))
        self.wants = Gauge(PREFIX + "wants", "Wants by state.", ["namespace", "state"], registry=r)
        self.job_runs = Gauge(
            PREFIX + "job_runs", "JobRuns by state.", ["namespace", "state"], registry=r
        )
        self.partitions = Gauge(
            PREFIX + "partitions", "Partitions by state.", ["namespace", "state"], registry=r
        )
        self.job_runs_started = Counter(
            PREFIX + "job_runs_started",
            "JobRuns started (their first attempt), per JobDefinition.",
            ["namespace", "job_definition"],
            registry=r,
        )
        self.job_runs_succeeded = Counter(
            PREFIX + "job_runs_succeeded",
            "JobRuns that succeeded, per JobDefinition.",
            ["namespace", "job_definition"],
            registry=r,
        )
        self.job_runs_failed = Counter(
            PREFIX + "job_runs_failed",
            "JobRuns that failed for good, per JobDefinition.",
            ["namespace", "job_definition"],
            registry=r,
        )
        self.attempts_started = Counter(
            PREFIX + "job_attempts_started",
            "Batch Jobs started (every attempt), per JobDefinition.",
            ["namespace", "job_definition"],
            registry=r,
        )
        self.attempts_failed = Counter(
            PREFIX + "job_attempts_failed",
            "Failed attempts that were retried, per JobDefinition.",
            ["namespace", "job_definition"],
            registry=r,
        )
        self.want_latency = Histogram(
            PREFIX + "want_latency_seconds",
            "Time from a Want's creation (or dataTimestamp) to Successful.",
            buckets=_WANT_LATENCY_BUCKETS,
            registry=r,
        )
        self.wants_finished = Counter(
            PREFIX + "wants_finished",
            "Wants that reached a terminal state, by that state.",
            ["namespace", "state"],
            registry=r,
        )
        self.queue_depth = Gauge(
            PREFIX + "queue_depth",
            "Reconcile requests waiting for the orchestrator.",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            PREFIX + "reconcile_duration_seconds",
            "Duration of one orchestration pass (read world, plan, execute).",
            ["result"],
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        # The process itself (CPU, memory, file descriptors, start time) and Python's GC.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Gauge(
            PREFIX + "build_info",
            "Always 1; the labels say which operator version runs on which Python.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.job_run_duration = Histogram(
            PREFIX + "job_run_duration_seconds",
            "Time from a JobRun's first attempt starting to its end, per JobDefinition "
            "(few, unlike JobRun names) and outcome (Succeeded, Failed).",
            ["job_definition", "outcome"],
            buckets=_RUN_DURATION_BUCKETS,
            registry=r,
        )
        self._run_started: dict[tuple[str, str], datetime] = {}
        self.sla_breaches = Counter(
            PREFIX + "sla_breaches",
            "Wants that missed their SLA.",
            ["namespace"],
            registry=r,
        )
        self.schedules = Gauge(
            PREFIX + "schedules",
            "Schedules by the reason of their Ready condition.",
            ["namespace", "reason"],
            registry=r,
        )
        self.schedule_lag = Gauge(
            PREFIX + "schedule_lag_seconds",
            "Age of the oldest due tick that has no Want yet, per namespace (0: up to date).",
            ["namespace"],
            registry=r,
        )
        self.schedule_wants_created = Counter(
            PREFIX + "schedule_wants_created",
            "Wants created by Schedules.",
            ["namespace"],
            registry=r,
        )
        self._bel = _BelWriterCollector()
        r.register(self._bel)
        self._stores: list[_ObjectStore] = []
        self._clock: Callable[[], datetime] = _now
        self._breached: set[tuple[str, str]] = set()
        self._refresh_lock = threading.Lock()

    # --- feeding -------------------------------------------------------------------------

    def record_event(self, event: BelEvent, *, want_clock_start: datetime | None = None) -> None:
        """Count one transition. For a Want becoming Successful pass its clock start
        (``dataTimestamp`` or creation time) to observe its latency."""
        ns = event.namespace
        if event.kind == "JobRun":
            jd = event.job_definition or "unknown"
            run = (ns, event.name)
            if event.to_state == "Running" and event.from_state == "Queued":
                self.attempts_started.labels(ns, jd).inc()
                if event.details.get("attempt", "1") == "1":
                    self.job_runs_started.labels(ns, jd).inc()
                    if len(self._run_started) < _MAX_RUNNING_TRACKED:
                        self._run_started[run] = event.time
            elif event.to_state == "Succeeded":
                self.job_runs_succeeded.labels(ns, jd).inc()
                self._observe_run(run, jd, "Succeeded", event.time)
            elif event.to_state == "Failed":
                self.job_runs_failed.labels(ns, jd).inc()
                self._observe_run(run, jd, "Failed", event.time)
            elif event.to_state == "Cancelled":
                self._run_started.pop(run, None)
            elif event.from_state == "Running" and event.to_state == "Queued":
                self.attempts_failed.labels(ns, jd).inc()
        elif event.kind == "Want" and event.to_state in ("Successful", "Failed", "Expired"):
            self.wants_finished.labels(ns, event.to_state).inc()
            if event.to_state == "Successful" and want_clock_start is not None:
                latency = (event.time - want_clock_start).total_seconds()
                self.want_latency.observe(max(0.0, latency))

    def _observe_run(self, run: tuple[str, str], jd: str, outcome: str, end: datetime) -> None:
        started = self._run_started.pop(run, None)
        if started is not None:
            seconds = max(0.0, (end - started).total_seconds())
            self.job_run_duration.labels(jd, outcome).observe(seconds)

    def set_state_counts(self, namespace: str, kind: str, counts: Mapping[str, int]) -> None:
        """Set the gauge of `kind` (Want, JobRun, Partition) in `namespace`; states not
        in `counts` are set to 0 so a drained state does not keep a stale value."""
        gauge = {"Want": self.wants, "JobRun": self.job_runs, "Partition": self.partitions}[kind]
        for state in _STATES[kind]:
            gauge.labels(namespace, state).set(counts.get(state, 0))

    def observe_world(self, namespace: str, world: World) -> None:
        """Set every state gauge of `namespace` from the orchestrator's world."""
        for kind, states in (
            ("Want", [w.state.STATE for w in world.wants.values()]),
            ("JobRun", [r.state.STATE for r in world.job_runs.values()]),
            ("Partition", [p.state.STATE for p in world.partitions.values()]),
        ):
            counts: dict[str, int] = {}
            for state in states:
                counts[state] = counts.get(state, 0) + 1
            self.set_state_counts(namespace, kind, counts)

    @contextlib.contextmanager
    def reconcile(self) -> Iterator[None]:
        """Time one orchestration pass: ``with metrics.reconcile(): ...``."""
        started = time.perf_counter()
        result = "error"
        try:
            yield
            result = "ok"
        finally:
            self.reconcile_duration.labels(result).observe(time.perf_counter() - started)

    def set_queue_depth(self, depth: int) -> None:
        """How many reconcile requests wait for the orchestrator."""
        self.queue_depth.set(depth)

    def sla_breached(self, namespace: str) -> None:
        """A Want missed its SLA (call once per Want, when it is flagged)."""
        self.sla_breaches.labels(namespace).inc()

    def observe_event(self, event: BelEvent, obj: Mapping[str, Any] | None) -> None:
        """A :class:`~databuild.adapters.bel.BelRecorder` observer: :meth:`record_event`
        with the Want's clock start read from the Want itself (`obj`)."""
        start = None
        if event.kind == "Want" and obj is not None:
            spec = obj.get("spec") or {}
            meta = obj.get("metadata") or {}
            start = time_or_none(spec.get("dataTimestamp") or meta.get("creationTimestamp"))
        self.record_event(event, want_clock_start=start)

    def observe_reconcile(self, seconds: float, *, ok: bool = True) -> None:
        """One orchestration pass took `seconds` (when :meth:`reconcile` cannot wrap it)."""
        self.reconcile_duration.labels("ok" if ok else "error").observe(seconds)

    def watch_store(self, store: _ObjectStore, clock: Callable[[], datetime] = _now) -> None:
        """Read the state gauges, Schedules and new SLA breaches from `store` at every
        scrape (`clock` tells a Schedule's lag)."""
        self._stores.append(store)
        self._clock = clock

    def refresh(self) -> None:
        """Recompute what is read from watched stores (called before each scrape)."""
        with self._refresh_lock:
            for store in self._stores:
                for ns in store.namespaces():
                    for kind in ("Want", "JobRun", "Partition"):
                        counts: dict[str, int] = {}
                        for obj in store.objects(kind, ns).values():
                            status = obj.get("status") or {}
                            state = status.get("state") or _STATES[kind][0]
                            counts[state] = counts.get(state, 0) + 1
                            if kind == "Want" and status.get("slaBreached"):
                                name = str((obj.get("metadata") or {}).get("name", ""))
                                if (ns, name) not in self._breached:
                                    self._breached.add((ns, name))
                                    self.sla_breached(ns)
                        self.set_state_counts(ns, kind, counts)
                    self._refresh_schedules(ns, store.objects("Schedule", ns).values())

    def _refresh_schedules(self, namespace: str, schedules: Iterable[Mapping[str, Any]]) -> None:
        reasons = dict.fromkeys(SCHEDULE_REASONS, 0)
        lag = 0.0
        now = self._clock()
        for obj in schedules:
            status = obj.get("status") or {}
            ready = next(
                (
                    c
                    for c in status.get("conditions") or ()
                    if isinstance(c, Mapping) and c.get("type") == "Ready"
                ),
                None,
            )
            reason = str(ready.get("reason", "")) if ready else ""
            if reason in reasons:
                reasons[reason] += 1
            # A due tick without a Want is the status' nextTick while it is in the past
            # (a suspended Schedule skips its ticks: never behind).
            due = time_or_none(status.get("nextTick"))
            if due is not None and reason != "Suspended" and due < now:
                lag = max(lag, (now - due).total_seconds())
        for reason, count in reasons.items():
            self.schedules.labels(namespace, reason).set(count)
        self.schedule_lag.labels(namespace).set(lag)

    def watch_bel_writer(self, writer: BelWriter) -> None:
        """Report `writer`'s health (buffered events, errors, drops) at every scrape."""
        self._bel.add(writer)

    # --- exposing ------------------------------------------------------------------------

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class MetricsServer:
    """A running ``/metrics`` HTTP endpoint; :meth:`stop` shuts it down."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The port it listens on (useful when started on port 0)."""
        port: int = self._server.server_address[1]
        return port

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(
    metrics: OperatorMetrics, port: int = 8080, addr: str = "0.0.0.0"
) -> MetricsServer:
    """Serve `metrics` at ``http://addr:port/metrics`` from a daemon thread."""
    server, thread = start_http_server(port, addr=addr, registry=metrics.registry)
    return MetricsServer(server, thread)


# ---------------------------------------------------------------------------------------
# Read at scrape time: the gateway's, the loop's and the in-memory BEL's counters
# ---------------------------------------------------------------------------------------


class _GatewayCounts(Protocol):
    @property
    def requests(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def writes(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def errors(self) -> Mapping[tuple[str, str, str], int]: ...
    @property
    def codes(self) -> Mapping[tuple[str, str, str], int]: ...


class _LoopCounts(Protocol):
    @property
    def full_plans(self) -> int: ...
    @property
    def incremental_plans(self) -> int: ...
    @property
    def actions(self) -> int: ...
    @property
    def conflicts(self) -> int: ...


class _TransitionCounts(Protocol):
    @property
    def transitions(self) -> Mapping[tuple[str, str], int]: ...


class OperatorCollector(Collector):
    """Exposes the operator's counters to Prometheus."""

    def __init__(
        self,
        gateway: _GatewayCounts,
        loop: _LoopCounts,
        bel: _TransitionCounts,
        is_leading: Callable[[], bool],
    ) -> None:
        self.gateway = gateway
        self.loop = loop
        self.bel = bel
        self.is_leading = is_leading

    def collect(self) -> Iterator[Metric]:
        """One sample per counter."""
        requests = CounterMetricFamily(
            "databuild_api_requests",
            "API requests made, by verb and kind.",
            labels=["verb", "kind"],
        )
        for (verb, kind), n in sorted(self.gateway.requests.items()):
            requests.add_metric([verb, kind], n)
        yield requests
        writes = CounterMetricFamily(
            "databuild_api_writes",
            "Successful API writes, by verb and kind.",
            labels=["verb", "kind"],
        )
        for (verb, kind), n in sorted(self.gateway.writes.items()):
            writes.add_metric([verb, kind], n)
        yield writes
        errors = CounterMetricFamily(
            "databuild_api_errors",
            "Failed API requests, by verb, kind and error.",
            labels=["verb", "kind", "error"],
        )
        for (verb, kind, error), n in sorted(self.gateway.errors.items()):
            errors.add_metric([verb, kind, error], n)
        yield errors
        codes = CounterMetricFamily(
            "databuild_api_responses",
            "API responses by verb, kind and HTTP code (2xx: success; 0: no response).",
            labels=["verb", "kind", "code"],
        )
        for (verb, kind, code), n in sorted(self.gateway.codes.items()):
            codes.add_metric([verb, kind, code], n)
        yield codes
        plans = CounterMetricFamily(
            "databuild_plans",
            "Plans made, by kind: full (every object looked at) or incremental (the kept "
            "planner, around changed batch Jobs alone).",
            labels=["kind"],
        )
        plans.add_metric(["full"], self.loop.full_plans)
        plans.add_metric(["incremental"], self.loop.incremental_plans)
        yield plans
        yield CounterMetricFamily(
            "databuild_plan_actions", "Actions planned.", value=self.loop.actions
        )
        yield CounterMetricFamily(
            "databuild_plan_conflicts",
            "Writes that met a conflict and re-planned.",
            value=self.loop.conflicts,
        )
        transitions = CounterMetricFamily(
            "databuild_transitions",
            "State transitions applied (BEL events), by kind and state.",
            labels=["kind", "to_state"],
        )
        for (kind, state), n in sorted(self.bel.transitions.items()):
            transitions.add_metric([kind, state], n)
        yield transitions
        yield GaugeMetricFamily(
            "databuild_leader",
            "1 while this process holds the leader Lease.",
            value=1.0 if self.is_leading() else 0.0,
        )


def serve(
    collector: Collector,
    port: int,
    address: str = "0.0.0.0",
    metrics: OperatorMetrics | None = None,
) -> MetricsServer:
    """Serve ``/metrics`` on ``port`` from a background thread: `collector`'s samples
    and, when given, `metrics` (both in `metrics`' registry)."""
    metrics = metrics or OperatorMetrics()
    metrics.registry.register(collector)
    return start_metrics_server(metrics, port, address)
