"""A probe's "not yet" is no failure: no Warning (no Kubernetes Event at all)."""

from __future__ import annotations

from datetime import UTC, datetime

from databuild import domain
from databuild.domain.states import WAITING_FOR_EXTERNAL_DATA
from databuild.operator.executor import event_type

AT = datetime(2025, 1, 1, tzinfo=UTC)


def _requeued(reason: str) -> domain.Event:
    return domain.Event(AT, domain.EntityKind.JOB_RUN, "r", "Running", "Queued", reason, {})


def test_not_yet_posts_no_event_but_a_failed_attempt_stays_a_warning() -> None:
    assert event_type(_requeued(WAITING_FOR_EXTERNAL_DATA)) is None
    assert event_type(_requeued("AttemptFailed")) == "Warning"
