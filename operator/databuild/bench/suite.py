"""Running the scenarios: each one for the baseline and the operator, in one session.

For every build scenario, in a fresh namespace each: the baseline builds the graph;
then the operator (a fresh process serving a fresh namespace, warmed up with one Want
so its start-up is not timed) builds it from the graph's Wants. Between runs the
namespace is deleted and waited for, so each run starts on a quiet control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from databuild.bench import dags
from databuild.bench.audit import WRITE_VERBS, ApiCounts
from databuild.bench.baseline import BuildFailed, BuildTimes, run_baseline
from databuild.bench.dags import Dag, JobDef
from databuild.bench.kube import Kube
from databuild.bench.memory import AllocationSite, parse_sites
from databuild.bench.operator_side import (
    WARMUP_JOB,
    apply_job_definitions,
    baseline_latency,
    live_partitions,
    operator_latency,
    wait_for_wants,
)
from databuild.bench.procstat import sample
from databuild.bench.profile import PySpy
from databuild.bench.results import BENCH_PROCESS, Cost, ScenarioResult, SideResult
from databuild.bench.session import (
    BASELINE_USER,
    OPERATOR_USER,
    BenchCluster,
    RunningOperator,
    create_namespace,
    delete_namespace,
    gateway_counts,
)
from databuild.bench.stats import Summary
from databuild.domain import bench as planner_bench

__all__ = ["FULL", "QUICK", "Sizes", "Suite", "planner_benchmark"]

WARMUP = JobDef(WARMUP_JOB, ("warmup/id={id}",))


#: Names of the cost run at scale (--big): "wide-10k" at the full size, else "wide-big".
SCALE_RUNS = frozenset({"wide-big", "wide-10k"})


@dataclass(frozen=True)
class Sizes:
    """How big each scenario is; ``None`` (or 0) skips it."""

    wide: int | None = None
    deep: int | None = None
    fan: tuple[int, int] | None = None
    latency: int | None = None
    big: int | None = None
    """The cost run at scale (a wide graph in Wants of 1,000)."""

    def scenarios(self) -> list[tuple[str, Dag]]:
        """``(scenario name, graph)`` in the order they run."""
        out: list[tuple[str, Dag]] = []
        if self.wide:
            out.append(("wide", dags.wide(self.wide)))
        if self.deep:
            out.append(("deep", dags.deep(self.deep)))
        if self.fan:
            out.append(("fan", dags.fan(*self.fan)))
        if self.latency:
            out.append(("latency", dags.latency(self.latency)))
        if self.big:
            name = "wide-10k" if self.big == 10_000 else "wide-big"
            out.append((name, dags.wide(self.big)))
        return out


QUICK = Sizes(wide=100, deep=10, fan=(3, 20), latency=20)
FULL = Sizes(wide=1000, deep=50, fan=(10, 100), latency=50, big=10_000)


def planner_benchmark() -> str:
    """Run the domain planner benchmark (100,000 partitions); its printed output."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        planner_bench.main()
    return buffer.getvalue()


