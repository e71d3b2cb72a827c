"""The Build Event Log as the operator process sees it: the log line and subscribers.

Every transition the operator applies is appended here once, in order, and written as
one structured log line (logger ``databuild.bel``); subscribers (the durable BEL store's
recorder, metrics) get each event. In memory it keeps only the most recent events (for
tests and debugging) and a count per kind and to-state: a long-running operator must not
grow with its history, which the durable store holds.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from databuild import domain

log = logging.getLogger("databuild.bel")


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One BEL event and the namespace it happened in."""

    namespace: str
    event: domain.Event


def event_record(namespace: str, event: domain.Event) -> dict[str, object]:
    """The JSON-compatible form of one BEL event (the structured log line's payload)."""
    return {
        "time": event.time.isoformat(),
        "namespace": namespace,
        "kind": str(event.kind),
        "name": event.name,
        "from": event.from_state,
        "to": event.to_state,
        "reason": event.reason,
        "details": dict(event.details),
    }


#: Recent events kept in memory; at ~7 per built partition, the last ~1,500 builds.
RECENT_EVENTS = 10_000


class BuildEventLog:
    """Every transition, in order: a structured log line each, subscribers, and counts."""

    def __init__(self, recent: int = RECENT_EVENTS) -> None:
        self.events: deque[LoggedEvent] = deque(maxlen=recent)
        """The most recent events, oldest first."""
        self.transitions: Counter[tuple[str, str]] = Counter()
        """How many events reached each (kind, to-state), ever."""
        self._listeners: list[Callable[[LoggedEvent], None]] = []

    def append(self, namespace: str, event: domain.Event) -> None:
        """Record one transition."""
        item = LoggedEvent(namespace, event)
        self.events.append(item)
        self.transitions[str(event.kind), event.to_state] += 1
        # Serialising every transition costs about a sixth of a big plan's writes:
        # only when the line is written.
        if log.isEnabledFor(logging.INFO):
            log.info("%s", json.dumps(event_record(namespace, event), sort_keys=True))
        for listener in self._listeners:
            listener(item)

    def subscribe(self, listener: Callable[[LoggedEvent], None]) -> None:
        """Call ``listener`` with every event appended from now on."""
        self._listeners.append(listener)

    def of(self, namespace: str) -> list[domain.Event]:
        """The recent events of one namespace, in order."""
        return [e.event for e in self.events if e.namespace == namespace]
