"""From the operator's transitions to BEL records: the one place that knows both.

The operator appends each transition (a domain :class:`~databuild.domain.Event` and its
namespace) to its in-memory log; a :class:`BelRecorder` subscribed to that log adds
what the durable log needs (the partitions the event is about, the JobDefinition of a
JobRun, read from the object itself), hands the record to the buffered
:class:`~databuild.adapters.bel.writer.BelWriter` and tells observers (metrics).
It never blocks and never raises into the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from databuild.adapters.bel.model import BelEvent
from databuild.adapters.bel.replay import from_domain
from databuild.adapters.bel.retention import RetentionPolicy
from databuild.adapters.bel.store import redact_url
from databuild.adapters.bel.urls import open_store
from databuild.adapters.bel.writer import BelWriter
from databuild.domain import Event

__all__ = ["BelRecorder", "Lookup", "Observer", "attach"]

log = logging.getLogger(__name__)

Lookup = Callable[[str, str, str], Mapping[str, Any] | None]
"""``(kind, namespace, name) -> the object as JSON`` (or None when unknown)."""

Observer = Callable[[BelEvent, Mapping[str, Any] | None], None]
"""Called with each record and the object it is about (None when unknown)."""


class _Subscribable(Protocol):
    def subscribe(self, listener: Callable[[Any], None]) -> None: ...


class _Logged(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def event(self) -> Event: ...


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


class BelRecorder:
    """Converts, enriches and forwards transitions; usable as a log subscriber."""

    def __init__(
        self,
        writer: BelWriter | None,
        lookup: Lookup | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.writer = writer
        self.lookup = lookup
        self.observers = list(observers)

    def record(self, namespace: str, event: Event) -> BelEvent:
        """Record one transition of an entity in `namespace`."""
        kind = str(event.kind)
        obj: Mapping[str, Any] | None = None
        if self.lookup is not None:
            try:
                obj = self.lookup(kind, namespace, event.name)
            except Exception:  # enrichment is best effort; the event itself is kept
                log.exception("BEL: looking up %s %s/%s failed", kind, namespace, event.name)
        spec: Mapping[str, Any] = (obj or {}).get("spec") or {}
        refs = _strings(spec.get("partitions"))
        job_definition = spec.get("jobDefinition") if kind == "JobRun" else None
        record = from_domain(
            event,
            namespace,
            refs=refs,
            job_definition=str(job_definition) if job_definition else None,
        )
        if self.writer is not None:
            self.writer.submit([record])
        for observer in self.observers:
            try:
                observer(record, obj)
            except Exception:
                log.exception("BEL observer %r failed", observer)
        return record

    def __call__(self, logged: _Logged) -> None:
        """Subscriber form: ``build_event_log.subscribe(recorder)``."""
        self.record(logged.namespace, logged.event)


def attach(
    event_log: _Subscribable,
    url: str | None,
    *,
    lookup: Lookup | None = None,
    observers: Sequence[Observer] = (),
    retention_days: float | None = None,
) -> BelWriter | None:
    """Subscribe a :class:`BelRecorder` to the operator's `event_log`.

    With a store `url`, a started :class:`BelWriter` appends every event to it (the
    store is opened, and its schema migrated, by the writer's thread, so a store that
    is down at startup only delays the log); returns that writer, to be closed at
    shutdown. Without one, only the `observers` (metrics) see the events.
    """
    writer = None
    if url:
        retention = RetentionPolicy(retention_days) if retention_days else None
        writer = BelWriter(opener=lambda: open_store(url), retention=retention).start()
        log.info("Build Event Log store: %s", redact_url(url))
    event_log.subscribe(BelRecorder(writer, lookup, observers))
    return writer
