"""The Build Event Log as the operator keeps it for now: in memory, and in the log.

Every transition the operator applies is appended here once, in order, and written as
one structured log line (logger ``databuild.bel``). A durable store plugs in behind
:class:`BuildEventLog` later; tests read :attr:`BuildEventLog.events`.
"""

from __future__ import annotations

import json
import logging
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


class BuildEventLog:
    """Append-only, ordered list of every transition, plus a structured log line each."""

    def __init__(self) -> None:
        self.events: list[LoggedEvent] = []
        self._listeners: list[Callable[[LoggedEvent], None]] = []

    def append(self, namespace: str, event: domain.Event) -> None:
        """Record one transition."""
        item = LoggedEvent(namespace, event)
        self.events.append(item)
        log.info("%s", json.dumps(event_record(namespace, event), sort_keys=True))
        for listener in self._listeners:
            listener(item)

    def subscribe(self, listener: Callable[[LoggedEvent], None]) -> None:
        """Call ``listener`` with every event appended from now on."""
        self._listeners.append(listener)

    def of(self, namespace: str) -> list[domain.Event]:
        """The events of one namespace, in order."""
        return [e.event for e in self.events if e.namespace == namespace]
