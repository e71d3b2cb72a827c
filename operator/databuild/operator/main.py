"""Wiring: settings, logging, the API client, the watches, the Lease and the orchestration loop.

``python -m databuild.operator`` runs :func:`main`. :class:`Operator` is the assembled
operator, also usable in-process (tests start it with a stop flag).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from databuild import domain
from databuild.adapters.bel import attach as attach_bel
from databuild.adapters.gateway import (
    DEFAULT_MAX_IN_FLIGHT,
    Gateway,
    GatewayError,
    KubernetesGateway,
    NotFound,
)
from databuild.adapters.kinds import WATCHED_KINDS
from databuild.adapters.kube import ApiClient, ClusterConfig, ConfigError, HttpTransport
from databuild.adapters.kube import load as load_cluster_config
from databuild.operator import metrics
from databuild.operator.admission import AdmissionReporter
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import EVENT_CONCURRENCY, Executor
from databuild.operator.health import HealthServer
from databuild.operator.history_api import serve_history
from databuild.operator.leader import AlwaysLeader, LeaderElection
from databuild.operator.loop import Orchestrator
from databuild.operator.schedules import ScheduleController
from databuild.operator.settings import Settings, load
from databuild.operator.store import WorldStore
from databuild.operator.taints import TaintRequestController
from databuild.operator.watches import Watches

log = logging.getLogger("databuild.operator")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (time, level, logger, message)."""

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record`` as JSON."""
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload)


def configure_logging(settings: Settings) -> None:
    """Log to stderr in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def api_client(config: ClusterConfig, *, connections: int = DEFAULT_MAX_IN_FLIGHT) -> ApiClient:
    """The operator's API client: up to ``connections`` requests in flight at once."""
    return ApiClient(
        HttpTransport(config, connections=connections, user_agent="databuild-operator")
    )


