"""Prometheus metrics: one ``databuild_`` prefix, base units, ``_total`` counters.

Read at scrape time from the gateway's counters, the loop's statistics and the Build
Event Log, so nothing on the hot path touches Prometheus objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from databuild.adapters.gateway import GatewayStats
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.loop import LoopStats


class OperatorCollector(Collector):
    """Exposes the operator's counters to Prometheus."""

    def __init__(
        self,
        gateway: GatewayStats,
        loop: LoopStats,
        bel: BuildEventLog,
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
        yield CounterMetricFamily("databuild_plans", "Plans made.", value=self.loop.plans)
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
        counts = Counter((str(e.event.kind), e.event.to_state) for e in self.bel.events)
        for (kind, state), n in sorted(counts.items()):
            transitions.add_metric([kind, state], n)
        yield transitions
        yield GaugeMetricFamily(
            "databuild_leader",
            "1 while this process holds the leader Lease.",
            value=1.0 if self.is_leading() else 0.0,
        )


def serve(collector: OperatorCollector, port: int, address: str = "0.0.0.0") -> None:
    """Serve ``/metrics`` on ``port`` from a background thread."""
    registry = CollectorRegistry()
    registry.register(collector)
    start_http_server(port, addr=address, registry=registry)
