"""The JSON the web UI draws, computed from a :class:`~databuild.cli.kube.Snapshot`.

Each function is linear in the namespace's size (indexes are built once per request),
so a 10,000-partition namespace answers in well under a second.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from databuild.adapters.resources import JobRun
from databuild.cli.kube import Snapshot
from databuild.cli.render import iso

__all__ = ["grid", "lineage", "timeline", "wants"]

#: Grid columns drawn at most (the newest); the rest is summarised.
MAX_COLUMNS = 400


def _state(snap: Snapshot, ref: str) -> str:
    part = snap.partitions.get(ref)
    return (part.status.state if part is not None else None) or "Missing"


def wants(snap: Snapshot) -> dict[str, Any]:
    """Every Want with its state and partition counts by state."""
    rows = []
    for want in sorted(
        snap.wants.values(),
        key=lambda w: (w.metadata.creation_timestamp or datetime.min, w.metadata.name),
        reverse=True,
    ):
        counts: dict[str, int] = defaultdict(int)
        for ref in want.spec.partitions:
            counts[_state(snap, ref)] += 1
        rows.append(
            {
                "name": want.metadata.name,
                "state": want.status.state or "Pending",
                "partitions": len(want.spec.partitions),
                "counts": dict(counts),
                "upstream": want.spec.source is not None,
                "created": iso(want.metadata.creation_timestamp),
            }
        )
    return {"namespace": snap.namespace, "wants": rows}


def split_ref(ref: str) -> tuple[str, str]:
    """(dataset, time key): the ref's first segment, and the rest (e.g. ``date=2025-01-01``)."""
    dataset, _, rest = ref.partition("/")
    return dataset, rest


def grid(snap: Snapshot) -> dict[str, Any]:
    """Datasets x time keys, each cell a partition state (Dagster's partition view)."""
    cells: dict[str, dict[str, str]] = defaultdict(dict)
    keys: set[str] = set()
    for ref, part in snap.partitions.items():
        dataset, key = split_ref(ref)
        cells[dataset][key] = part.status.state or "Missing"
        keys.add(key)
    columns = sorted(keys)
    hidden = max(0, len(columns) - MAX_COLUMNS)
    columns = columns[hidden:]
    shown = set(columns)
    return {
        "namespace": snap.namespace,
        "columns": columns,
        "hiddenColumns": hidden,
        "rows": [
            {
                "dataset": dataset,
                "cells": {k: v for k, v in by_key.items() if k in shown},
                "total": len(by_key),
            }
            for dataset, by_key in sorted(cells.items())
        ],
        "partitions": len(snap.partitions),
    }


def lineage(snap: Snapshot, ref: str, depth: int = 6) -> dict[str, Any]:
    """The partitions upstream and downstream of `ref` (to `depth` levels), as a graph."""
    downstream: dict[str, list[str]] = defaultdict(list)
    for other in snap.partitions:
        for i in snap.inputs_of(other):
            downstream[i].append(other)
    level = {ref: 0}
    edges: set[tuple[str, str]] = set()
    frontier = [ref]
    for d in range(1, depth + 1):  # upstream: negative levels
        nxt = []
        for node in frontier:
            for i in snap.inputs_of(node):
                edges.add((i, node))
                if i not in level:
                    level[i] = -d
                    nxt.append(i)
        frontier = nxt
    frontier = [ref]
    for d in range(1, depth + 1):
        nxt = []
        for node in frontier:
            for o in downstream.get(node, []):
                edges.add((node, o))
                if o not in level:
                    level[o] = d
                    nxt.append(o)
        frontier = nxt
    nodes = []
    for node, lvl in sorted(level.items(), key=lambda kv: (kv[1], kv[0])):
        run = snap.builder_of(node)
        nodes.append(
            {
                "ref": node,
                "level": lvl,
                "state": _state(snap, node),
                "jobRun": run.metadata.name if run is not None else None,
                "jobDefinition": run.spec.job_definition if run is not None else None,
            }
        )
    return {
        "namespace": snap.namespace,
        "ref": ref,
        "nodes": nodes,
        "edges": [{"from": a, "to": b} for a, b in sorted(edges) if a in level and b in level],
    }


def _run_bar(run: JobRun, snap: Snapshot) -> dict[str, Any]:
    s = run.status
    attempts = [
        {
            "attempt": a.attempt,
            "job": a.job_name,
            "state": a.state,
            "start": iso(a.started) if a.started else None,
            "end": iso(a.finished) if a.finished else None,
            "exitCode": a.exit_code,
        }
        for a in snap.attempts.get(run.metadata.name, ())
    ]
    return {
        "name": run.metadata.name,
        "jobDefinition": run.spec.job_definition,
        "state": s.state or "Queued",
        "partitions": list(run.spec.partitions),
        "created": iso(run.metadata.creation_timestamp),
        "start": iso(s.started_at) if s.started_at else None,
        "end": iso(s.finished_at) if s.finished_at else None,
        "attempts": attempts,
    }


def timeline(snap: Snapshot, want_name: str) -> dict[str, Any] | None:
    """A Gantt chart of the runs (and their attempts) that build a Want's partitions,
    upstream Wants' runs included; ``None`` if there is no such Want."""
    want = snap.wants.get(want_name)
    if want is None:
        return None
    refs = list(want.spec.partitions)
    runs: dict[str, JobRun] = {}
    seen = set(refs)
    while refs:  # the Want's partitions, then what they were built from
        ref = refs.pop()
        for run in snap.runs_for(ref):
            runs[run.metadata.name] = run
        for i in snap.inputs_of(ref):
            if i not in seen and len(seen) < 2000:
                seen.add(i)
                refs.append(i)
    bars = sorted(
        (_run_bar(r, snap) for r in runs.values()),
        key=lambda b: (b["start"] or b["created"] or "", b["name"]),
    )
    return {
        "namespace": snap.namespace,
        "want": want_name,
        "state": want.status.state or "Pending",
        "now": iso(snap.now),
        "runs": bars,
    }
