"""databuild.bench: the operator against a zero-overhead baseline, on a real control plane.

``python -m databuild.bench`` (``make bench``; ``make bench-quick`` with ``--quick``)
builds the same graphs twice per scenario, once with :func:`run_baseline` (batch Jobs
created directly, each as soon as its inputs' Jobs completed) and once with the operator
from Wants, and reports wall-time ratios, Want -> Job latency, API writes per built
partition, the operator's CPU and memory, and the planner benchmark. See
``docs/benchmarks/README.md``.
"""

from databuild.bench.baseline import BuildFailed, BuildTimes, run_baseline
from databuild.bench.dags import Dag, JobDef, Node, deep, fan, latency, wide
from databuild.bench.results import Cost, ScenarioResult, SideResult
from databuild.bench.suite import FULL, QUICK, Sizes, Suite

__all__ = [
    "FULL",
    "QUICK",
    "BuildFailed",
    "BuildTimes",
    "Cost",
    "Dag",
    "JobDef",
    "Node",
    "ScenarioResult",
    "SideResult",
    "Sizes",
    "Suite",
    "deep",
    "fan",
    "latency",
    "run_baseline",
    "wide",
]
