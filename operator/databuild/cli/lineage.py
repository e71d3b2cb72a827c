"""``databuild explain``: how a partition got built, from what, when, in which attempts."""

from __future__ import annotations

from typing import Any

from databuild.adapters.bel import StoredEvent
from databuild.cli.kube import Snapshot
from databuild.cli.podlogs import logs_hint
from databuild.cli.render import age, iso
from databuild.cli.tree import job_run_data

__all__ = ["downstream_of", "explain_data", "explain_text", "lineage_tree"]


def _state(snap: Snapshot, ref: str) -> str:
    part = snap.partitions.get(ref)
    return (part.status.state if part is not None else None) or "Missing"


def lineage_tree(snap: Snapshot, ref: str, depth: int = 10) -> list[str]:
    """`ref` and, indented below it, what it was built from, recursively."""
    lines: list[str] = []

    def visit(node: str, prefix: str, head: str, seen: frozenset[str], level: int) -> None:
        run = snap.builder_of(node)
        builder = f" <- {run.metadata.name} ({run.spec.job_definition})" if run else ""
        lines.append(f"{prefix}{head}{node}   {_state(snap, node)}{builder}")
        child_prefix = prefix + ("" if not head else ("    " if head == "└── " else "│   "))
        if node in seen:
            lines[-1] += "   (cycle)"
            return
        inputs = snap.inputs_of(node)
        if level >= depth and inputs:
            lines.append(f"{child_prefix}└── ... ({len(inputs)} more inputs, use --depth)")
            return
        for i, child in enumerate(inputs):
            last = i == len(inputs) - 1
            visit(child, child_prefix, "└── " if last else "├── ", seen | {node}, level + 1)

    visit(ref, "", "", frozenset(), 0)
    return lines


def downstream_of(snap: Snapshot, ref: str) -> list[str]:
    """Every partition built (directly or transitively) from `ref`, nearest first."""
    found: list[str] = []
    frontier = [ref]
    seen = {ref}
    while frontier:
        nxt = []
        for node in frontier:
            for other in sorted(snap.partitions):
                if other not in seen and node in snap.inputs_of(other):
                    seen.add(other)
                    found.append(other)
                    nxt.append(other)
        frontier = nxt
    return found


def explain_data(
    snap: Snapshot, ref: str, events: list[StoredEvent] | None = None
) -> dict[str, Any]:
    """Everything ``explain`` knows about `ref`, for ``-o json``/``yaml``."""
    part = snap.partitions.get(ref)
    run = snap.builder_of(ref)
    data: dict[str, Any] = {
        "ref": ref,
        "name": part.metadata.name if part is not None else None,
        "state": _state(snap, ref),
        "liveSince": iso(part.status.live_since)
        if part is not None and part.status.live_since
        else None,
        "message": (part.status.message if part is not None else None) or "",
        "builtBy": job_run_data(run, snap) if run is not None else None,
        "inputs": [
            {
                "ref": i,
                "state": _state(snap, i),
                "builtBy": (b.metadata.name if (b := snap.builder_of(i)) else None),
            }
            for i in snap.inputs_of(ref)
        ],
        "runs": [r.metadata.name for r in snap.runs_for(ref)],
        "downstream": downstream_of(snap, ref),
    }
    if events is not None:
        data["history"] = [e.to_dict() for e in events]
    return data


def explain_text(
    snap: Snapshot, ref: str, events: list[StoredEvent] | None = None, depth: int = 10
) -> str:
    """The human-readable explanation of `ref`."""
    part = snap.partitions.get(ref)
    state = _state(snap, ref)
    lines = [f"Partition:  {ref}" + (f"   ({part.metadata.name})" if part else "")]
    status = state
    if part is not None and part.status.live_since and state == "Live":
        status += (
            f" since {iso(part.status.live_since)} ({age(part.status.live_since, snap.now)} ago)"
        )
    lines.append(f"State:      {status}")
    if part is not None and part.status.message:
        lines.append(f"Message:    {part.status.message}")
    run = snap.builder_of(ref)
    if run is None:
        lines.append("Built by:   nothing yet (no JobRun has been created for it)")
    else:
        s = run.status
        lines.append(
            f"Built by:   JobRun {run.metadata.name} (JobDefinition {run.spec.job_definition}), "
            f"{s.state or 'Queued'}"
        )
        if s.started_at:
            lines.append(f"Started:    {iso(s.started_at)}")
        if s.finished_at:
            lines.append(f"Finished:   {iso(s.finished_at)}")
        if s.message:
            lines.append(f"Message:    {s.message}")
        attempts = snap.attempts.get(run.metadata.name, ())
        lines.append(f"Attempts:   {s.attempt or 0} (failed: {s.failed_attempts or 0})")
        for a in attempts:
            when = f"started {iso(a.started)}" if a.started else "not started"
            end = f", finished {iso(a.finished)}" if a.finished else ""
            code = f", exit code {a.exit_code}" if a.exit_code is not None else ""
            msg = f": {a.message}" if a.message else ""
            lines.append(f"  #{a.attempt}  {a.job_name}  {a.state}  ({when}{end}{code}){msg}")
        if s.state == "Failed" or any(a.state == "Failed" for a in attempts):
            lines.append(f"Logs:       {logs_hint(run.metadata.name, snap.namespace)}")
    inputs = snap.inputs_of(ref)
    lines.append("Inputs:" + ("     none" if not inputs else ""))
    for i in inputs:
        builder = snap.builder_of(i)
        by = f"built by {builder.metadata.name}" if builder else "no builder"
        lines.append(f"  {i}   {_state(snap, i)}   {by}")
    others = [r for r in snap.runs_for(ref) if run is None or r.metadata.name != run.metadata.name]
    if others:
        lines.append(
            "Other runs: " + ", ".join(f"{r.metadata.name} ({r.status.state})" for r in others)
        )
    down = downstream_of(snap, ref)
    if down:
        lines.append("Used by:    " + ", ".join(down[:10]) + (" ..." if len(down) > 10 else ""))
    lines.append("")
    lines.append("Lineage:")
    lines.extend("  " + line for line in lineage_tree(snap, ref, depth))
    if events is not None:
        lines.append("")
        lines.append("History (Build Event Log):")
        if not events:
            lines.append("  no events recorded")
        for e in events:
            ev = e.event
            lines.append(
                f"  {iso(ev.time)}  {ev.kind} {ev.name}  {ev.from_state or '-'} -> {ev.to_state}"
                f"  {ev.reason}"
            )
    return "\n".join(lines)
