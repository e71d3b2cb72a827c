"""``python -m databuild.bench.scale``: the real loop at sizes past this machine's cluster.

A local control plane runs out of CPU long before the operator does, so this run puts
the operator's own store, planner, executor and Build Event Log in front of an in-memory
API server (:class:`databuild.testing.memory_cluster.MemoryCluster`) and plays the job
controller: every batch Job completes as soon as it exists. For each size it reports

* the passes and the CPU time of the loop (planning and writing, the in-memory API
  server's bookkeeping included, so an upper bound of the operator's own CPU) per built
  partition, and the API writes per built partition;
* the first plan of the namespace (every partition unknown, a full plan from scratch);
* one new Want in the built namespace: a full pass (the store read into a World, a new
  Planner, the whole namespace planned), and of it the time until the plan was made;
* one job completion once the namespace is built: the pass that records it (the kept
  Planner's incremental plan, whenever the pass stays incremental), of it the time until
  the plan was made, and the passes until its Want is Successful (median and p99 of 20);
* memory: the process' resident set; the deep size of what the in-memory API server
  holds (its own copy of every object: not the operator's, so the bench reports it
  apart); the deep size of what the operator holds (its world store, loop, executor with
  its caches, and event log; the server left out) and of the world store alone, per
  partition;

and, across sizes, how CPU and memory per partition grow. Numbers, never assertions:
docs/benchmarks/results.md keeps a table of them.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from databuild.adapters.resources import API_VERSION
from databuild.bench import dags
from databuild.testing.memory_cluster import MemoryCluster

__all__ = ["ScaleResult", "main", "measure"]

_PAGE = 4096
_MAX_PASSES = 400


@dataclass(frozen=True)
class ScaleResult:
    """One size's numbers."""

    partitions: int
    passes: int
    wall_seconds: float
    loop_cpu_seconds: float
    api_cpu_seconds: float
    """Of the loop's CPU, what the in-memory API server spent answering."""
    writes: int
    first_plan_seconds: float
    completion_ms: tuple[float, ...]
    """The pass recording one job completion, in the built namespace (one per probe)."""
    to_successful_ms: tuple[float, ...]
    """A job completion to its Want Successful, every pass in between (one per probe)."""
    rss_mb: float
    store_bytes: int
    completion_planning_ms: tuple[float, ...] = ()
    """Of each such pass, the time until its plan was made."""
    completion_plan_ms: tuple[float, ...] = ()
    """Of that, the planner's own time (the incremental plan)."""
    incremental_completions: int = 0
    """How many of those passes the kept Planner planned incrementally."""
    full_pass_ms: tuple[float, ...] = ()
    """The full pass a new Want costs in the built namespace (one per probe)."""
    full_planning_ms: tuple[float, ...] = ()
    """Of each, the time until its plan was made (snapshot and full plan)."""
    full_plan_ms: tuple[float, ...] = ()
    """Of that, the planner's own time (the full plan)."""
    server_bytes: int = 0
    """Deep size of the in-memory API server's objects (not the operator's)."""
    operator_bytes: int = 0
    """Deep size of what the operator's loop holds, the in-memory API server left out."""

    @property
    def cpu_ms_per_partition(self) -> float:
        """Loop CPU per built partition."""
        return 1000 * self.loop_cpu_seconds / self.partitions

    @property
    def operator_cpu_ms_per_partition(self) -> float:
        """Loop CPU without the in-memory API server's, per built partition."""
        return 1000 * (self.loop_cpu_seconds - self.api_cpu_seconds) / self.partitions

    @property
    def writes_per_partition(self) -> float:
        """API writes per built partition."""
        return self.writes / self.partitions

    @property
    def store_kb_per_partition(self) -> float:
        """The world store's deep size per partition."""
        return self.store_bytes / 1024 / self.partitions

    @property
    def operator_kb_per_partition(self) -> float:
        """The deep size of what the operator holds, per partition."""
        return self.operator_bytes / 1024 / self.partitions

    @property
    def rss_without_server_mb(self) -> float:
        """The resident set less the in-memory API server's objects (an estimate of the
        operator process alone: allocator overhead is not in the deep size)."""
        return self.rss_mb - self.server_bytes / 2**20


def _rss_mb() -> float:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return float("nan")
    return pages * _PAGE / 2**20


def deep_size(root: object, exclude: Sequence[object] = ()) -> int:
    """Bytes held by ``root`` and everything it reaches (each object counted once), not
    going through the objects in ``exclude``."""
    seen: set[int] = {id(o) for o in exclude}
    total = 0
    stack: list[Any] = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, s) for s in obj.__slots__ if hasattr(obj, s))
    return total


def _want(name: str, refs: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Want",
        "metadata": {"name": name},
        "spec": {"partitions": list(refs)},
    }


