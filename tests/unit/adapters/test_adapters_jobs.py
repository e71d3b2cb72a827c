"""Rendering batch Jobs and reading how an attempt ended."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databuild.adapters.jobs import (
    MALFORMED_MESSAGE,
    AttemptActive,
    AttemptFailed,
    AttemptMissedDependencies,
    AttemptSucceeded,
    JobRunIdentity,
    MalformedMessage,
    parse_termination_message,
    read_outcome,
    render_job,
    substitute,
)
from databuild.adapters.resources import JobDefinitionSpec
from databuild.domain.refs import batch_job_name

RUN = JobRunIdentity(name="cleaned-abc", namespace="data", uid="uid-1", job_definition="clean")


def _definition(**overrides: Any) -> JobDefinitionSpec:
    spec: dict[str, Any] = {
        "outputs": ["cleaned/date={date}"],
        "inputs": ["raw/date={date}"],
        "template": {
            "metadata": {
                "labels": {"kwok.databuild.dev/outcome": "fail-first"},
                "annotations": {"kwok.databuild.dev/duration": "2s"},
            },
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "command": ["clean", "--date={date}"],
                        "args": ["${HOME}", "{unknown}"],
                        "env": [
                            {"name": "DATE", "value": "{date}"},
                            {"name": "DATABUILD_JOB_RUN", "value": "forged"},
                            {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "x"}}},
                        ],
                    }
                ],
            },
        },
        "activeDeadlineSeconds": 600,
    }
    spec.update(overrides)
    return JobDefinitionSpec.model_validate(spec)


def _render(attempt: int = 1, **kw: Any) -> dict[str, Any]:
    return render_job(
        run=RUN,
        definition=_definition(),
        partitions=["cleaned/date=2025-01-01"],
        inputs=["raw/date=2025-01-01"],
        captures={"date": "2025-01-01"},
        attempt=attempt,
        **kw,
    )


def test_job_identity_and_ownership() -> None:
    job = _render(attempt=2)
    meta = job["metadata"]
    assert meta["name"] == "cleaned-abc-2"
    assert meta["namespace"] == "data"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "databuild.dev/v1alpha1",
            "kind": "JobRun",
            "name": "cleaned-abc",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["annotations"]["databuild.dev/attempt"] == "2"
    assert meta["labels"]["databuild.dev/job-run"] == "cleaned-abc"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "databuild-operator"


def test_job_spec_leaves_retries_to_the_operator() -> None:
    spec = _render(ttl_seconds_after_finished=120)["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 120
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_default_ttl_is_a_day() -> None:
    assert _render()["spec"]["ttlSecondsAfterFinished"] == 86400


def test_pod_labels_and_annotations_keep_the_templates_own() -> None:
    meta = _render(attempt=3)["spec"]["template"]["metadata"]
    assert meta["labels"]["databuild.dev/job-run"] == "cleaned-abc"
    assert meta["labels"]["kwok.databuild.dev/outcome"] == "fail-first"
    assert meta["annotations"] == {
        "kwok.databuild.dev/duration": "2s",
        "databuild.dev/attempt": "3",
    }


def test_container_substitution_and_environment() -> None:
    container = _render()["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["clean", "--date=2025-01-01"]
    assert container["args"] == ["${HOME}", "{unknown}"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATE"]["value"] == "2025-01-01"
    assert env["FROM"] == {"name": "FROM", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}
    assert json.loads(env["DATABUILD_PARTITIONS"]["value"]) == ["cleaned/date=2025-01-01"]
    assert json.loads(env["DATABUILD_INPUTS"]["value"]) == ["raw/date=2025-01-01"]
    assert env["DATABUILD_JOB_RUN"]["value"] == "cleaned-abc"  # the template cannot forge it
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_rendering_does_not_mutate_the_definition() -> None:
    definition = _definition()
    before = definition.model_dump()
    render_job(run=RUN, definition=definition, partitions=["a"], inputs=[], captures={}, attempt=1)
    assert definition.model_dump() == before


def test_long_names_are_shortened_and_hashed() -> None:
    long_run = JobRunIdentity(name="r" * 80, namespace="n", uid="u", job_definition="j" * 100)
    job = render_job(
        run=long_run,
        definition=_definition(),
        partitions=["a"],
        inputs=[],
        captures={},
        attempt=12,
    )
    assert len(job["metadata"]["name"]) <= 63
    assert job["metadata"]["name"].endswith("-12")
    for value in job["metadata"]["labels"].values():
        assert len(value) <= 63
    assert batch_job_name("r" * 80, 12) != batch_job_name("r" * 79 + "s", 12)


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        batch_job_name("x", 0)


@given(
    st.text(max_size=40),
    st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True), st.text(max_size=5)),
)
def test_substitute_never_fails(text: str, captures: dict[str, str]) -> None:
    substitute(text, captures)


# --- outcomes ---------------------------------------------------------------------------


def _job(condition: str | None, reason: str = "BackoffLimitExceeded") -> dict[str, Any]:
    conditions = []
    if condition:
        conditions.append({"type": condition, "status": "True", "reason": reason})
    return {"metadata": {"name": "run-1"}, "status": {"conditions": conditions}}


def _pod(exit_code: int, message: str = "", reason: str = "Error") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": "run-1"}},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "main",
                    "state": {
                        "terminated": {"exitCode": exit_code, "message": message, "reason": reason}
                    },
                }
            ],
        },
    }


def test_active_and_succeeded() -> None:
    assert read_outcome(_job(None), []) == AttemptActive()
    assert read_outcome(_job("Complete", "CompletionsReached"), []) == AttemptSucceeded()


def test_failure_carries_exit_code_and_message() -> None:
    outcome = read_outcome(_job("Failed"), [_pod(3, "disk full")])
    assert outcome == AttemptFailed(
        reason="ExitCode", message="exit code 3: disk full", exit_code=3
    )


def test_oom_reason_is_kept() -> None:
    outcome = read_outcome(_job("Failed"), [_pod(137, "", reason="OOMKilled")])
    assert isinstance(outcome, AttemptFailed)
    assert outcome.reason == "OOMKilled"
    assert outcome.exit_code == 137


def test_dependency_miss() -> None:
    message = json.dumps({"missingPartitions": ["raw/date=2025-01-01", "raw/date=2025-01-01"]})
    outcome = read_outcome(_job("Failed"), [_pod(2, message)])
    assert outcome == AttemptMissedDependencies(missing=("raw/date=2025-01-01",), exit_code=2)


@pytest.mark.parametrize(
    "message",
    [
        '{"missingPartitions": "raw/date=1"}',
        '{"missingPartitions": []}',
        '{"missingPartitions": ["a//b"]}',
        '{"missingPartitions": [1]}',
        '{"missingPartitions": ["raw/date=1"',
    ],
)
def test_malformed_dependency_miss_is_an_ordinary_failure(message: str) -> None:
    outcome = read_outcome(_job("Failed"), [_pod(1, message)])
    assert isinstance(outcome, AttemptFailed)
    assert outcome.reason == MALFORMED_MESSAGE
    assert "malformed" in outcome.message
    assert outcome.exit_code == 1


def test_json_without_missing_partitions_is_just_a_message() -> None:
    outcome = read_outcome(_job("Failed"), [_pod(1, '{"error": "boom"}')])
    assert isinstance(outcome, AttemptFailed)
    assert outcome.reason == "ExitCode"
    assert "boom" in outcome.message


def test_pod_gone_uses_the_job_condition() -> None:
    outcome = read_outcome(_job("Failed", "DeadlineExceeded"), [])
    assert outcome == AttemptFailed(reason="DeadlineExceeded", message="DeadlineExceeded")


def test_deadline_exceeded_wins_over_the_container_message() -> None:
    outcome = read_outcome(_job("Failed", "DeadlineExceeded"), [_pod(137, "killed")])
    assert isinstance(outcome, AttemptFailed)
    assert outcome.reason == "DeadlineExceeded"


def test_pods_of_other_attempts_are_ignored() -> None:
    other = _pod(2, json.dumps({"missingPartitions": ["x"]}))
    other["metadata"]["labels"]["batch.kubernetes.io/job-name"] = "run-0"
    outcome = read_outcome(_job("Failed"), [other, _pod(4, "mine")])
    assert isinstance(outcome, AttemptFailed)
    assert outcome.exit_code == 4


def test_parse_termination_message_kinds() -> None:
    assert parse_termination_message("plain text") is None
    assert parse_termination_message("{not json at all") is None
    assert parse_termination_message('  {"missingPartitions": ["a"]}\n') == ("a",)
    assert isinstance(parse_termination_message('{"missingPartitions": 3}'), MalformedMessage)


@given(st.text(max_size=200))
def test_reading_never_raises(message: str) -> None:
    outcome = read_outcome(_job("Failed"), [_pod(1, message)])
    assert isinstance(outcome, AttemptFailed | AttemptMissedDependencies)


@given(
    st.recursive(
        st.none() | st.integers() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    )
)
def test_reading_odd_objects_never_raises(junk: Any) -> None:
    job = _job("Failed")
    pod = _pod(1)
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = json.dumps(
        {"missingPartitions": junk}
    )
    read_outcome(job, [pod])


def test_every_capture_is_in_the_environment_upper_cased() -> None:
    job = render_job(
        run=RUN,
        definition=_definition(),
        partitions=["stats/category=books/date=2025-01-01"],
        inputs=[],
        captures={"date": "2025-01-01", "category": "books"},
        attempt=1,
    )
    for container in job["spec"]["template"]["spec"]["containers"]:
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DATABUILD_CAPTURE_DATE"] == "2025-01-01"
        assert env["DATABUILD_CAPTURE_CATEGORY"] == "books"


def test_a_template_cannot_forge_a_capture_variable() -> None:
    spec = _definition().model_dump(by_alias=True)
    spec["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DATABUILD_CAPTURE_DATE", "value": "1970-01-01"}
    ]
    job = render_job(
        run=RUN,
        definition=JobDefinitionSpec.model_validate(spec),
        partitions=["cleaned/date=2025-01-01"],
        inputs=[],
        captures={"date": "2025-01-01"},
        attempt=1,
    )
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["value"] for e in env if e["name"] == "DATABUILD_CAPTURE_DATE"] == ["2025-01-01"]
