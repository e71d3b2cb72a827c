"""Which finished JobRuns have been kept long enough.

A JobRun that finished (Succeeded, Failed or Cancelled) more than the retention age ago
is deleted, unless it is the build of record of a Live partition (the partition's
``status.jobRun``: its lineage and logs stay readable as long as the data is current).
JobRun names come from the time of the decision, never from how many runs exist, so
deleting one can never let a new run take its name.
The Wants it created for a dependency miss carry an ownerReference to it and go with
it; so do its batch Jobs. Without this, JobRuns, and the operator's memory holding them,
would grow for ever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from databuild.adapters.codec import time_or_none

FINISHED = frozenset({"Succeeded", "Failed", "Cancelled"})
MAX_PER_PASS = 100
"""JobRuns deleted per planning pass, so a first pass after a long time stays short."""


@dataclass(frozen=True)
class Retirement:
    """The JobRuns to delete now, and when the next one is due."""

    job_runs: tuple[tuple[str, str], ...] = ()
    """(name, uid) of each JobRun to delete."""
    next_due: datetime | None = None


def retire(
    runs: Mapping[str, Mapping[str, Any]],
    partitions: Mapping[str, Mapping[str, Any]],
    now: datetime,
    age: timedelta,
) -> Retirement:
    """The finished JobRuns among ``runs`` (by name) older than ``age`` at ``now``."""
    of_record = {
        str((p.get("status") or {}).get("jobRun"))
        for p in partitions.values()
        if (p.get("status") or {}).get("state") == "Live"
    }
    due: list[tuple[str, str]] = []
    later: list[datetime] = []
    for name, run in sorted(runs.items()):
        status = run.get("status") or {}
        if status.get("state") not in FINISHED or name in of_record:
            continue
        meta = run.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        finished = time_or_none(status.get("finishedAt")) or time_or_none(
            meta.get("creationTimestamp")
        )
        if finished is None:
            continue
        expires = finished + age
        if expires > now:
            later.append(expires)
        elif len(due) < MAX_PER_PASS:
            due.append((name, str(meta.get("uid") or "")))
        else:
            later.append(now + timedelta(seconds=1))
    return Retirement(tuple(due), min(later) if later else None)


__all__ = ["FINISHED", "MAX_PER_PASS", "Retirement", "retire"]
