"""databuild.bench.scale and the in-memory cluster it drives."""

from __future__ import annotations

import sys

from databuild.bench import dags
from databuild.bench.scale import ScaleResult, deep_size, measure, table
from databuild.testing.memory_cluster import MemoryCluster


def test_the_real_loop_builds_a_graph_against_the_in_memory_api_server() -> None:
    dag = dags.fan(2, 3)
    cluster = MemoryCluster()
    for job in dag.jobs:
        cluster.apply(job.manifest())
    for want in dag.want_manifests():
        cluster.apply(want)
    for _ in range(30):
        cluster.finish_jobs()
        cluster.reconcile()
        if cluster.states("Want") == {"Successful": 1}:
            break
    assert cluster.states("Want") == {"Successful": 1}
    # Every partition of the graph, upstream ones included, was built exactly once.
    assert cluster.states("Partition") == {"Live": dag.size}
    assert len(cluster.gateway.of_kind("Job", cluster.namespace)) == dag.size
    assert cluster.states("JobRun") == {"Succeeded": dag.size}
    assert cluster.api_cpu_seconds > 0


def test_measure_reports_what_the_loop_did() -> None:
    result = measure(12, probes=2)
    assert result.partitions == 12
    # At least a Partition and a JobRun created, their statuses and the batch Job.
    assert 5 <= result.writes_per_partition < 20
    assert 0 < result.api_cpu_seconds < result.loop_cpu_seconds
    assert len(result.completion_ms) == len(result.to_successful_ms) == 2
    assert all(a <= b for a, b in zip(result.completion_ms, result.to_successful_ms, strict=True))
    # A new Want is planned in full; its build's completion by the kept Planner alone.
    assert len(result.full_pass_ms) == len(result.full_planning_ms) == 2
    assert result.incremental_completions == 2
    assert all(
        p <= c for p, c in zip(result.completion_planning_ms, result.completion_ms, strict=True)
    )
    assert result.store_bytes > 12 * 1024  # a few objects of a kilobyte or more per partition
    # The operator holds its store and more; the in-memory server's copy is counted apart.
    assert result.operator_bytes > result.store_bytes
    assert result.server_bytes > 12 * 1024
    assert result.rss_without_server_mb < result.rss_mb
    lines = list(table([result, result]))
    assert lines[2].startswith("| 12 | ")
    assert "x1" in lines[-1]


def test_deep_size_counts_shared_objects_once() -> None:
    shared = ["x" * 1000]
    one = deep_size({"a": shared})
    two = deep_size({"a": shared, "b": shared})
    assert one > 1000
    assert two - one == sys.getsizeof("b")
    # Not through what is excluded (the in-memory API server, for the operator's share).
    holder = {"a": shared}
    assert deep_size(holder, exclude=[shared]) == sys.getsizeof(holder) + sys.getsizeof("a")


def test_scale_result_ratios() -> None:
    r = ScaleResult(
        partitions=100,
        passes=3,
        wall_seconds=1.0,
        loop_cpu_seconds=0.5,
        api_cpu_seconds=0.1,
        writes=800,
        first_plan_seconds=0.2,
        completion_ms=(1.0,),
        to_successful_ms=(1.0,),
        rss_mb=100.0,
        store_bytes=102_400,
    )
    assert r.operator_cpu_ms_per_partition == 4.0
    assert r.writes_per_partition == 8.0
    assert r.store_kb_per_partition == 1.0
