"""``databuild status``: a tree Want -> Partitions -> JobRuns, with states and ages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from databuild.adapters.resources import JobRun, Want
from databuild.cli.kube import Snapshot
from databuild.cli.podlogs import logs_hint
from databuild.cli.render import age, iso

__all__ = ["job_run_data", "status_data", "status_tree", "want_line"]

_LAST, _MID, _PIPE, _GAP = "└── ", "├── ", "│   ", "    "


def want_line(want: Want, snap: Snapshot) -> str:
    """One line for a Want: name, state, progress and age."""
    state = want.status.state or "Pending"
    parts = [f"Want {want.metadata.name}", state, f"{_progress(want, snap)} live"]
    if want.status.sla_breached:
        parts.append("SLA breached")
    if want.spec.priority:
        parts.append(f"priority {want.spec.priority}")
    if want.spec.source is not None:
        parts.append(f"for {want.spec.source.job_run}")
    parts.append(f"age {age(want.metadata.creation_timestamp, snap.now)}")
    return "   ".join(parts)


def _progress(want: Want, snap: Snapshot) -> str:
    live = sum(
        1
        for ref in want.spec.partitions
        if (p := snap.partitions.get(ref)) is not None and p.status.state == "Live"
    )
    return f"{live}/{len(want.spec.partitions)}"


def _run_line(run: JobRun, snap: Snapshot) -> str:
    s = run.status
    bits = [f"JobRun {run.metadata.name}", s.state or "Queued", run.spec.job_definition]
    if s.attempt:
        bits.append(f"attempt {s.attempt}")
    if s.finished_at is not None:
        bits.append(f"finished {age(s.finished_at, snap.now)} ago")
        if s.started_at is not None:
            bits.append(f"took {age(s.started_at, s.finished_at)}")
    elif s.started_at is not None:
        bits.append(f"started {age(s.started_at, snap.now)} ago")
    else:
        bits.append(f"age {age(run.metadata.creation_timestamp, snap.now)}")
    return "   ".join(bits)


def _attempt_lines(run: JobRun, snap: Snapshot) -> list[str]:
    lines = []
    for a in snap.attempts.get(run.metadata.name, ()):
        bits = [f"attempt {a.attempt}", a.job_name, a.state]
        if a.exit_code is not None:
            bits.append(f"exit code {a.exit_code}")
        if a.started is not None:
            bits.append(f"took {age(a.started, a.finished or snap.now)}")
        lines.append("   ".join(bits))
    return lines


def _run_details(run: JobRun, snap: Snapshot, wide: bool = False) -> list[str]:
    lines = _attempt_lines(run, snap) if wide else []
    waiting = [
        ref
        for ref in [*run.spec.inputs, *(run.status.missing_partitions or [])]
        if (p := snap.partitions.get(ref)) is None or p.status.state != "Live"
    ]
    if run.status.state == "WaitingForUpstream" and waiting:
        shown = ", ".join(dict.fromkeys(waiting[:5]))
        more = f" (+{len(waiting) - 5} more)" if len(waiting) > 5 else ""
        lines.append(f"waiting for {shown}{more}")
    if run.status.message and run.status.state in ("Failed", "Queued", "Cancelled"):
        lines.append(f"message: {run.status.message}")
    if run.status.state == "Failed":
        lines.append(f"logs: {logs_hint(run.metadata.name, snap.namespace)}")
    return lines


def status_tree(wants: Sequence[Want], snap: Snapshot, *, wide: bool = False) -> str:
    """The tree of each Want in `wants`, blank-line separated (``wide``: with attempts)."""
    blocks = []
    for want in wants:
        lines = [want_line(want, snap)]
        refs = list(want.spec.partitions)
        for i, ref in enumerate(refs):
            last_part = i == len(refs) - 1
            part = snap.partitions.get(ref)
            state = part.status.state if part is not None and part.status.state else "Missing"
            since = None
            if part is not None:
                since = part.status.live_since if state == "Live" else None
                since = since or part.metadata.creation_timestamp
            head = _LAST if last_part else _MID
            name = f"   {part.metadata.name}" if wide and part is not None else ""
            lines.append(f"{head}Partition {ref}   {state}   {age(since, snap.now)}{name}")
            indent = _GAP if last_part else _PIPE
            runs = snap.runs_for(ref)
            for j, run in enumerate(runs):
                last_run = j == len(runs) - 1
                lines.append(f"{indent}{_LAST if last_run else _MID}{_run_line(run, snap)}")
                sub = indent + (_GAP if last_run else _PIPE)
                details = _run_details(run, snap, wide)
                for k, detail in enumerate(details):
                    lines.append(f"{sub}{_LAST if k == len(details) - 1 else _MID}{detail}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def job_run_data(run: JobRun, snap: Snapshot) -> dict[str, Any]:
    """A JobRun for ``-o json``."""
    s = run.status
    data: dict[str, Any] = {
        "name": run.metadata.name,
        "jobDefinition": run.spec.job_definition,
        "state": s.state or "Queued",
        "attempt": s.attempt or 0,
        "failedAttempts": s.failed_attempts or 0,
        "inputs": list(run.spec.inputs),
        "startedAt": iso(s.started_at) if s.started_at else None,
        "finishedAt": iso(s.finished_at) if s.finished_at else None,
        "message": s.message or "",
    }
    attempts = snap.attempts.get(run.metadata.name)
    if attempts is not None:
        data["attempts"] = [
            {
                "attempt": a.attempt,
                "job": a.job_name,
                "state": a.state,
                "startedAt": iso(a.started) if a.started else None,
                "finishedAt": iso(a.finished) if a.finished else None,
                "exitCode": a.exit_code,
                "message": a.message,
            }
            for a in attempts
        ]
    return data


def status_data(want: Want, snap: Snapshot) -> dict[str, Any]:
    """A Want's tree for ``-o json``/``yaml``."""
    partitions = []
    for ref in want.spec.partitions:
        part = snap.partitions.get(ref)
        partitions.append(
            {
                "ref": ref,
                "name": part.metadata.name if part is not None else None,
                "state": (part.status.state if part is not None else None) or "Missing",
                "liveSince": iso(part.status.live_since)
                if part is not None and part.status.live_since
                else None,
                "jobRuns": [job_run_data(r, snap) for r in snap.runs_for(ref)],
            }
        )
    return {
        "name": want.metadata.name,
        "namespace": want.metadata.namespace or snap.namespace,
        "state": want.status.state or "Pending",
        "progress": _progress(want, snap),
        "slaBreached": bool(want.status.sla_breached),
        "priority": want.spec.priority or 0,
        "createdAt": iso(want.metadata.creation_timestamp)
        if want.metadata.creation_timestamp
        else None,
        "partitions": partitions,
    }
