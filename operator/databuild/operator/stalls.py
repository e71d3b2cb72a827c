"""Builds that cannot start: a Running JobRun whose batch Job gets no pod.

When the API server refuses a Job's pod (a ResourceQuota, Pod Security Admission, a
LimitRange), the job controller only records a ``FailedCreate`` Event on the Job and
tries again with backoff; the Job itself says nothing. So a Running JobRun whose Job has
had no pod for :data:`STALL_AFTER` is looked into: the Job's newest ``FailedCreate``
Event gives the API server's reason, which goes on the JobRun as ``Stalled=True``
(reason ``FailedCreate``) with a Warning Event. When a pod appears (the cause went away)
or the JobRun moves on, the condition goes. A JobRun is never failed for this: the
cause is outside the build and often temporary (a quota frees up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from databuild.adapters import codec
from databuild.adapters.jobs import true_conditions

STALL_AFTER = timedelta(seconds=10)
"""How long a batch Job may have no pod before the operator looks for why."""
RECHECK = timedelta(seconds=15)
"""How often a pod-less Job without a reason yet is looked at again."""
FAILED_CREATE = "FailedCreate"


@dataclass(frozen=True)
class Suspect:
    """A Running JobRun whose current batch Job has had no pod for a while."""

    job_run: str
    job: str


@dataclass(frozen=True)
class Review:
    """What to look into in one namespace, and what is fine again."""

    suspects: tuple[Suspect, ...] = ()
    recovered: tuple[str, ...] = ()
    """JobRuns that say Stalled (FailedCreate) but whose Job now has a pod or finished."""
    next_look: datetime | None = None
    """When a Job that has no pod yet becomes a suspect."""


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def stalled_condition(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JobRun's ``Stalled=True`` condition for a pod that cannot be created, if any."""
    for condition in (run.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "Stalled"
            and condition.get("status") == "True"
            and condition.get("reason") == FAILED_CREATE
        ):
            return condition  # type: ignore[no-any-return]
    return None


def review(
    runs: Mapping[str, Mapping[str, Any]],
    jobs: Mapping[str, Mapping[str, Any]],
    pods_of: Callable[[str], Sequence[Mapping[str, Any]]],
    now: datetime,
) -> Review:
    """Which Running JobRuns of a namespace may be stuck without a pod.

    ``runs`` and ``jobs`` by name as the store holds them; ``pods_of(job_run)`` the
    pods labelled with a JobRun.
    """
    suspects: list[Suspect] = []
    recovered: list[str] = []
    looks: list[datetime] = []
    for name, run in runs.items():
        status = run.get("status") or {}
        stalled = stalled_condition(run) is not None
        job = jobs.get(str(status.get("jobName") or ""))
        if status.get("state") != "Running" or job is None:
            if stalled:
                recovered.append(name)
            continue
        attempt = codec.attempt_of(job)
        has_pod = any(codec.attempt_of(p) == attempt for p in pods_of(name))
        finished = not true_conditions(job).keys().isdisjoint(("Complete", "Failed"))
        if has_pod or finished:
            if stalled:
                recovered.append(name)
            continue
        if stalled:
            continue  # said so already; a pod appearing is a watch event
        created = _time((job.get("metadata") or {}).get("creationTimestamp"))
        if created is not None and now - created < STALL_AFTER:
            looks.append(created + STALL_AFTER)
            continue
        suspects.append(Suspect(name, str(job["metadata"]["name"])))
        looks.append(now + RECHECK)
    return Review(tuple(suspects), tuple(recovered), min(looks) if looks else None)


def newest_failed_create(events: Sequence[Mapping[str, Any]]) -> str | None:
    """The message of the newest ``FailedCreate`` Event among ``events``, if any."""

    def when(event: Mapping[str, Any]) -> str:
        return str(event.get("lastTimestamp") or event.get("eventTime") or "")

    found = [e for e in events if e.get("reason") == FAILED_CREATE]
    if not found:
        return None
    return str(max(found, key=when).get("message") or "the API server refused the pod")


def conditions_with_stall(
    run: Mapping[str, Any], message: str | None, now: datetime
) -> list[dict[str, Any]]:
    """The JobRun's conditions with the Stalled condition set (``message``) or removed."""
    kept = [
        dict(c)
        for c in (run.get("status") or {}).get("conditions") or []
        if c.get("type") != "Stalled"
    ]
    if message is not None:
        kept.append(
            {
                "type": "Stalled",
                "status": "True",
                "reason": FAILED_CREATE,
                "message": message[:1024],
                "lastTransitionTime": codec.iso(now),
                "observedGeneration": int((run.get("metadata") or {}).get("generation") or 1),
            }
        )
    return kept


__all__ = [
    "FAILED_CREATE",
    "RECHECK",
    "STALL_AFTER",
    "Review",
    "Suspect",
    "conditions_with_stall",
    "newest_failed_create",
    "review",
    "stalled_condition",
]
