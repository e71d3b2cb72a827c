"""The benchmark graphs: JobDefinitions, the partitions they build, and what is wanted.

Pure data. A :class:`Dag` says everything both sides of a scenario need: the operator
gets the JobDefinitions and Wants for :attr:`Dag.wanted` (and discovers the upstream
partitions itself), the baseline gets :attr:`Dag.nodes` (every partition with its
input partitions) and creates one batch Job per node once its inputs are built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from databuild.adapters.resources import API_VERSION, MAX_WANT_PARTITIONS

__all__ = [
    "POD_TEMPLATE",
    "Dag",
    "DagError",
    "JobDef",
    "Node",
    "deep",
    "fan",
    "latency",
    "wide",
]

#: The pod every benchmark build runs. kwok plays the kubelet, so nothing is pulled or
#: run: the pod succeeds about a second after it starts (the design's simulated outcome).
POD_TEMPLATE: Mapping[str, Any] = {
    "spec": {
        "containers": [
            {
                "name": "build",
                "image": "registry.invalid/databuild-bench:0",
                "command": ["true"],
            }
        ]
    }
}


class DagError(ValueError):
    """A benchmark graph is inconsistent (an unknown input, a cycle, a duplicate ref)."""


@dataclass(frozen=True)
class JobDef:
    """One JobDefinition of a graph."""

    name: str
    outputs: tuple[str, ...]
    inputs: tuple[str, ...] = ()

    def manifest(self, template: Mapping[str, Any] = POD_TEMPLATE) -> dict[str, Any]:
        """The JobDefinition resource (no namespace: it is applied into one)."""
        spec: dict[str, Any] = {"outputs": list(self.outputs), "template": dict(template)}
        if self.inputs:
            spec["inputs"] = list(self.inputs)
        return {
            "apiVersion": API_VERSION,
            "kind": "JobDefinition",
            "metadata": {"name": self.name},
            "spec": spec,
        }


@dataclass(frozen=True)
class Node:
    """One partition of a graph: the job that builds it, its captures and its inputs."""

    ref: str
    job: str
    captures: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dag:
    """A benchmark graph. ``nodes`` are in topological order (inputs first)."""

    name: str
    jobs: tuple[JobDef, ...]
    nodes: tuple[Node, ...]
    wanted: tuple[str, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for node in self.nodes:
            if node.ref in seen:
                raise DagError(f"{self.name}: partition {node.ref!r} appears twice")
            for ref in node.inputs:
                if ref not in seen:
                    raise DagError(
                        f"{self.name}: {node.ref!r} reads {ref!r}, which is not an earlier node "
                        "(unknown input, or the nodes are not in topological order)"
                    )
            seen.add(node.ref)
        jobs = {j.name for j in self.jobs}
        for node in self.nodes:
            if node.job not in jobs:
                raise DagError(f"{self.name}: {node.ref!r} is built by unknown job {node.job!r}")
        for ref in self.wanted:
            if ref not in seen:
                raise DagError(f"{self.name}: wanted partition {ref!r} is not a node")

    @property
    def size(self) -> int:
        """Partitions built (every node, wanted or upstream)."""
        return len(self.nodes)

    def depth(self) -> int:
        """Jobs on the longest dependency chain (the critical path, in builds)."""
        level: dict[str, int] = {}
        for node in self.nodes:
            level[node.ref] = 1 + max((level[r] for r in node.inputs), default=0)
        return max(level.values(), default=0)

    def want_manifests(
        self, prefix: str | None = None, per_want: int = MAX_WANT_PARTITIONS
    ) -> list[dict[str, Any]]:
        """The Wants for :attr:`wanted`, at most ``per_want`` partitions each."""
        prefix = prefix or self.name
        wants = []
        for i, chunk in enumerate(chunks(self.wanted, per_want)):
            wants.append(
                {
                    "apiVersion": API_VERSION,
                    "kind": "Want",
                    "metadata": {"name": f"{prefix}-{i:03d}"},
                    "spec": {"partitions": list(chunk)},
                }
            )
        return wants


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``items`` in consecutive slices of at most ``size``."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def wide(n: int) -> Dag:
    """``n`` independent partitions, all wanted at once."""
    if n < 1:
        raise ValueError(f"a wide graph needs at least one partition, got {n}")
    job = JobDef("wide", ("wide/id={id}",))
    nodes = tuple(Node(f"wide/id={i:05d}", job.name, {"id": f"{i:05d}"}) for i in range(n))
    return Dag(f"wide-{n}", (job,), nodes, tuple(n.ref for n in nodes))


def deep(levels: int) -> Dag:
    """A chain of ``levels`` partitions; only the last is wanted, the rest is upstream."""
    if levels < 1:
        raise ValueError(f"a chain needs at least one level, got {levels}")
    jobs: list[JobDef] = []
    nodes: list[Node] = []
    for k in range(levels):
        inputs = (f"deep{k - 1:03d}/run={{run}}",) if k else ()
        jobs.append(JobDef(f"deep-{k:03d}", (f"deep{k:03d}/run={{run}}",), inputs))
        node_inputs = (f"deep{k - 1:03d}/run=1",) if k else ()
        nodes.append(Node(f"deep{k:03d}/run=1", f"deep-{k:03d}", {"run": "1"}, node_inputs))
    return Dag(f"deep-{levels}", tuple(jobs), tuple(nodes), (nodes[-1].ref,))


def fan(days: int, shards: int) -> Dag:
    """Fan-out then fan-in, per day: one raw partition feeds ``shards`` partitions, which
    all feed the day's aggregate. Only the ``days`` aggregates are wanted."""
    if days < 1 or shards < 1:
        raise ValueError(f"a fan graph needs days and shards >= 1, got {days} x {shards}")
    shard_ids = [f"{s:03d}" for s in range(shards)]
    raw = JobDef("fan-raw", ("raw/date={date}",))
    part = JobDef("fan-part", ("part/date={date}/shard={shard}",), ("raw/date={date}",))
    agg = JobDef(
        "fan-agg", ("agg/date={date}",), tuple(f"part/date={{date}}/shard={s}" for s in shard_ids)
    )
    nodes: list[Node] = []
    wanted: list[str] = []
    for d in range(days):
        date = f"day{d:03d}"
        nodes.append(Node(f"raw/date={date}", raw.name, {"date": date}))
        parts = [f"part/date={date}/shard={s}" for s in shard_ids]
        nodes.extend(
            Node(ref, part.name, {"date": date, "shard": s}, (f"raw/date={date}",))
            for ref, s in zip(parts, shard_ids, strict=True)
        )
        nodes.append(Node(f"agg/date={date}", agg.name, {"date": date}, tuple(parts)))
        wanted.append(f"agg/date={date}")
    return Dag(f"fan-{days}x{shards}", (raw, part, agg), tuple(nodes), tuple(wanted))


def latency(n: int) -> Dag:
    """``n`` independent partitions, each wanted by a Want of its own (one at a time)."""
    if n < 1:
        raise ValueError(f"the latency graph needs at least one partition, got {n}")
    job = JobDef("latency", ("latency/id={id}",))
    nodes = tuple(Node(f"latency/id={i:04d}", job.name, {"id": f"{i:04d}"}) for i in range(n))
    return Dag(f"latency-{n}", (job,), nodes, tuple(n.ref for n in nodes))
