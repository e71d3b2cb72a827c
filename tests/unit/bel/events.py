"""Builders for BEL events in tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.bel import BelEvent

T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """`seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def partition_event(
    ref: str,
    from_state: str | None,
    to_state: str,
    seconds: float,
    *,
    namespace: str = "data",
    reason: str = "Transition",
    **details: Any,
) -> BelEvent:
    """A Partition transition at T0 + `seconds`."""
    return BelEvent(
        namespace=namespace,
        kind="Partition",
        name="p-" + ref.replace("/", "-").replace("=", "-"),
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        time=at(seconds),
        refs=(ref,),
        details=details,
    )


def jobrun_event(
    name: str,
    from_state: str | None,
    to_state: str,
    seconds: float,
    *,
    job_definition: str,
    outputs: tuple[str, ...],
    namespace: str = "data",
    reason: str = "Transition",
    **details: Any,
) -> BelEvent:
    """A JobRun transition at T0 + `seconds`."""
    return BelEvent(
        namespace=namespace,
        kind="JobRun",
        name=name,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        time=at(seconds),
        refs=outputs,
        job_definition=job_definition,
        details=details,
    )
