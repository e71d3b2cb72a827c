"""TaintRequests on the wire: a request read into the domain, and its outcome written back.

A TaintRequest asks for Live partitions to be tainted without the right to patch
Partitions. Its time is ``metadata.creationTimestamp``, set by the API server, so no
client chooses which data it covers; that time has whole seconds, so the request counts
from the end of its second (data Live earlier in that second is covered too).

The request stays *pending* until the operator has written its status; only a pending
request reaches the planner, so an applied one is never applied again, whatever happens
to the partitions afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from databuild import domain
from databuild.adapters.codec import BadObject, end_of_second, time_or_none
from databuild.adapters.resources import TaintRequest

__all__ = ["APPLIED", "PendingTaint", "Request", "read", "status_patch"]

APPLIED = "Applied"
"""The reason of the ``Ready`` condition once a request was applied."""


@dataclass(frozen=True, slots=True)
class PendingTaint:
    """The refs of a request not applied yet, and the request the planner acts on."""

    refs: tuple[str, ...]
    taint: domain.TaintRequest


@dataclass(frozen=True, slots=True)
class Request:
    """One TaintRequest as the operator reads it."""

    name: str
    uid: str
    generation: int
    resource_version: str
    refs: tuple[str, ...]
    taint: domain.TaintRequest
    applied_at: datetime | None
    """When its status was written (None: pending)."""
    deleting: bool

    @property
    def pending(self) -> PendingTaint | None:
        """What the planner must still act on, if anything."""
        if self.applied_at is not None or self.deleting:
            return None
        return PendingTaint(self.refs, self.taint)


def read(body: Mapping[str, Any]) -> Request:
    """The request in ``body``; :class:`BadObject` if it cannot be read."""
    name = str((body.get("metadata") or {}).get("name", ""))
    try:
        request = TaintRequest.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BadObject("TaintRequest", name, f"{where}: {first.get('msg')}") from None
    meta = request.metadata
    created = meta.creation_timestamp
    if created is None:
        raise BadObject("TaintRequest", name, "metadata.creationTimestamp is missing")
    generation = meta.generation or 1
    status = request.status
    applied = (
        time_or_none(status.applied_at) or created
        if status.observed_generation is not None and status.observed_generation >= generation
        else None
    )
    return Request(
        name=meta.name,
        uid=meta.uid,
        generation=generation,
        resource_version=meta.resource_version,
        refs=tuple(request.spec.partitions),
        taint=domain.TaintRequest(
            request.spec.reason, end_of_second(time_or_none(created) or created)
        ),
        applied_at=applied,
        deleting=meta.deletion_timestamp is not None,
    )


def status_patch(outcome: domain.TaintOutcome, generation: int, now: datetime) -> dict[str, Any]:
    """The status of a request the planner has acted on (``outcome.applied``)."""
    summary = (
        f"tainted {len(outcome.tainted)}, not Live {len(outcome.not_live)}, "
        f"unknown {len(outcome.unknown)}"
    )
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "tainted": list(outcome.tainted),
        "notLive": list(outcome.not_live),
        "unknown": list(outcome.unknown),
        "appliedAt": stamp,
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": APPLIED,
                "message": summary,
                "lastTransitionTime": stamp,
                "observedGeneration": generation,
            }
        ],
    }
