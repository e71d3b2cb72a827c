"""Parsers of outside data (termination messages, annotations, times) are bounded and
never raise anything but their own error type."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from databuild.adapters import codec
from databuild.adapters.jobs import (
    MAX_MISSING_PER_REPORT,
    AttemptFailed,
    AttemptMissedDependencies,
    MalformedMessage,
    parse_termination_message,
    read_outcome,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _failed_job(message: str, exit_code: Any = 1, reason: str = "Error") -> tuple[Any, Any]:
    job = {
        "metadata": {
            "name": "run-1",
            "annotations": {"databuild.dev/attempt": "1"},
            "ownerReferences": [{"kind": "JobRun", "name": "run", "controller": True}],
        },
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]},
    }
    pod = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "run-1"}},
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {"exitCode": exit_code, "message": message, "reason": reason}
                    }
                }
            ]
        },
    }
    return job, [pod]


@pytest.mark.parametrize("depth", [5, 100, 2_000, 100_000])
def test_deeply_nested_miss_reports_are_malformed_not_a_crash(depth: int) -> None:
    text = '{"missingPartitions":' + "[" * depth + "]" * depth + "}"
    parsed = parse_termination_message(text)
    assert isinstance(parsed, MalformedMessage)
    assert "nests" in parsed.problem or "characters long" in parsed.problem
    job, pods = _failed_job(text)
    outcome = read_outcome(job, pods)
    assert isinstance(outcome, AttemptFailed)
    assert outcome.reason == "MalformedTerminationMessage"
    assert len(outcome.message) <= 1024


def test_deep_json_that_is_no_miss_report_is_plain_text() -> None:
    assert parse_termination_message('{"log":' + "[" * 5000 + "}") is None


def test_a_huge_message_is_bounded() -> None:
    refs = [f"raw/{i:06d}" for i in range(5000)]
    text = json.dumps({"missingPartitions": refs})
    parsed = parse_termination_message(text)
    assert isinstance(parsed, MalformedMessage) and "characters long" in parsed.problem


def test_too_many_refs_in_one_report() -> None:
    refs = [f"r/{i}" for i in range(MAX_MISSING_PER_REPORT + 1)]
    parsed = parse_termination_message(json.dumps({"missingPartitions": refs}))
    assert isinstance(parsed, MalformedMessage) and "more than" in parsed.problem
    ok = parse_termination_message(json.dumps({"missingPartitions": refs[:-1]}))
    assert isinstance(ok, tuple) and len(ok) == MAX_MISSING_PER_REPORT


@pytest.mark.parametrize("ref", ["a;rm -rf /", "$(id)", "x" * 1025, "a//b", 7, None])
def test_refs_outside_the_alphabet_are_malformed(ref: object) -> None:
    parsed = parse_termination_message(json.dumps({"missingPartitions": ["ok/1", ref]}))
    assert isinstance(parsed, MalformedMessage)
    assert len(parsed.problem) < 600


def test_a_good_report_still_parses() -> None:
    job, pods = _failed_job('{"missingPartitions": ["raw/date=2025-01-01", "raw/x"]}')
    assert read_outcome(job, pods) == AttemptMissedDependencies(("raw/date=2025-01-01", "raw/x"), 1)


def test_odd_statuses_are_an_unreadable_failure() -> None:
    job, pods = _failed_job("x")
    pods[0]["status"]["containerStatuses"] = ["not a mapping"]
    outcome = read_outcome(job, pods)
    assert isinstance(outcome, AttemptFailed) and outcome.reason == "UnreadableOutcome"


def test_long_or_odd_reasons_and_exit_codes_are_not_copied() -> None:
    job, pods = _failed_job("boom", exit_code=2**40, reason="A" * 300)
    outcome = read_outcome(job, pods)
    assert isinstance(outcome, AttemptFailed)
    assert len(outcome.reason) <= 64 and outcome.exit_code is None


_JSONISH = st.text(alphabet='{}[]":,missingPartitions0123456789 ab/\\', max_size=300)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_JSONISH, st.text(max_size=300)))
def test_any_message_parses_without_raising(text: str) -> None:
    parsed = parse_termination_message(text)
    assert parsed is None or isinstance(parsed, MalformedMessage | tuple)
    job, pods = _failed_job(text)
    assert read_outcome(job, pods) is not None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("999999", 999_999),
        ("0", None),
        ("1000000", None),
        ("1" * 5000, None),
        ("+1", None),
        (" 1", None),
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE: int() would accept it
        ("1_0", None),
        (None, None),
    ],
)
def test_attempt_annotations_are_bounded(value: str | None, expected: int | None) -> None:
    obj = {"metadata": {"annotations": {"databuild.dev/attempt": value}}}
    assert codec.attempt_of(obj) == expected


def _partition(annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Partition",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"ref": "a/b"},
    }


@pytest.mark.parametrize(
    "when",
    ["9" * 10_000, "not a time", "2025-13-45T00:00:00Z", "\x00", "9999-12-31T23:59:59-23:59"],
)
def test_unreadable_taint_times_are_ignored(when: str) -> None:
    annotations = {"databuild.dev/taint": "bad", "databuild.dev/taint-requested-at": when}
    assert codec.partition_from(_partition(annotations)).taint_request is None


def test_taint_reasons_are_bounded_and_naive_times_are_utc() -> None:
    annotations = {
        "databuild.dev/taint": "x" * 100_000,
        "databuild.dev/taint-requested-at": "2025-01-01T00:00:00",
    }
    request = codec.partition_from(_partition(annotations)).taint_request
    assert request is not None
    assert len(request.reason) == 1024
    assert request.requested_at == datetime(2025, 1, 1, tzinfo=UTC)
