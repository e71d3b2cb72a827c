"""Builders shared by the domain tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from databuild.domain.actions import Action
from databuild.domain.world import JobDefinition, Retry, World

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def jd(
    name: str,
    outputs: str | Iterable[str],
    inputs: Iterable[str] = (),
    *,
    retries: int = 0,
    backoff: float = 0.0,
    max_runs: int | None = None,
) -> JobDefinition:
    """A JobDefinition with short arguments."""
    outs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    return JobDefinition(
        name, outs, tuple(inputs), Retry(retries, backoff), max_concurrent_runs=max_runs
    )


def chain_world() -> World:
    """raw <- clean <- daily, plus a diamond: daily reads clean and raw."""
    return World(
        job_definitions={
            "raw": jd("raw", "raw/date={date}"),
            "clean": jd("clean", "clean/date={date}", ["raw/date={date}"]),
            "daily": jd("daily", "daily/date={date}", ["clean/date={date}", "raw/date={date}"]),
        }
    )


def kinds(actions: Iterable[Action]) -> list[str]:
    """Action type names, for readable assertions."""
    return [type(a).__name__ for a in actions]