def _cpu(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        s = sample(pid)
        if s is not None:
            out[name] = s.cpu_seconds
    return out


def _diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


async def _memory_sites(operator: RunningOperator) -> list[AllocationSite]:
    """Ask the operator (SIGUSR1) for its biggest allocation sites and read them."""
    path = operator.trace_memory_to
    if path is None or operator.pid is None:
        return []
    path.unlink(missing_ok=True)
    os.kill(operator.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    if not path.exists():
        return []
    return parse_sites(path.read_text().splitlines())


def _side(times: BuildTimes, built: int) -> SideResult:
    return SideResult(
        wall_seconds=times.wall_seconds,
        partitions_built=built,
        jobs=len(times.jobs_completed),
        first_job_seconds=times.first_job_seconds,
        last_created_seconds=times.last_created_seconds,
        last_job_seconds=times.last_job_seconds,
    )


@dataclass
class Suite:
    """One benchmark session on one cluster."""

    cluster: BenchCluster
    log: Callable[[str], None] = print
    profile: bool = False
    profile_idle: bool = False
    trace_memory: bool = False
    big_timeout: float = 1800.0
    big_baseline: bool = True
    operator_args: tuple[str, ...] = ()
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    # -- helpers ----------------------------------------------------------------------

    def _admin(self) -> Kube:
        return Kube.from_kubeconfig(self.cluster.admin_kubeconfig, user_agent="databuild-bench")

    def _baseline_client(self) -> Kube:
        return Kube.from_kubeconfig(
            self.cluster.baseline_kubeconfig, user_agent="databuild-bench-baseline"
        )

    def _ns(self, scenario: str, side: str) -> str:
        return f"bench-{scenario}-{side}-{self.run_id}"[:63].rstrip("-")

    def _audit_mark(self) -> int | None:
        return self.cluster.audit.offset() if self.cluster.audit else None

    def _audit_count(self, mark: int | None, user: str) -> ApiCounts | None:
        if self.cluster.audit is None or mark is None:
            return None
        return self.cluster.audit.count(mark, user)

    async def _settle(self, mark: int | None, quiet: float = 1.5, limit: float = 20.0) -> None:
        """Wait until the operator's requests stop (its trailing status writes and
        Events belong to the build), or ``limit`` seconds."""
        if mark is None:
            await asyncio.sleep(2.0)
            return
        deadline = time.monotonic() + limit
        last = -1
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            counts = self._audit_count(mark, OPERATOR_USER)
            now = counts.requests if counts else 0
            if now != last:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= quiet:
                return
            await asyncio.sleep(0.25)

    @contextlib.asynccontextmanager
    async def _namespace(self, admin: Kube, name: str) -> AsyncIterator[str]:
        await create_namespace(admin, name)
        try:
            yield name
        finally:
            gone = await delete_namespace(admin, name)
            if not gone:
                self.log(f"  namespace {name} still terminating; going on")

    async def _start_operator(self, admin: Kube, namespace: str, dag: Dag) -> RunningOperator:
        """JobDefinitions in, operator up, one warm-up Want built."""
        await apply_job_definitions(admin, namespace, dag)
        await apply_job_definitions(admin, namespace, Dag("warmup", (WARMUP,), (), ()))
        log_path = self.cluster.workdir / "logs" / f"{namespace}.operator.log"
        trace = self.cluster.workdir / "memory" / f"{namespace}.jsonl"
        if self.trace_memory:
            trace.parent.mkdir(parents=True, exist_ok=True)
        operator = RunningOperator(
            self.cluster,
            namespace,
            log_path,
            extra_args=self.operator_args,
            trace_memory_to=trace if self.trace_memory else None,
        ).start()
        warmup = {
            "apiVersion": WARMUP.manifest()["apiVersion"],
            "kind": "Want",
            "metadata": {"name": "bench-warmup"},
            "spec": {"partitions": ["warmup/id=0"]},
        }
        try:
            await wait_for_wants(admin, namespace, [warmup], timeout=180, what="warm-up")
        except BuildFailed as error:
            tail = operator.log_tail()
            operator.stop()
            raise BuildFailed(f"{error}; operator log:\n{tail}") from None
        return operator

    # -- scenarios --------------------------------------------------------------------

    async def run(self, scenarios: Sequence[tuple[str, Dag]]) -> list[ScenarioResult]:
        """Run the scenarios in order; a failed one is reported and the rest go on."""
        results = []
        async with self._admin() as admin:
            for name, dag in scenarios:
                result = ScenarioResult(
                    name=name,
                    graph=dag.name,
                    kind="latency" if name == "latency" else "build",
                    partitions=dag.size,
                    depth=dag.depth(),
                )
                self.log(f"{dag.name}: {dag.size} partitions, depth {dag.depth()}")
                try:
                    if result.kind == "latency":
                        await self._latency(admin, name, dag, result)
                    else:
                        await self._build(admin, name, dag, result)
                except Exception as error:  # one broken scenario must not hide the others
                    result.errors.append(f"{type(error).__name__}: {error}")
                    self.log(f"  FAILED: {error}")
                results.append(result)
        return results

    async def _build(self, admin: Kube, name: str, dag: Dag, result: ScenarioResult) -> None:
        big = name in SCALE_RUNS  # --big: its own timeout, and the baseline is optional
        if not big or self.big_baseline:
            await self._build_baseline(admin, name, dag, result)
        await self._build_operator(admin, name, dag, result, big=big)

    async def _build_baseline(
        self, admin: Kube, name: str, dag: Dag, result: ScenarioResult
    ) -> None:
        timeout = max(180.0, dag.size * 1.0 + dag.depth() * 15.0)
        async with (
            self._namespace(admin, self._ns(name, "baseline")) as ns,
            self._baseline_client() as kube,
        ):
            pids = self.cluster.component_pids()
            cpu0, own0 = _cpu(pids), time.process_time()
            mark = self._audit_mark()
            times = await run_baseline(kube, ns, dag, timeout=timeout)
            result.component_cpu["baseline"] = _diff(_cpu(pids), cpu0)
            result.component_cpu["baseline"][BENCH_PROCESS] = time.process_time() - own0
            result.baseline = _side(times, len(times.jobs_completed))
            counts = self._audit_count(mark, BASELINE_USER)
            if counts is not None:
                result.cost = result.cost or Cost(partitions=dag.size)
                result.cost.baseline_writes = counts.writes
                result.cost.baseline_requests = counts.requests
                result.cost.traffic["baseline"] = counts
            self.log(f"  baseline: {times.wall_seconds:.1f}s")

    async def _build_operator(
        self, admin: Kube, name: str, dag: Dag, result: ScenarioResult, *, big: bool
    ) -> None:
        async with self._namespace(admin, self._ns(name, "operator")) as ns:
            operator = await self._start_operator(admin, ns, dag)
            spy: PySpy | None = None
            try:
                pids = self.cluster.component_pids()
                assert operator.pid is not None
                before = sample(operator.pid)
                gateway0 = gateway_counts(operator.metrics())
                cpu0, own0 = _cpu(pids), time.process_time()
                mark = self._audit_mark()
                if self.profile:
                    spy = PySpy(
                        operator.pid,
                        self.cluster.workdir / "profiles" / f"{dag.name}.txt",
                        idle=self.profile_idle,
                    ).start()
                baseline_wall = result.baseline.wall_seconds if result.baseline else 60.0
                timeout = self.big_timeout if big else max(300.0, 6 * baseline_wall + 120)
                times = BuildTimes()
                try:
                    await wait_for_wants(
                        admin,
                        ns,
                        dag.want_manifests(),
                        timeout=timeout,
                        what=f"operator {dag.name}",
                        times=times,
                    )
                except BuildFailed as error:
                    elapsed = time.monotonic() - times.started
                    done = len(times.jobs_completed)
                    result.progress = (
                        f"{done}/{dag.size} Jobs done in {elapsed:.0f}s, "
                        f"{done / max(elapsed, 1e-9):.1f}/s"
                    )
                    result.errors.append(str(error))
                    times.finished = time.monotonic()
                if spy is not None:
                    spy.stop()
                    result.profile = spy.profile()
                    spy = None
                await self._settle(mark)
                result.component_cpu["operator"] = _diff(_cpu(pids), cpu0)
                result.component_cpu["operator"][BENCH_PROCESS] = time.process_time() - own0
                after = sample(operator.pid)
                gateway1 = gateway_counts(operator.metrics())
                built = await live_partitions(admin, ns, [n.ref for n in dag.nodes])
                if not result.progress:
                    result.operator = _side(times, built)
                    if built != dag.size:
                        result.errors.append(f"only {built}/{dag.size} partitions are Live")
                cost = result.cost or Cost(partitions=dag.size)
                cost.partitions = built or dag.size
                counts = self._audit_count(mark, OPERATOR_USER)
                if counts is not None:
                    cost.requests = counts.requests
                    cost.writes = counts.writes
                    cost.failed_writes = counts.failed_writes
                    cost.top_writes = counts.top(8)
                    cost.lease_writes = sum(
                        n
                        for what, n in counts.by_request.items()
                        if what.split(" ", 1)[0] in WRITE_VERBS and what.endswith(" leases")
                    )
                    cost.traffic["operator"] = counts
                if gateway0 is not None and gateway1 is not None:
                    cost.gateway_requests = gateway1[0] - gateway0[0]
                    cost.gateway_writes = gateway1[1] - gateway0[1]
                if before is not None and after is not None:
                    cost.cpu_seconds = after.cpu_seconds - before.cpu_seconds
                    cost.rss_bytes = after.rss_bytes
                    cost.peak_rss_bytes = after.peak_rss_bytes
                result.cost = cost
                if not operator.alive():
                    result.errors.append(f"the operator exited; log:\n{operator.log_tail()}")
                elif operator.trace_memory_to is not None:
                    result.memory_sites = await _memory_sites(operator)
                wall = f"{times.wall_seconds:.1f}s" if not result.progress else result.progress
                self.log(f"  operator: {wall}")
            finally:
                if spy is not None:
                    spy.stop()
                operator.stop()

    async def _latency(self, admin: Kube, name: str, dag: Dag, result: ScenarioResult) -> None:
        async with (
            self._namespace(admin, self._ns(name, "baseline")) as ns,
            self._baseline_client() as kube,
        ):
            samples = await baseline_latency(kube, ns, dag)
            result.baseline_latency = Summary.of(samples)
            self.log(f"  baseline: p50 {result.baseline_latency.p50:.3f}s")
        async with self._namespace(admin, self._ns(name, "operator")) as ns:
            operator = await self._start_operator(admin, ns, dag)
            try:
                samples = await operator_latency(admin, ns, dag)
                result.operator_latency = Summary.of(samples)
                self.log(
                    f"  operator: p50 {result.operator_latency.p50:.3f}s "
                    f"p99 {result.operator_latency.p99:.3f}s"
                )
            finally:
                operator.stop()
