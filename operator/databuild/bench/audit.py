"""Counting a client's API requests from the kube-apiserver's audit log.

The apiserver's ``apiserver_request_total`` metric has no label for the client, so
when the benchmark starts the control plane itself it turns on an audit log that
records (at the Metadata level, once per request) only the benchmark's own identities:
the operator's and the baseline's ServiceAccounts. Counting a window of that log gives
every request the client made (its watches included), not only those
that went through the operator's gateway.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

__all__ = ["ApiCounts", "AuditLog", "audit_policy", "overlap", "tally"]

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def audit_policy(users: Sequence[str]) -> str:
    """An audit Policy (YAML) logging one line per request of ``users``, nothing else."""
    quoted = ", ".join(json.dumps(u) for u in users)
    return (
        "apiVersion: audit.k8s.io/v1\n"
        "kind: Policy\n"
        "omitStages: [RequestReceived, ResponseStarted]\n"
        "omitManagedFields: true\n"
        "rules:\n"
        f"- level: Metadata\n  users: [{quoted}]\n"
        "- level: None\n"
    )


@dataclass
class ApiCounts:
    """Requests of one client: all of them, successful writes, and failed writes."""

    requests: int = 0
    writes: int = 0
    failed_writes: int = 0
    by_request: Counter[str] = field(default_factory=Counter)
    """``"verb resource[/subresource]"`` -> successful writes and reads alike."""
    busy_seconds: float = 0.0
    """Sum of the durations of the requests (watches left out)."""
    max_in_flight: int = 0
    """Most requests (watches left out) being served at one moment."""
    span_seconds: float = 0.0
    """From the first request's arrival to the last one's completion."""

    @property
    def mean_latency(self) -> float | None:
        """Mean seconds a request (watches left out) took at the apiserver."""
        timed = self.requests - self.by_request_prefix("watch ")
        return self.busy_seconds / timed if timed > 0 and self.busy_seconds else None

    @property
    def mean_in_flight(self) -> float | None:
        """Average requests in flight over the span: ~1 means one request at a time."""
        return self.busy_seconds / self.span_seconds if self.span_seconds > 0 else None

    def by_request_prefix(self, prefix: str) -> int:
        """Requests whose ``"verb resource"`` starts with ``prefix``."""
        return sum(n for k, n in self.by_request.items() if k.startswith(prefix))

    def top(self, n: int = 8, *, writes_only: bool = True) -> list[tuple[str, int]]:
        """The ``n`` most frequent request kinds (only writes by default)."""
        items = [
            (k, v)
            for k, v in self.by_request.items()
            if not writes_only or k.split(" ", 1)[0] in WRITE_VERBS
        ]
        return sorted(items, key=lambda kv: (-kv[1], kv[0]))[:n]


def _seconds(timestamp: object) -> float | None:
    if not isinstance(timestamp, str):
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def overlap(intervals: Iterable[tuple[float, float]]) -> tuple[int, float, float]:
    """(most intervals overlapping at one moment, summed length, first start to last end)."""
    edges: list[tuple[float, int]] = []
    busy = 0.0
    for start, stop in intervals:
        end = max(start, stop)
        busy += end - start
        edges += [(start, 1), (end, -1)]
    if not edges:
        return 0, 0.0, 0.0
    edges.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    current = most = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most, busy, edges[-1][0] - edges[0][0]


def tally(lines: Iterable[str | bytes], user: str) -> ApiCounts:
    """Count the audit events of ``user`` in JSON ``lines`` (other lines are skipped)."""
    counts = ApiCounts()
    intervals: list[tuple[float, float]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by the writer: counted on the next read
        if (event.get("user") or {}).get("username") != user:
            continue
        if event.get("stage") not in (None, "ResponseComplete", "Panic"):
            continue
        verb = str(event.get("verb", ""))
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource", "") or event.get("requestURI", "?"))
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        code = int((event.get("responseStatus") or {}).get("code", 0) or 0)
        counts.requests += 1
        if verb != "watch":
            start = _seconds(event.get("requestReceivedTimestamp"))
            end = _seconds(event.get("stageTimestamp"))
            if start is not None and end is not None:
                intervals.append((start, end))
        if verb in WRITE_VERBS:
            if 200 <= code < 300:
                counts.writes += 1
                counts.by_request[f"{verb} {resource}"] += 1
            else:
                counts.failed_writes += 1
                counts.by_request[f"{verb} {resource} (HTTP {code})"] += 1
        else:
            counts.by_request[f"{verb} {resource}"] += 1
    counts.max_in_flight, counts.busy_seconds, counts.span_seconds = overlap(intervals)
    return counts


class AuditLog:
    """An audit log file, read in windows: ``mark = log.offset(); ...; log.count(mark, user)``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        """The current end of the log (only whole lines are ever counted)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def count(self, since: int, user: str, until: int | None = None) -> ApiCounts:
        """Requests of ``user`` logged between byte offsets ``since`` and ``until`` (end)."""
        try:
            with self.path.open("rb") as f:
                f.seek(since)
                data = f.read() if until is None else f.read(max(0, until - since))
        except FileNotFoundError:
            return ApiCounts()
        # A partly written last line belongs to the next window.
        complete = data[: data.rfind(b"\n") + 1]
        return tally(complete.splitlines(), user)
