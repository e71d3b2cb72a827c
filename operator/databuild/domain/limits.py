"""The bounds the domain keeps, so no object can make planning unbounded or overflow.

The CRD schemas are generated with the same numbers (``databuild.adapters.resources``),
so the API server refuses what the planner would not handle; the planner still checks
everything it computes from them, because a world can be built without the API server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = [
    "EARLIEST_DATA_TIMESTAMP",
    "LATEST_DATA_TIMESTAMP",
    "MAX_EVER_MISSING",
    "MAX_PRIORITY",
    "MAX_SECONDS",
    "MIN_PRIORITY",
    "NEED_DEPTH_PER_WANT",
    "NEED_REFS_PER_NAMESPACE",
    "NEED_REFS_PER_WANT",
    "after",
]

MAX_SECONDS = 10 * 366 * 86400
"""Largest ``ttlSeconds`` and ``slaSeconds``: ten years."""
EARLIEST_DATA_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
"""Earliest ``dataTimestamp`` a Want may have."""
LATEST_DATA_TIMESTAMP = datetime(2200, 1, 1, tzinfo=UTC)
"""A ``dataTimestamp`` must be before this."""
MIN_PRIORITY = -1000
"""Lowest ``Want.spec.priority``."""
MAX_PRIORITY = 1000
"""Highest ``Want.spec.priority`` (the default is 0)."""
MAX_EVER_MISSING = 1000
"""Most refs a JobRun's dependency misses may report over all its attempts together."""

NEED_REFS_PER_WANT = 20_000
"""Default budget: refs one Want's need graph may reach (its own and upstream)."""
NEED_DEPTH_PER_WANT = 500
"""Default budget: longest chain of needs from a wanted ref to its furthest input."""
NEED_REFS_PER_NAMESPACE = 500_000
"""Default budget: refs the need graph of a namespace (all its Wants) may hold."""

_LATEST = datetime.max.replace(tzinfo=UTC)


def after(start: datetime, seconds: float) -> datetime:
    """``start`` plus ``seconds``, or the latest representable time when that overflows.

    A deadline beyond year 9999 is never reached: the latest time says so without
    raising (``ttlSeconds: 1e15``, ``dataTimestamp: 9999-12-31T...``).
    """
    try:
        return start + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        return _LATEST if seconds > 0 else datetime.min.replace(tzinfo=UTC)
