"""The one protocol every Build Event Log store implements, and how to open one by URL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

from databuild.adapters.bel.model import BelEvent, EntityKey, EventQuery, StoredEvent

__all__ = [
    "Baseline",
    "BelStore",
    "BelStoreError",
    "BelStoreUnavailable",
    "HistoryTruncated",
    "redact_url",
]


class BelStoreError(Exception):
    """The store could not do what was asked."""


class BelStoreUnavailable(BelStoreError):
    """The store cannot be reached right now (connection refused, lost, timed out)."""


class HistoryTruncated(BelStoreError):
    """A question about a time before the retention policy deleted the events."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """What retention left behind: each pruned entity's state when its events were cut.

    ``retained_since`` is the retention cutoff (None while nothing was ever deleted):
    the log can answer questions about any time at or after it.
    """

    retained_since: datetime | None
    states: dict[EntityKey, tuple[int, str]]
    """Entity -> (seq of the last deleted event, the state it left the entity in)."""


class BelStore(Protocol):
    """An append-only, ordered, durable Build Event Log.

    Implementations: :class:`~databuild.adapters.bel.sqlite.SqliteBelStore` (embedded,
    the default) and :class:`~databuild.adapters.bel.postgres.PostgresBelStore`.
    Stores are safe to share between threads.
    """

    @property
    def url(self) -> str:
        """Where the store lives, without credentials."""
        ...

    def migrate(self, target: int | None = None) -> int:
        """Bring the schema to `target` (default: the newest) and return the version.

        Idempotent, and safe to run from several processes at once.
        """
        ...

    def schema_version(self) -> int:
        """The schema version applied so far (0 for an empty database)."""
        ...

    def append(self, events: Sequence[BelEvent]) -> int:
        """Append `events` in order, atomically; return how many were new.

        Events whose ``event_id`` is already stored are skipped, so a retry is harmless.
        """
        ...

    def query(self, query: EventQuery | None = None) -> list[StoredEvent]:
        """Events matching `query`, in log order (ascending ``seq``)."""
        ...

    def last_seq(self) -> int:
        """The highest sequence number so far (0 for an empty log)."""
        ...

    def delete_older_than(self, cutoff: datetime) -> int:
        """Retention, the only deletion: drop events before `cutoff`, return how many.

        The states those events led to are kept as the :class:`Baseline`, so replay
        still works for any time at or after the cutoff.
        """
        ...

    def baseline(self) -> Baseline:
        """The states retention left behind, and since when history is complete."""
        ...

    def close(self) -> None:
        """Release connections; the store can not be used afterwards."""
        ...


def redact_url(url: str) -> str:
    """`url` without a password, safe for logs and metrics."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
