"""databuild.testing.outcomes: pod template metadata for the simulated outcomes."""

from __future__ import annotations

from databuild.testing.outcomes import simulated


def test_success_needs_no_metadata() -> None:
    assert simulated() == {"labels": {}, "annotations": {}}


def test_failure_with_everything() -> None:
    assert simulated("fail", exit_code=3, message='{"missingPartitions": []}', duration="2s") == {
        "labels": {"kwok.databuild.dev/outcome": "fail"},
        "annotations": {
            "kwok.databuild.dev/exit-code": "3",
            "kwok.databuild.dev/message": '{"missingPartitions": []}',
            "kwok.databuild.dev/duration": "2s",
        },
    }


def test_fail_first_with_attempt() -> None:
    assert simulated("fail-first", attempt=2) == {
        "labels": {"kwok.databuild.dev/outcome": "fail-first"},
        "annotations": {"databuild.dev/attempt": "2"},
    }
