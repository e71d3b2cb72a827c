"""The custom resource models: wire format, validation and the ref/pattern rules."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from databuild.adapters.resources import (
    PATTERN_PATTERN,
    REF_PATTERN,
    JobDefinition,
    JobRun,
    Partition,
    Want,
    WantStatus,
)

TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}


def test_want_parses_camel_case_and_serialises_back() -> None:
    want = Want.model_validate(
        {
            "apiVersion": "databuild.dev/v1alpha1",
            "kind": "Want",
            "metadata": {"name": "w", "namespace": "ns", "generation": 2, "uid": "u"},
            "spec": {
                "partitions": ["daily/date=2025-01-01"],
                "ttlSeconds": 60,
                "dataTimestamp": "2025-01-01T00:00:00Z",
                "source": {"jobRun": "run-1"},
            },
            "status": {"state": "Building", "observedGeneration": 1},
        }
    )
    assert want.spec.ttl_seconds == 60
    assert want.spec.source is not None and want.spec.source.job_run == "run-1"
    assert want.spec.data_timestamp == datetime(2025, 1, 1, tzinfo=UTC)
    assert want.metadata.generation == 2
    wire = want.wire()
    assert wire["spec"]["ttlSeconds"] == 60
    assert wire["spec"]["source"] == {"jobRun": "run-1"}
    assert wire["status"] == {"state": "Building", "observedGeneration": 1, "conditions": []}


def test_want_needs_at_least_one_partition() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        Want.model_validate({"spec": {"partitions": []}})


def test_want_rejects_a_malformed_ref() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        Want.model_validate({"spec": {"partitions": ["a//b"]}})


def test_unknown_fields_are_ignored() -> None:
    run = JobRun.model_validate(
        {"spec": {"jobDefinition": "jd", "partitions": ["a"], "future": 1}, "status": {"x": 1}}
    )
    assert run.spec.inputs == []
    assert run.status.state is None


def test_jobdefinition_defaults() -> None:
    jd = JobDefinition.model_validate({"spec": {"outputs": ["a/{x}"], "template": TEMPLATE}})
    assert jd.spec.retry.limit == 0
    assert jd.spec.retry.backoff_seconds == 10
    assert jd.spec.inputs == []
    assert jd.spec.max_concurrent_runs is None


def test_partition_status_round_trip() -> None:
    part = Partition.model_validate(
        {
            "spec": {"ref": "a/b"},
            "status": {
                "state": "Live",
                "jobRun": "r",
                "liveSince": "2025-01-01T00:00:00Z",
                "inputs": ["x/y"],
            },
        }
    )
    assert part.wire()["status"]["liveSince"] == "2025-01-01T00:00:00Z"


def test_status_rejects_unknown_state() -> None:
    with pytest.raises(ValidationError):
        WantStatus.model_validate({"state": "Done"})


_REF = re.compile(REF_PATTERN)
_PATTERN = re.compile(PATTERN_PATTERN)


@pytest.mark.parametrize(
    "ref",
    ["a", "daily_summary/date=2025-01-01", "stats/category=books/date=2025-01-07", "x.y~z+@:,"],
)
def test_valid_refs(ref: str) -> None:
    assert _REF.match(ref)


@pytest.mark.parametrize(
    "ref", ["", "/a", "a/", "a//b", "a b", "a\tb", "é", "a;b", "$(x)", "a'b", "a*", "a?", "a!"]
)
def test_invalid_refs(ref: str) -> None:
    assert not _REF.match(ref)


_SEGMENT = st.text(
    alphabet=st.sampled_from(
        [chr(c) for c in range(0x21, 0x7F) if chr(c).isalnum() or chr(c) in "._-=:,+@~"]
    ),
    min_size=1,
    max_size=8,
)


@given(st.lists(_SEGMENT, min_size=1, max_size=5))
def test_every_slash_joined_ref_of_the_alphabet_is_valid(segments: list[str]) -> None:
    assert _REF.match("/".join(segments))


@pytest.mark.parametrize(
    "pattern",
    [
        "daily/date={date}",
        r"daily/date={date:\d{4}-\d{2}-\d{2}}",
        "stats/category={category}/date={date}",
        "report/week={year}-W{week:[0-9]{2}}",
        "static",
    ],
)
def test_valid_patterns(pattern: str) -> None:
    assert _PATTERN.match(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        "daily/date={date",
        "daily/date=date}",
        "daily//{date}",
        "{1x}",
        "a b",
        "/{x}",
        "{x:}",
        "a;{x}",
        "$x/{x}",
    ],
)
def test_malformed_patterns(pattern: str) -> None:
    assert not _PATTERN.match(pattern)
