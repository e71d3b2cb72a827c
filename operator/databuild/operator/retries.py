"""Per-object retries of failed writes, so one object's trouble never holds up the rest.

Modelled on client-go's rate-limited work queue: every object (kind and name in a
namespace) that had a write fail waits on its own exponential backoff before it is
written again, while the other objects of the namespace are written as planned. A write
the API server refuses for good (422 Invalid, 413 too large, 400) waits the longest
delay: the object or the schema must change first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from databuild.adapters.gateway import GatewayError, Invalid

BASE_DELAY = 0.5
MAX_DELAY = 60.0
REFUSED_DELAY = 300.0
"""How long a write the API server refused waits before it is tried again."""

_PERMANENT_STATUSES = frozenset({400, 413, 422})

ObjectKey = tuple[str, str]
"""(kind, name) of an object within its namespace."""


def permanent(error: GatewayError) -> bool:
    """Whether the API server would refuse the same request again (a 4xx about its body)."""
    return isinstance(error, Invalid) or error.status in _PERMANENT_STATUSES


@dataclass
class _Entry:
    delay: float
    not_before: datetime
    message: str = ""


class RetryQueue:
    """Backoff per object: :meth:`failed` and :meth:`give_up` start or lengthen it,
    :meth:`forget` (after a write went through) ends it."""

    def __init__(
        self,
        base: float = BASE_DELAY,
        cap: float = MAX_DELAY,
        refused: float = REFUSED_DELAY,
    ) -> None:
        self.base = base
        self.cap = cap
        self.refused = refused
        self._entries: dict[str, dict[ObjectKey, _Entry]] = {}

    def waiting(self, namespace: str, key: ObjectKey, now: datetime) -> bool:
        """Whether ``key`` is still backing off at ``now``."""
        entry = self._entries.get(namespace, {}).get(key)
        return entry is not None and entry.not_before > now

    def failed(self, namespace: str, key: ObjectKey, now: datetime) -> float:
        """A write of ``key`` failed and may succeed later: the delay until its next try."""
        entry = self._entries.setdefault(namespace, {}).get(key)
        delay = self.base if entry is None else min(self.cap, max(self.base, entry.delay * 2))
        return self._set(namespace, key, now, delay)

    def give_up(self, namespace: str, key: ObjectKey, now: datetime) -> float:
        """A write of ``key`` was refused for good: wait the long delay."""
        return self._set(namespace, key, now, self.refused)

    def _set(self, namespace: str, key: ObjectKey, now: datetime, delay: float) -> float:
        entries = self._entries.setdefault(namespace, {})
        old = entries.get(key)
        entries[key] = _Entry(delay, now + timedelta(seconds=delay), old.message if old else "")
        return delay

    def marked(self, namespace: str, key: ObjectKey, message: str) -> bool:
        """Whether ``key`` was already flagged with ``message`` (and remember it if not)."""
        entry = self._entries.get(namespace, {}).get(key)
        if entry is None or entry.message == message:
            return entry is not None
        entry.message = message
        return False

    def forget(self, namespace: str, key: ObjectKey) -> None:
        """A write of ``key`` went through: no more backoff."""
        entries = self._entries.get(namespace)
        if entries is not None and entries.pop(key, None) is not None and not entries:
            del self._entries[namespace]

    def next_due(self, namespace: str, now: datetime) -> datetime | None:
        """The earliest future time an object of ``namespace`` may be written again.

        Entries long past due belong to objects the plans no longer write (deleted,
        or moved on): they are dropped, so the queue stays as small as the trouble.
        """
        entries = self._entries.get(namespace)
        if not entries:
            return None
        stale = now - timedelta(seconds=4 * self.refused)
        for key in [k for k, e in entries.items() if e.not_before < stale]:
            del entries[key]
        due = [e.not_before for e in entries.values() if e.not_before > now]
        return min(due) if due else None

    def __len__(self) -> int:
        return sum(len(e) for e in self._entries.values())


__all__ = ["BASE_DELAY", "MAX_DELAY", "REFUSED_DELAY", "ObjectKey", "RetryQueue", "permanent"]
