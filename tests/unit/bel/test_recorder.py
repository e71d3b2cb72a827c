"""BelRecorder: the operator's transitions, enriched from the objects, to the writer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databuild.adapters.bel import (
    BelEvent,
    BelRecorder,
    BelWriter,
    EventQuery,
    attach,
    open_store,
)
from databuild.domain import EntityKind, Event

from .events import T0

OBJECTS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("JobRun", "data", "sum-1"): {
        "spec": {"jobDefinition": "summarise", "partitions": ["sum/d=1", "sum/d=2"]}
    },
    ("Want", "data", "w"): {"spec": {"partitions": ["sum/d=1"]}},
}


def _lookup(kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
    return OBJECTS.get((kind, namespace, name))


@dataclass(frozen=True)
class _Logged:
    namespace: str
    event: Event


def test_events_are_enriched_written_and_observed(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'bel.db'}")
    writer = BelWriter(store).start()
    seen: list[tuple[BelEvent, Mapping[str, Any] | None]] = []
    recorder = BelRecorder(writer, _lookup, [lambda e, o: seen.append((e, o))])

    run = Event(T0, EntityKind.JOB_RUN, "sum-1", "Queued", "Running", "Started", {"attempt": "1"})
    part = Event(T0, EntityKind.PARTITION, "p", None, "Missing", "Created", {"ref": "sum/d=1"})
    want = Event(T0, EntityKind.WANT, "w", "Pending", "Building", "Building")
    unknown = Event(T0, EntityKind.JOB_RUN, "gone", "Running", "Failed", "Failed")
    recorder(_Logged("data", run))
    for e in (part, want, unknown):
        recorder.record("data", e)
    assert writer.flush(timeout=10)

    stored = {s.event.name: s.event for s in store.query()}
    assert stored["sum-1"].job_definition == "summarise"
    assert stored["sum-1"].refs == ("sum/d=1", "sum/d=2")
    assert stored["p"].refs == ("sum/d=1",)
    assert stored["w"].refs == ("sum/d=1",)
    assert stored["gone"].job_definition is None  # unknown object: recorded anyway
    assert [s.event.name for s in store.query(EventQuery(ref_glob="sum/d=2"))] == ["sum-1"]
    assert [e.name for e, _ in seen] == ["sum-1", "p", "w", "gone"]
    assert seen[0][1] is OBJECTS["JobRun", "data", "sum-1"]
    writer.close()
    store.close()


def test_a_failing_lookup_or_observer_never_reaches_the_operator() -> None:
    def broken_lookup(kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        raise RuntimeError("store gone")

    def broken_observer(event: BelEvent, obj: Mapping[str, Any] | None) -> None:
        raise RuntimeError("metrics gone")

    recorder = BelRecorder(None, broken_lookup, [broken_observer])
    event = Event(T0, EntityKind.WANT, "w", "Pending", "Building", "Building")
    record = recorder.record("data", event)
    assert record.name == "w"
    assert record.refs == ()


class _Log:
    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []

    def subscribe(self, listener: Callable[[Any], None]) -> None:
        self.listeners.append(listener)

    def append(self, namespace: str, event: Event) -> None:
        for listener in self.listeners:
            listener(_Logged(namespace, event))


def test_attach_subscribes_a_recorder_writing_to_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'bel.db'}"
    event_log = _Log()
    seen: list[str] = []
    writer = attach(event_log, url, lookup=_lookup, observers=[lambda e, o: seen.append(e.name)])
    assert writer is not None
    event_log.append("data", Event(T0, EntityKind.WANT, "w", "Pending", "Building", "Building"))
    assert writer.flush(timeout=10)
    writer.close()
    store = open_store(url)
    assert [s.event.refs for s in store.query()] == [("sum/d=1",)]
    store.close()
    assert seen == ["w"]


def test_attach_without_a_store_still_feeds_observers() -> None:
    event_log = _Log()
    seen: list[str] = []
    assert attach(event_log, None, observers=[lambda e, o: seen.append(e.name)]) is None
    event_log.append("data", Event(T0, EntityKind.WANT, "w", "Pending", "Building", "Building"))
    assert seen == ["w"]
