"""The outcome finalizer on batch Jobs: when it may go.

Every batch Job the operator creates carries ``databuild.dev/outcome``, so the Job
cannot disappear (``ttlSecondsAfterFinished``, a user's or the garbage collector's
delete) before its outcome is in its JobRun's status. Without it, a Job that finished
and was deleted while no operator ran would leave a Running JobRun behind, and the next
operator would run the build again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from databuild.adapters import codec
from databuild.adapters.jobs import true_conditions
from databuild.adapters.labels import OUTCOME_FINALIZER


@dataclass(frozen=True)
class Release:
    """Removing the outcome finalizer from one batch Job."""

    job: str
    resource_version: str
    finalizers: tuple[str, ...]
    """The Job's finalizers without the operator's (what the release writes)."""


def holds_outcome(job: Mapping[str, Any]) -> bool:
    """Whether the batch Job still carries the outcome finalizer (only those can be due)."""
    return OUTCOME_FINALIZER in ((job.get("metadata") or {}).get("finalizers") or ())


def releasable(job: Mapping[str, Any], run: Mapping[str, Any] | None) -> Release | None:
    """The release of ``job``'s outcome finalizer if it may go now (``run``: its JobRun).

    It may go once the Job finished (or is being deleted) and its JobRun, as written
    in the API, no longer waits for this attempt: the outcome is then recorded, or the
    JobRun moved on or is gone. A Job deleted before it finished has no outcome to
    keep; it goes too, and a JobRun still Running gets the attempt's Job again.
    """
    meta = job.get("metadata") or {}
    finalizers = tuple(str(f) for f in meta.get("finalizers") or ())
    if OUTCOME_FINALIZER not in finalizers:
        return None
    finished = not true_conditions(job).keys().isdisjoint(("Complete", "Failed"))
    deleting = bool(meta.get("deletionTimestamp"))
    status = (run or {}).get("status") or {}
    waiting = (
        run is not None
        and status.get("state") == "Running"
        and status.get("attempt") == codec.attempt_of(job)
    )
    if (finished and not waiting) or (deleting and not finished):
        return Release(
            str(meta.get("name", "")),
            str(meta.get("resourceVersion", "")),
            tuple(f for f in finalizers if f != OUTCOME_FINALIZER),
        )
    return None


def releases(jobs: Mapping[str, Mapping[str, Any]], runs: Mapping[str, Any]) -> list[Release]:
    """The releases due among ``jobs`` (by name), given the JobRuns ``runs`` (by name)."""
    due = []
    for body in jobs.values():
        release = releasable(body, runs.get(codec.job_run_of(body) or ""))
        if release is not None:
            due.append(release)
    return due


__all__ = ["Release", "holds_outcome", "releasable", "releases"]