def _successful(cluster: MemoryCluster, names: Sequence[str] | None = None) -> bool:
    wants = cluster.gateway.of_kind("Want", cluster.namespace)
    if names is not None:
        wanted = set(names)
        wants = [w for w in wants if w["metadata"]["name"] in wanted]
    return bool(wants) and all((w.get("status") or {}).get("state") == "Successful" for w in wants)


class _Clock:
    """CPU and wall time spent inside the loop's passes only (not in the played cluster)."""

    def __init__(self) -> None:
        self.cpu = 0.0
        self.writes = 0
        self.passes = 0

    def reconcile(self, cluster: MemoryCluster) -> float:
        cpu, wall = time.process_time(), time.perf_counter()
        result = cluster.reconcile()
        self.cpu += time.process_time() - cpu
        self.writes += result.writes
        self.passes += 1
        return time.perf_counter() - wall

    @staticmethod
    def planning(cluster: MemoryCluster) -> float:
        """The last pass's time until its plan was made."""
        return cluster.loop.stats.planning_seconds[-1]

    @staticmethod
    def planner(cluster: MemoryCluster) -> float:
        """The last pass's planner time (in its worker thread)."""
        return cluster.loop.stats.planner_seconds[-1]

    @staticmethod
    def incremental(cluster: MemoryCluster) -> int:
        """Incremental plans so far."""
        return cluster.loop.stats.incremental_plans


