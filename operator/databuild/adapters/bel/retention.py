"""The retention policy: the BEL's only deletion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from databuild.adapters.bel.store import BelStore

__all__ = ["RetentionPolicy"]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep events for `days` days; older ones are deleted (their end states are kept)."""

    days: float

    def __post_init__(self) -> None:
        if self.days <= 0:
            raise ValueError(f"retention must be a positive number of days, not {self.days}")

    def cutoff(self, now: datetime | None = None) -> datetime:
        """Events before this instant are deleted."""
        return (now or datetime.now(UTC)) - timedelta(days=self.days)

    def apply(self, store: BelStore, now: datetime | None = None) -> int:
        """Delete what the policy no longer keeps; returns how many events were deleted."""
        return store.delete_older_than(self.cutoff(now))
