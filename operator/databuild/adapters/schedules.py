"""Schedules on the wire: a Schedule object read into the domain, and the decision written back.

The domain (:mod:`databuild.domain.schedule`) decides which ticks are due; this module
knows the spellings: the Schedule's fields, the Wants it creates (label, ownerReference,
``spec.dataTimestamp``) and its status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from databuild.adapters.labels import (
    APP_COMPONENT,
    APP_MANAGED_BY,
    APP_PART_OF,
    MANAGED_BY,
    PART_OF,
    label_value,
)
from databuild.adapters.resources import API_VERSION, GROUP, Schedule, ScheduleStatus
from databuild.domain.schedule import (
    DueWant,
    OwnedWant,
    ScheduleDecision,
    ScheduleProgress,
    ScheduleSpec,
)

#: Pinned: every Want a Schedule creates carries it, with the Schedule's name as value.
SCHEDULE_LABEL = f"{GROUP}/schedule"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class BadSchedule(ValueError):
    """The Schedule object does not parse (the API server's schema should prevent it)."""


def parse(body: Mapping[str, Any]) -> Schedule:
    """The Schedule model of a raw object; :class:`BadSchedule` saying which field is wrong."""
    try:
        return Schedule.model_validate(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadSchedule(f"{where}: {first['msg']}") from None


def spec_of(schedule: Schedule) -> ScheduleSpec:
    """The domain's view of a Schedule's spec."""
    spec, meta = schedule.spec, schedule.metadata
    return ScheduleSpec(
        name=meta.name,
        expression=spec.schedule,
        partitions=tuple(spec.partitions),
        created_at=meta.creation_timestamp or datetime.now(UTC),
        time_zone=spec.time_zone,
        data_offset_seconds=spec.data_offset_seconds,
        start_time=spec.start_time,
        end_time=spec.end_time,
        suspend=spec.suspend,
        history_limit=spec.history_limit,
    )


def progress_of(schedule: Schedule) -> ScheduleProgress:
    """What the Schedule's status says it has handled."""
    return ScheduleProgress(
        handled_through=schedule.status.handled_through, last_tick=schedule.status.last_tick
    )


def owned_wants(schedule: Schedule, wants: Iterable[Mapping[str, Any]]) -> list[OwnedWant]:
    """The Wants whose ownerReference is this Schedule (by uid), with their states."""
    uid = schedule.metadata.uid
    owned = []
    for want in wants:
        meta = want.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        if any(o.get("kind") == "Schedule" and o.get("uid") == uid for o in owners):
            owned.append(OwnedWant(str(meta.get("name")), (want.get("status") or {}).get("state")))
    return owned


def want_manifest(schedule: Schedule, due: DueWant) -> dict[str, Any]:
    """The Want of one due tick: pinned name, label, ownerReference and data time."""
    spec: dict[str, Any] = {
        "partitions": [str(ref) for ref in due.partitions],
        "dataTimestamp": _iso(due.data_time),
    }
    if schedule.spec.want.ttl_seconds is not None:
        spec["ttlSeconds"] = schedule.spec.want.ttl_seconds
    if schedule.spec.want.sla_seconds is not None:
        spec["slaSeconds"] = schedule.spec.want.sla_seconds
    if schedule.spec.want.priority is not None:
        spec["priority"] = schedule.spec.want.priority
    meta = schedule.metadata
    return {
        "apiVersion": API_VERSION,
        "kind": "Want",
        "metadata": {
            "name": due.name,
            "namespace": meta.namespace,
            "labels": {
                SCHEDULE_LABEL: label_value(meta.name),
                APP_COMPONENT: "want",
                APP_PART_OF: PART_OF,
                APP_MANAGED_BY: MANAGED_BY,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Schedule",
                    "name": meta.name,
                    "uid": meta.uid,
                    "controller": True,
                    # Non-blocking, so the operator needs no permission on finalizers.
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": spec,
    }


def _condition(
    type_: str, *, status: bool, reason: str, message: str, generation: int, since: str | None
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def status_of(schedule: Schedule, decision: ScheduleDecision, now: datetime) -> dict[str, Any]:
    """The Schedule's status after ``decision`` (conditions keep their transition time)."""
    generation = schedule.metadata.generation
    previous = {c.type: c for c in schedule.status.conditions}

    def since(type_: str, status: bool, reason: str) -> str | None:
        old = previous.get(type_)
        same = old is not None and old.status == ("True" if status else "False")
        if same and old is not None and old.reason == reason:
            return _iso(old.last_transition_time)
        return _iso(now)

    conditions = [
        _condition(
            "Ready",
            status=decision.ready,
            reason=decision.reason,
            message=decision.message,
            generation=generation,
            since=since("Ready", decision.ready, decision.reason),
        )
    ]
    if decision.reason == "InvalidSpec":
        # kstatus (Flux, Argo CD): Stalled means it will not get there without a change.
        conditions.append(
            _condition(
                "Stalled",
                status=True,
                reason=decision.reason,
                message=decision.message,
                generation=generation,
                since=since("Stalled", True, decision.reason),
            )
        )
    progress = decision.progress
    return {
        "lastTick": _iso(progress.last_tick),
        "nextTick": _iso(decision.next_tick),
        "handledThrough": _iso(progress.handled_through),
        "wants": dict(decision.counts),
        "conditions": conditions,
        "observedGeneration": generation,
    }


def status_changed(schedule: Schedule, status: Mapping[str, Any]) -> bool:
    """Whether ``status`` says something the Schedule's current status does not."""
    return ScheduleStatus.model_validate(status_patch(status)) != schedule.status


def status_patch(status: Mapping[str, Any]) -> dict[str, Any]:
    """``status`` as a merge patch (unset fields stay ``None``, so the patch removes them)."""
    out = dict(status)
    out["conditions"] = [
        {k: v for k, v in c.items() if v is not None} for c in status.get("conditions", [])
    ]
    return out
