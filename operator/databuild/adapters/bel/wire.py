"""The Build Event Log over HTTP: how queries, events and baselines travel as JSON.

The operator's read-only history API (``databuild.operator.history_api``) and the CLI's
client of it (``databuild.cli.remote_bel``) both use these, so the two ends cannot
disagree about a field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from databuild.adapters.bel.model import BelEvent, EntityKey, EventQuery, StoredEvent
from databuild.adapters.bel.store import Baseline

__all__ = [
    "baseline_from_dict",
    "baseline_to_dict",
    "query_from_params",
    "query_to_params",
    "stored_event_from_dict",
]

#: At most this many events per response; clients page with ``afterSeq``.
MAX_PAGE = 5000


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def query_to_params(query: EventQuery) -> dict[str, str]:
    """`query` as URL query parameters (only the fields that are set)."""
    params: dict[str, str] = {}
    for key, value in (
        ("namespace", query.namespace),
        ("kind", query.kind),
        ("name", query.name),
        ("ref", query.ref_glob),
        ("jobDefinition", query.job_definition),
        ("state", query.state),
    ):
        if value is not None:
            params[key] = value
    if query.since is not None:
        params["since"] = query.since.isoformat()
    if query.until is not None:
        params["until"] = query.until.isoformat()
    if query.after_seq:
        params["afterSeq"] = str(query.after_seq)
    if query.limit is not None:
        params["limit"] = str(query.limit)
    if query.reasons:
        params["reason"] = ",".join(query.reasons)
    return params


def query_from_params(params: Mapping[str, str]) -> EventQuery:
    """The :class:`EventQuery` of URL parameters; ``ValueError`` says which one is bad."""

    def number(key: str) -> int | None:
        if key not in params:
            return None
        try:
            value = int(params[key])
        except ValueError:
            raise ValueError(f"{key}={params[key]!r} is not a whole number") from None
        if value < 0:
            raise ValueError(f"{key} must be 0 or more")
        return value

    def moment(key: str) -> datetime | None:
        if key not in params:
            return None
        try:
            return _time(params[key])
        except ValueError:
            raise ValueError(f"{key}={params[key]!r} is not an RFC 3339 time") from None

    limit = number("limit")
    reasons = params.get("reason")
    return EventQuery(
        namespace=params.get("namespace"),
        kind=params.get("kind"),
        name=params.get("name"),
        ref_glob=params.get("ref"),
        job_definition=params.get("jobDefinition"),
        state=params.get("state"),
        since=moment("since"),
        until=moment("until"),
        after_seq=number("afterSeq") or 0,
        limit=min(limit, MAX_PAGE) if limit is not None else MAX_PAGE,
        reasons=reasons.split(",") if reasons else None,
    )


def stored_event_from_dict(data: Mapping[str, Any]) -> StoredEvent:
    """The inverse of :meth:`StoredEvent.to_dict`."""
    event = BelEvent(
        namespace=str(data["namespace"]),
        kind=str(data["kind"]),
        name=str(data["name"]),
        from_state=data.get("from"),
        to_state=str(data["to"]),
        reason=str(data.get("reason") or ""),
        time=_time(str(data["time"])),
        details=dict(data.get("details") or {}),
        refs=tuple(data.get("refs") or ()),
        job_definition=data.get("jobDefinition"),
        event_id=str(data.get("eventId") or ""),
    )
    return StoredEvent(int(data["seq"]), event)


def baseline_to_dict(base: Baseline) -> dict[str, Any]:
    """A :class:`Baseline` as JSON."""
    return {
        "retainedSince": base.retained_since.isoformat() if base.retained_since else None,
        "states": [
            {"namespace": k.namespace, "kind": k.kind, "name": k.name, "seq": seq, "state": st}
            for k, (seq, st) in base.states.items()
        ],
    }


def baseline_from_dict(data: Mapping[str, Any]) -> Baseline:
    """The inverse of :func:`baseline_to_dict`."""
    since = data.get("retainedSince")
    return Baseline(
        retained_since=_time(since) if since else None,
        states={
            EntityKey(s["namespace"], s["kind"], s["name"]): (int(s["seq"]), str(s["state"]))
            for s in data.get("states") or []
        },
    )
