"""The kwok Stages shipped as package data: well-formed, and outcomes never ambiguous."""

from __future__ import annotations

from typing import Any

import yaml

from databuild.testing._controlplane import stage_documents


def _stages() -> dict[str, dict[str, Any]]:
    documents = [d for d in yaml.safe_load_all(stage_documents()) if d]
    return {d["metadata"]["name"]: d for d in documents}


def test_every_document_is_a_kwok_stage_with_a_unique_name() -> None:
    documents = [d for d in yaml.safe_load_all(stage_documents()) if d]
    names = [d["metadata"]["name"] for d in documents]

    assert len(names) == len(set(names))
    for document in documents:
        assert document["apiVersion"] == "kwok.x-k8s.io/v1alpha1"
        assert document["kind"] == "Stage"
        assert document["spec"]["resourceRef"]["kind"] in ("Pod", "Node")
    assert {
        "node-initialize",
        "pod-ready",
        "pod-delete",
        "databuild-pod-succeed",
        "databuild-pod-fail",
    } <= set(names)


def _outcome_selector(stage: dict[str, Any]) -> tuple[str, list[str]]:
    [expression] = [
        e
        for e in stage["spec"]["selector"]["matchExpressions"]
        if "kwok.databuild.dev/outcome" in e["key"]
    ]
    return expression["key"], expression["values"]


def test_success_and_failure_select_complementary_pods() -> None:
    """kwok picks randomly among matching stages: exactly one outcome may ever match."""
    stages = _stages()
    succeed, fail = stages["databuild-pod-succeed"], stages["databuild-pod-fail"]

    succeed_key, succeed_values = _outcome_selector(succeed)
    fail_key, fail_values = _outcome_selector(fail)
    assert succeed_key == fail_key
    assert (succeed_values, fail_values) == (["false"], ["true"])
    others = [e for e in succeed["spec"]["selector"]["matchExpressions"] if e["key"] != succeed_key]
    assert others == [
        e for e in fail["spec"]["selector"]["matchExpressions"] if e["key"] != fail_key
    ]


def test_outcomes_wait_for_the_duration_annotation_without_jitter() -> None:
    for name in ("databuild-pod-succeed", "databuild-pod-fail"):
        delay = _stages()[name]["spec"]["delay"]
        assert delay["durationMilliseconds"] == 1000
        assert "kwok.databuild.dev/duration" in delay["durationFrom"]["expressionFrom"]
        # kwok uses min(duration, jitter) when the jitter is smaller: it would cap it.
        assert "jitterDurationMilliseconds" not in delay


def test_failure_reads_exit_code_and_message_from_annotations() -> None:
    template = _stages()["databuild-pod-fail"]["spec"]["next"]["statusTemplate"]
    assert '"kwok.databuild.dev/exit-code" "1"' in template
    assert '"kwok.databuild.dev/message"' in template
    assert "phase: Failed" in template
