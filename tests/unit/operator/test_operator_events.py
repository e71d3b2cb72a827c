"""Which transitions become Kubernetes Events (DESIGN §5: few, Warnings and milestones)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from databuild import domain
from databuild.domain.states import edges
from databuild.operator.executor import event_type

_T = datetime(2025, 1, 1, tzinfo=UTC)


def _event(
    kind: domain.EntityKind, edge: tuple[str | None, str], *, attempt: int = 2
) -> domain.Event:
    return domain.Event(_T, kind, "x", edge[0], edge[1], "Reason", {"attempt": str(attempt)})


def _all_edges() -> list[tuple[domain.EntityKind, tuple[str | None, str]]]:
    created = {
        domain.EntityKind.PARTITION: "Missing",
        domain.EntityKind.JOB_RUN: "Queued",
        domain.EntityKind.WANT: "Pending",
    }
    out: list[tuple[domain.EntityKind, tuple[str | None, str]]] = []
    for kind, initial in created.items():
        out.append((kind, (None, initial)))
        out.extend((kind, edge) for edge in edges(kind))
    return out


@pytest.mark.parametrize(("kind", "edge"), _all_edges(), ids=str)
def test_every_failure_is_a_warning_and_only_milestones_are_normal(
    kind: domain.EntityKind, edge: tuple[str | None, str]
) -> None:
    warning = edge[1] in ("Failed", "Expired", "Cancelled", "Tainted") or (
        kind is domain.EntityKind.JOB_RUN
        and edge in (("Running", "Queued"), ("Running", "WaitingForUpstream"))
    )
    milestone = (kind is domain.EntityKind.JOB_RUN and edge[1] == "Succeeded") or (
        kind is domain.EntityKind.WANT
        and (edge[1] == "Successful" or (edge[0] == "Pending" and edge[1] != "Pending"))
        and edge[1] not in ("Failed", "Expired")
    )
    expected = "Warning" if warning else "Normal" if milestone else None
    assert event_type(_event(kind, edge)) == expected


@pytest.mark.parametrize(("attempt", "expected"), [(1, []), (2, ["Normal"]), (7, ["Normal"])])
def test_only_a_success_after_a_failed_attempt_is_a_normal_event(
    attempt: int, expected: list[str]
) -> None:
    # A first attempt's success is in its status and the BEL: an Event would be the
    # ninth write of every built partition. One after failures ends their Warnings.
    run_edges = [("Queued", "Running"), ("Running", "Succeeded")]
    part_edges = [("Missing", "Building"), ("Building", "Live")]
    types = [event_type(_event(domain.EntityKind.JOB_RUN, e, attempt=attempt)) for e in run_edges]
    types += [event_type(_event(domain.EntityKind.PARTITION, e)) for e in part_edges]
    assert [t for t in types if t is not None] == expected


def test_the_domain_names_the_attempt_that_succeeded() -> None:
    running = domain.JobRunRunning(attempt=3, batch_job="r-3", started_at=_T)
    _, event = running.succeed("r", at=_T)
    assert event.details["attempt"] == "3"
    assert event_type(event) == "Normal"
