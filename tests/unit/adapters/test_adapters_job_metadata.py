"""spec.jobMetadata goes on the batch Job itself; the pod template's metadata on its pods."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from databuild.adapters.jobs import JobRunIdentity, render_job, waiting_for_admission
from databuild.adapters.resources import JobDefinitionSpec

RUN = JobRunIdentity(name="daily-abc", namespace="data", uid="uid-1", job_definition="daily")


def _render(**spec: Any) -> dict[str, Any]:
    definition = JobDefinitionSpec.model_validate(
        {
            "outputs": ["daily/date={date}"],
            "template": {
                "metadata": {"labels": {"team": "pods-only"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
            **spec,
        }
    )
    return render_job(
        run=RUN,
        definition=definition,
        partitions=["daily/date=2025-01-01"],
        inputs=[],
        captures={"date": "2025-01-01"},
        attempt=1,
    )


def test_job_metadata_lands_on_the_job_not_on_its_pods() -> None:
    job = _render(
        jobMetadata={
            "labels": {"kueue.x-k8s.io/queue-name": "team-a"},
            "annotations": {"example.com/cost-center": "42"},
        }
    )
    meta = job["metadata"]
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert meta["annotations"]["example.com/cost-center"] == "42"
    pod_meta = job["spec"]["template"]["metadata"]
    assert "kueue.x-k8s.io/queue-name" not in pod_meta["labels"]
    assert pod_meta["labels"]["team"] == "pods-only"
    assert "team" not in meta["labels"]


def test_the_operators_own_labels_and_annotations_win() -> None:
    job = _render(
        jobMetadata={
            "labels": {"databuild.dev/job-run": "forged"},
            "annotations": {"databuild.dev/attempt": "99"},
        }
    )
    assert job["metadata"]["labels"]["databuild.dev/job-run"] == "daily-abc"
    assert job["metadata"]["annotations"]["databuild.dev/attempt"] == "1"


def test_without_job_metadata_the_job_has_only_the_operators_metadata() -> None:
    meta = _render()["metadata"]
    assert all(k.startswith(("databuild.dev/", "app.kubernetes.io/")) for k in meta["labels"])


def test_a_label_value_over_63_characters_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"jobMetadata\.labels"):
        _render(jobMetadata={"labels": {"k": "v" * 64}})


def test_a_job_for_a_queue_starts_suspended_until_admitted() -> None:
    queued = _render(jobMetadata={"labels": {"kueue.x-k8s.io/queue-name": "team-a"}})
    assert queued["spec"]["suspend"] is True
    assert "suspend" not in _render(jobMetadata={"labels": {"team": "a"}})["spec"]


def test_waiting_for_admission_is_the_suspended_condition() -> None:
    suspended = {"status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    resumed = {"status": {"conditions": [{"type": "Suspended", "status": "False"}]}}
    assert waiting_for_admission(suspended)
    assert not waiting_for_admission(resumed)
    assert not waiting_for_admission({})
