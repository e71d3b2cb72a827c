"""Named concurrency pools: one limit shared by the runs of several JobDefinitions.

A JobDefinition joins a pool with ``spec.concurrencyPool``; the pool (a
``ConcurrencyPool`` of the same namespace) says how many runs of all its members may be
Running at once. A pool that does not exist holds its members' runs back (it is never
read as "unlimited"), and the Wants waiting on them say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["POOL_NOT_FOUND", "ConcurrencyPool", "PoolUsage", "pool_not_found", "pool_usage"]

POOL_NOT_FOUND = "ConcurrencyPoolNotFound"
"""The reason a Want gives while a run it needs waits for a pool that does not exist."""


@dataclass(frozen=True, slots=True)
class ConcurrencyPool:
    """``spec`` of a ConcurrencyPool: at most ``max_concurrent_runs`` members run at once."""

    name: str
    max_concurrent_runs: int


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """What a pool's status reports: its members' runs Running and Queued."""

    running: int = 0
    waiting: int = 0


def pool_not_found(job_definition: str, pool: str) -> str:
    """The message of :data:`POOL_NOT_FOUND`: what is missing and what to do."""
    return (
        f"JobDefinition {job_definition!r} names spec.concurrencyPool {pool!r}, which does "
        "not exist in this namespace; its runs wait until the ConcurrencyPool is created "
        "(or spec.concurrencyPool is removed)"
    )


def pool_usage(
    runs: Mapping[tuple[str, str], int], pool_of: Mapping[str, str | None]
) -> dict[str, PoolUsage]:
    """Running and Queued runs per pool, from how many runs have each ``(job definition,
    state name)``.

    ``pool_of`` maps a JobDefinition to its pool (or None). Runs of JobDefinitions
    outside any pool are not counted.
    """
    running: dict[str, int] = {}
    waiting: dict[str, int] = {}
    for (job_definition, state), n in runs.items():
        pool = pool_of.get(job_definition)
        if pool is None:
            continue
        if state == "Running":
            running[pool] = running.get(pool, 0) + n
        elif state == "Queued":
            waiting[pool] = waiting.get(pool, 0) + n
    return {
        pool: PoolUsage(running.get(pool, 0), waiting.get(pool, 0))
        for pool in sorted({*running, *waiting})
    }
