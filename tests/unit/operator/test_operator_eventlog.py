"""The Build Event Log's structured log line costs nothing when nobody reads it."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from databuild import domain
from databuild.operator import eventlog
from databuild.operator.eventlog import BuildEventLog

_T = datetime(2025, 1, 1, tzinfo=UTC)


def _event() -> domain.Event:
    return domain.Event(_T, domain.EntityKind.PARTITION, "p", "Missing", "Building", "Assigned")


def test_the_line_is_not_serialised_when_info_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    real_dumps = json.dumps

    def counting_dumps(obj: object, **kwargs: object) -> str:
        calls.append(obj)
        return real_dumps(obj, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(eventlog.json, "dumps", counting_dumps)
    monkeypatch.setattr(eventlog.log, "level", logging.WARNING)
    bel = BuildEventLog()
    seen: list[eventlog.LoggedEvent] = []
    bel.subscribe(seen.append)
    bel.append("n", _event())
    assert calls == []
    # Everything else still happens: the event is kept, counted and handed on.
    assert [e.event.to_state for e in bel.events] == ["Building"]
    assert bel.transitions["Partition", "Building"] == 1
    assert len(seen) == 1


def test_the_line_is_written_when_info_is_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(eventlog.log, "level", logging.INFO)
    with caplog.at_level(logging.INFO, logger="databuild.bel"):
        BuildEventLog().append("n", _event())
    [record] = [r for r in caplog.records if r.name == "databuild.bel"]
    line = json.loads(record.getMessage())
    assert line["namespace"] == "n"
    assert (line["from"], line["to"], line["name"]) == ("Missing", "Building", "p")