def measure(size: int, probes: int = 20) -> ScaleResult:
    """Build a wide graph of ``size`` partitions through the real loop, then time
    ``probes`` single job completions in it; its numbers."""
    dag = dags.wide(size)
    cluster = MemoryCluster()
    for job in dag.jobs:
        cluster.apply(job.manifest())
    for want in dag.want_manifests():
        cluster.apply(want)
    clock = _Clock()
    gc.collect()
    started = time.perf_counter()
    first_plan = clock.reconcile(cluster)
    while clock.passes < _MAX_PASSES:
        finished = cluster.finish_jobs()
        clock.reconcile(cluster)
        if not finished and _successful(cluster):
            break
    wall = time.perf_counter() - started
    if not _successful(cluster):
        raise RuntimeError(f"wide-{size}: the Wants did not all succeed in {_MAX_PASSES} passes")
    built_writes, built_cpu, built_passes = clock.writes, clock.cpu, clock.passes
    api_cpu = cluster.api_cpu_seconds
    completion, to_successful, completion_planning = [], [], []
    full, full_planning, full_plan, completion_plan = [], [], [], []
    incremental = 0
    for i in range(probes):
        name = f"probe-{i:03d}"
        cluster.apply(_want(name, [f"wide/id=probe{i:03d}"]))
        full.append(clock.reconcile(cluster) * 1000)  # a Want changed: the full path
        full_planning.append(clock.planning(cluster) * 1000)
        full_plan.append(clock.planner(cluster) * 1000)
        for _ in range(10):  # Partition, JobRun and its batch Job
            if cluster.gateway.of_kind("Job", cluster.namespace) and cluster.finish_jobs():
                break
            clock.reconcile(cluster)
        else:
            raise RuntimeError(f"{name}: no batch Job was created")
        before = clock.incremental(cluster)
        first = clock.reconcile(cluster)
        completion_planning.append(clock.planning(cluster) * 1000)
        completion_plan.append(clock.planner(cluster) * 1000)
        incremental += clock.incremental(cluster) - before
        total = first
        for _ in range(10):
            if _successful(cluster, [name]):
                break
            total += clock.reconcile(cluster)
        else:
            raise RuntimeError(f"{name}: never Successful after its Job completed")
        completion.append(first * 1000)
        to_successful.append(total * 1000)
    gc.collect()
    return ScaleResult(
        partitions=size,
        passes=built_passes,
        wall_seconds=wall,
        loop_cpu_seconds=built_cpu,
        api_cpu_seconds=api_cpu,
        writes=built_writes,
        first_plan_seconds=first_plan,
        completion_ms=tuple(completion),
        completion_planning_ms=tuple(completion_planning),
        completion_plan_ms=tuple(completion_plan),
        incremental_completions=incremental,
        full_pass_ms=tuple(full),
        full_planning_ms=tuple(full_planning),
        full_plan_ms=tuple(full_plan),
        to_successful_ms=tuple(to_successful),
        rss_mb=_rss_mb(),
        store_bytes=deep_size(cluster.store),
        server_bytes=deep_size(cluster.gateway),
        operator_bytes=deep_size(
            [cluster.store, cluster.loop, cluster.executor, cluster.bel], exclude=[cluster.gateway]
        ),
    )


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _p99(values: Sequence[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def table(results: Sequence[ScaleResult]) -> Iterator[str]:
    """The results as a Markdown table, then how CPU and memory grow with size."""
    yield (
        "| partitions | passes | wall s | operator CPU ms/partition (with API server) | "
        "writes/partition | "
        "first plan s | new Want: full pass ms p50 (snapshot + plan; plan) | "
        "completion pass ms p50/p99 | completion: journal to plan ms p50/p99 | "
        "completion: incremental plan ms p50/p99 (passes incremental) | "
        "completion → Successful ms p50/p99 | "
        "RSS MB (without the API server's objects) | API server MB | "
        "operator KB/partition | store KB/partition |"
    )
    yield "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for r in results:
        yield (
            f"| {r.partitions:,} | {r.passes} | {r.wall_seconds:.1f} | "
            f"{r.operator_cpu_ms_per_partition:.2f} ({r.cpu_ms_per_partition:.2f}) | "
            f"{r.writes_per_partition:.2f} | "
            f"{r.first_plan_seconds:.2f} | "
            f"{_median(r.full_pass_ms):.1f} ({_median(r.full_planning_ms):.1f}; "
            f"{_median(r.full_plan_ms):.1f}) | "
            f"{statistics.median(r.completion_ms):.1f} / {_p99(r.completion_ms):.1f} | "
            f"{_median(r.completion_planning_ms):.2f} / {_p99(r.completion_planning_ms):.2f} | "
            f"{_median(r.completion_plan_ms):.3f} / {_p99(r.completion_plan_ms):.3f} "
            f"({r.incremental_completions}/{len(r.completion_ms)}) | "
            f"{statistics.median(r.to_successful_ms):.1f} / {_p99(r.to_successful_ms):.1f} | "
            f"{r.rss_mb:.0f} ({r.rss_without_server_mb:.0f}) | {r.server_bytes / 2**20:.0f} | "
            f"{r.operator_kb_per_partition:.2f} | {r.store_kb_per_partition:.2f} |"
        )
    if len(results) > 1:
        yield ""
        yield growth(results[0], results[-1])


def growth(small: ScaleResult, big: ScaleResult) -> str:
    """How the per-partition costs change from ``small`` to ``big``."""
    factor = big.partitions / small.partitions
    cpu = big.operator_cpu_ms_per_partition / small.operator_cpu_ms_per_partition
    store = big.store_kb_per_partition / small.store_kb_per_partition
    completion = statistics.median(big.completion_ms) / statistics.median(small.completion_ms)
    line = (
        f"From {small.partitions:,} to {big.partitions:,} partitions (x{factor:g}): operator "
        f"CPU per partition x{cpu:.2f}, store per partition x{store:.2f}, the completion "
        f"pass x{completion:.1f}"
    )
    added = big.partitions - small.partitions
    if added > 0:
        rss = (big.rss_mb - small.rss_mb) * 1024 / added
        own = (big.rss_without_server_mb - small.rss_without_server_mb) * 1024 / added
        line += (
            f", RSS +{rss:.1f} KB per added partition (+{own:.1f} KB without the in-memory "
            "API server's objects)"
        )
    return line + "."


def main(argv: Sequence[str] | None = None) -> int:
    """Run the sizes given (default 1,000, 10,000 and 100,000) and print the table."""
    parser = argparse.ArgumentParser(prog="python -m databuild.bench.scale", description=__doc__)
    parser.add_argument(
        "sizes", nargs="*", type=int, default=[1_000, 10_000, 100_000], help="partitions"
    )
    parser.add_argument(
        "--probes", type=int, default=20, help="single job completions timed per size"
    )
    parser.add_argument("--output", type=Path, help="also write the table there (Markdown)")
    args = parser.parse_args(argv)
    results = []
    # One fresh process per size, so a size's resident set is its own.
    spawn = multiprocessing.get_context("spawn")
    for size in sorted(args.sizes):
        print(f"wide-{size}: building …", file=sys.stderr, flush=True)
        with spawn.Pool(1) as pool:
            results.append(pool.apply(measure, (size, args.probes)))
    lines = list(table(results))
    print("\n".join(lines))
    if args.output is not None:
        args.output.write_text(report(lines, args.probes))
    return 0


def report(lines: Sequence[str], probes: int) -> str:
    """The Markdown file ``--output`` writes: what ran, when, and the table."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "# The real loop at scale (in-memory API server)\n\n"
        f"Produced by `python -m databuild.bench.scale` on {when}, {os.cpu_count()} cores, "
        f"{probes} single completions timed per size. See README.md for what each column "
        "means; wall times depend on how quiet the machine was, CPU and writes do not.\n\n"
        + "\n".join(lines)
        + "\n"
    )


if __name__ == "__main__":
    sys.exit(main())
