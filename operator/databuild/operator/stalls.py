"""Builds that cannot start: a Running JobRun whose batch Job gets no pod, or whose
pod is never placed.

When the API server refuses a Job's pod (a ResourceQuota, Pod Security Admission, a
LimitRange), the job controller only records a ``FailedCreate`` Event on the Job and
tries again with backoff; the Job itself says nothing. So a Running JobRun whose Job has
had no pod for :data:`STALL_AFTER` is looked into: the Job's newest ``FailedCreate``
Event gives the API server's reason, which goes on the JobRun as ``Stalled=True``
(reason ``FailedCreate``) with a Warning Event. A pod the scheduler cannot place
(``PodScheduled=False``) for that long stalls it the same way with reason
``Unschedulable`` and the scheduler's message. When the pod runs (the cause went away)
or the JobRun moves on, the condition goes. A JobRun is never failed for this: the
cause is outside the build and often temporary (a quota frees up, a node is added).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from databuild.adapters import codec
from databuild.adapters.codec import time_or_none
from databuild.adapters.jobs import true_conditions

STALL_AFTER = timedelta(seconds=10)
"""How long a batch Job may have no pod before the operator looks for why."""
RECHECK = timedelta(seconds=15)
"""How often a pod-less Job without a reason yet is looked at again."""
FAILED_CREATE = "FailedCreate"
UNSCHEDULABLE = "Unschedulable"
_REASONS = frozenset({FAILED_CREATE, UNSCHEDULABLE})


@dataclass(frozen=True)
class Suspect:
    """A Running JobRun whose current batch Job has had no pod for a while."""

    job_run: str
    job: str
    unscheduled: str = ""
    """The scheduler's message when the pod exists but cannot be placed; empty when
    there is no pod (the Job's Events say why)."""


@dataclass(frozen=True)
class Review:
    """What to look into in one namespace, and what is fine again."""

    suspects: tuple[Suspect, ...] = ()
    recovered: tuple[str, ...] = ()
    """JobRuns that say Stalled (FailedCreate) but whose Job now has a pod or finished."""
    next_look: datetime | None = None
    """When a Job that has no pod yet becomes a suspect."""


def _unscheduled(pod: Mapping[str, Any]) -> tuple[str, datetime | None] | None:
    """The scheduler's message and since when, if ``pod`` cannot be placed."""
    if (pod.get("status") or {}).get("phase") not in (None, "Pending"):
        return None
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            message = str(condition.get("message") or condition.get("reason") or "unschedulable")
            return message, time_or_none(condition.get("lastTransitionTime"))
    return None


def stalled_condition(run: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JobRun's ``Stalled=True`` condition for a pod that cannot start, if any."""
    for condition in (run.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "Stalled"
            and condition.get("status") == "True"
            and condition.get("reason") in _REASONS
        ):
            return condition  # type: ignore[no-any-return]
    return None


def under_review(run: Mapping[str, Any]) -> bool:
    """Whether :func:`review` has anything to say about the JobRun ``run``: it is Running,
    or it says Stalled. Every other run can be left out of ``runs``."""
    return (run.get("status") or {}).get("state") == "Running" or stalled_condition(run) is not None


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
        pods = [p for p in pods_of(name) if codec.attempt_of(p) == attempt]
        unplaced = [u for p in pods if (u := _unscheduled(p)) is not None]
        finished = not true_conditions(job).keys().isdisjoint(("Complete", "Failed"))
        if finished or len(unplaced) < len(pods):
            if stalled:
                recovered.append(name)
            continue
        if stalled:
            continue  # said so already; the pod running is a watch event
        message, since = unplaced[0] if unplaced else ("", None)
        since = since or time_or_none((job.get("metadata") or {}).get("creationTimestamp"))
        if since is not None and now - since < STALL_AFTER:
            looks.append(since + STALL_AFTER)
            continue
        suspects.append(Suspect(name, str(job["metadata"]["name"]), message))
        if not pods:
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
    run: Mapping[str, Any], message: str | None, now: datetime, reason: str = FAILED_CREATE
) -> list[dict[str, Any]]:
    """The JobRun's conditions with the Stalled condition set (``message``, ``reason``) or
    removed (``message`` None)."""
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
                "reason": reason,
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
    "UNSCHEDULABLE",
    "Review",
    "Suspect",
    "conditions_with_stall",
    "newest_failed_create",
    "review",
    "stalled_condition",
    "under_review",
]