class Operator:
    """The assembled operator: store, watches, gateway, Lease and loop.

    ``api`` (default: a client for ``cluster``) carries the watches and, unless
    ``gateway`` is given, every write; with only a ``gateway`` nothing is watched.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        cluster: ClusterConfig | None = None,
        gateway: Gateway | None = None,
        api: ApiClient | None = None,
    ) -> None:
        self.settings = settings
        # Room for every write the executor sends at once, its Event workers, the
        # Lease and the reads a plan makes on the way.
        in_flight = settings.write_concurrency + EVENT_CONCURRENCY + 4
        self._cluster = cluster
        if api is None and gateway is None:
            # A connection per write in flight, one for the Lease's own lane, and one
            # per watch (each holds its connection open).
            watches = len(WATCHED_KINDS) * max(1, len(settings.namespaces))
            api = api_client(self.cluster, connections=in_flight + 1 + watches)
        self.api = api
        if gateway is None:
            assert api is not None
            gateway = KubernetesGateway(api, max_in_flight=in_flight)
        self.gateway: Gateway = gateway
        self.store = WorldStore()
        self.watches = (
            Watches(
                api,
                self.store,
                self.settings.namespaces or (None,),
                timeout_seconds=max(1, int(settings.watch_inactivity_timeout)),
            )
            if api is not None
            else None
        )
        self.bel = BuildEventLog()
        self.metrics = metrics.OperatorMetrics()
        self.metrics.watch_store(self.store)
        self.bel_writer = attach_bel(
            self.bel,
            settings.bel_url,
            lookup=self.store.get,
            observers=[self.metrics.observe_event],
            retention_days=settings.bel_retention_days,
        )
        if self.bel_writer is not None:
            self.metrics.watch_bel_writer(self.bel_writer)
        self.leadership: LeaderElection | AlwaysLeader
        if settings.leader_election:
            self.leadership = LeaderElection(
                self.gateway,
                namespace=settings.lease_namespace,
                name=settings.lease_name,
                identity=settings.identity,
                duration_seconds=settings.lease_duration_seconds,
            )
        else:
            self.leadership = AlwaysLeader()
        if isinstance(self.gateway, KubernetesGateway):
            # No write outlives the term it was sent in.
            self.gateway.write_budget = self.leadership.remaining
        self.executor = Executor(
            self.gateway,
            self.store,
            self.bel,
            job_ttl_seconds=settings.job_ttl_seconds,
            is_leading=self.leadership.is_leading,
            write_concurrency=settings.write_concurrency,
            job_run_retention_seconds=settings.job_run_retention_seconds,
        )
        self.orchestrator = Orchestrator(
            self.store,
            self.executor,
            self.leadership,
            settings=domain.Settings(max_concurrent_runs=settings.max_concurrent_runs),
            debounce_seconds=settings.debounce_seconds,
            max_debounce_seconds=settings.max_debounce_seconds,
            on_reconcile=lambda seconds, ok: self.metrics.observe_reconcile(seconds, ok=ok),
        )
        self.schedules = ScheduleController(
            self.gateway,
            self.store,
            is_leading=self.leadership.is_leading,
            on_created=lambda ns: self.metrics.schedule_wants_created.labels(ns).inc(),
        )
        self.taints = TaintRequestController(
            self.gateway,
            self.store,
            is_leading=self.leadership.is_leading,
            retention_seconds=settings.job_run_retention_seconds,
        )
        self.admission = AdmissionReporter(
            self.gateway, self.store, is_leading=self.leadership.is_leading
        )
        self.synced = self.watches.synced if self.watches is not None else asyncio.Event()
        """Set once every watched kind was listed: planning waits for the whole world."""
        self.failed: BaseException | None = None
        """Why the operator stopped by itself, if it did."""

    @property
    def cluster(self) -> ClusterConfig:
        """The API server and identity: ``--kubeconfig``, else in-cluster, else the default."""
        if self._cluster is None:
            self._cluster = load_cluster_config(self.settings.kubeconfig, in_cluster_first=True)
        return self._cluster

    async def _orchestrate(self) -> None:
        await self.synced.wait()
        await self.orchestrator.run()

    async def wait_for_crds(self) -> None:
        """Return once the API server serves our kinds (one clear warning until then)."""
        scope = self.settings.namespaces[0] if self.settings.namespaces else None
        delay, warned = 1.0, False
        while True:
            try:
                await self.gateway.list("JobDefinition", scope)
                return
            except NotFound:
                if not warned:
                    log.warning(
                        "the databuild.dev CRDs are not installed (kubectl apply -f crds/); "
                        "waiting for them"
                    )
                    warned = True
            except GatewayError as error:
                log.warning("cannot reach the API server, retrying in %.0fs: %s", delay, error)
            await asyncio.sleep(delay)
            delay = min(15.0, delay * 2)

    async def run(self, stop_flag: asyncio.Event | None = None) -> None:
        """Run until ``stop_flag`` is set or a SIGINT/SIGTERM arrives."""
        await self.wait_for_crds()
        server = None
        if self.settings.metrics_port is not None:
            server = metrics.serve(
                metrics.OperatorCollector(
                    self.gateway.stats,
                    self.orchestrator.stats,
                    self.bel,
                    self.leadership.is_leading,
                ),
                self.settings.metrics_port,
                metrics=self.metrics,
            )
        history = None
        if self.settings.history_port is not None and self.settings.bel_url is not None:
            history = serve_history(self.settings.bel_url, self.settings.history_port)
        health = None
        if self.settings.health_port is not None:
            health = HealthServer(
                self.settings.health_port,
                synced=self.synced.is_set,
                leading=self.leadership.is_leading,
            )
            await health.start()
        tasks = [
            asyncio.create_task(self.leadership.run(), name="databuild-lease"),
            asyncio.create_task(self._orchestrate(), name="databuild-orchestrator"),
            asyncio.create_task(self.schedules.run(self.synced), name="databuild-schedules"),
            asyncio.create_task(self.admission.run(self.synced), name="databuild-admission"),
            asyncio.create_task(self.taints.run(self.synced), name="databuild-taints"),
        ]
        if self.watches is not None:
            tasks.append(asyncio.create_task(self.watches.run(), name="databuild-watches"))
        # These run forever; if one ends anyway, stop the whole operator (so that its
        # supervisor restarts it) instead of watching on without orchestrating.
        stop = stop_flag if stop_flag is not None else asyncio.Event()

        def ended(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                return
            self.failed = task.exception() or RuntimeError(f"{task.get_name()} ended")
            log.critical("%s stopped unexpectedly: %r; stopping", task.get_name(), self.failed)
            stop.set()

        for task in tasks:
            task.add_done_callback(ended)
        signals = _stop_on_signals(stop)
        scope = (
            f"namespaces {', '.join(self.settings.namespaces)}"
            if self.settings.namespaces
            else "all namespaces"
        )
        log.info("starting: serving %s as %s", scope, self.settings.identity)
        try:
            await stop.wait()
        finally:
            loop = asyncio.get_running_loop()
            for sig in signals:
                loop.remove_signal_handler(sig)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.leadership.release()
            if self.bel_writer is not None:
                await asyncio.to_thread(self.bel_writer.close, 10.0)
            if health is not None:
                await health.stop()
            if server is not None:
                server.stop()
            if history is not None:
                history.stop()
            if self.api is not None:
                await self.api.close()
            log.info("stopped")


def _stop_on_signals(stop: asyncio.Event) -> list[signal.Signals]:
    """Set ``stop`` on SIGINT and SIGTERM; the signals handled (none off the main thread)."""
    loop = asyncio.get_running_loop()
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not the main thread (an operator run in-process by a test)
        handled.append(sig)
    return handled


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; the exit code."""
    settings = load(argv)
    configure_logging(settings)
    if settings.kubeconfig is not None and not settings.kubeconfig.is_file():
        raise SystemExit(
            f"no kubeconfig at {settings.kubeconfig}: start the local control plane with "
            "`make cluster-up`, or pass --kubeconfig for your cluster"
        )
    try:
        operator = Operator(settings)
        operator.cluster  # noqa: B018 - a kubeconfig that cannot be used fails here, clearly
    except ConfigError as error:
        raise SystemExit(f"cannot connect to the API server: {error}") from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(operator.run())
    return 1 if operator.failed is not None else 0
