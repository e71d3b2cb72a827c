"""The generated CRDs, checked by the real API server: valid objects in, invalid ones out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from tests.manifests import want

from databuild.testing.demo import KubeError, create_object, request

if TYPE_CHECKING:
    from databuild.testing.kube import Kube

pytestmark = pytest.mark.usefixtures("crds")

TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}


def _jobdef(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {"outputs": ["daily/date={date}"], "template": TEMPLATE, **spec},
    }


def _rejected(kube: Kube, namespace: str, doc: dict[str, Any]) -> str:
    with pytest.raises(KubeError) as info:
        create_object(kube, doc, namespace)
    assert info.value.status == 422, info.value
    return str(info.value)


def test_valid_objects_are_accepted_and_defaulted(kube: Kube, namespace: str) -> None:
    jd = create_object(
        kube, _jobdef("daily", inputs=["raw/date={date}"], retry={"limit": 2}), namespace
    )
    assert jd["spec"]["retry"] == {"limit": 2, "backoffSeconds": 10}
    created = create_object(kube, want("w", ["daily/date=2025-01-01"]), namespace)
    assert created["spec"]["partitions"] == ["daily/date=2025-01-01"]
    listed = request(kube, "GET", f"/apis/databuild.dev/v1alpha1/namespaces/{namespace}/wants")
    assert [w["metadata"]["name"] for w in listed["items"]] == ["w"]


def test_empty_partitions_are_rejected(kube: Kube, namespace: str) -> None:
    message = _rejected(kube, namespace, want("empty", []))
    assert "spec.partitions" in message
    assert "at least 1" in message


def test_malformed_refs_are_rejected_with_an_example(kube: Kube, namespace: str) -> None:
    message = _rejected(kube, namespace, want("bad", ["daily//2025", "has space"]))
    assert "spec.partitions[0]" in message
    assert "spec.partitions[1]" in message
    assert "e.g. daily_summary/date=2025-01-01" in message


def test_duplicate_refs_are_rejected(kube: Kube, namespace: str) -> None:
    message = _rejected(kube, namespace, want("dup", ["a/1", "a/1"]))
    assert "Duplicate value" in message


def test_malformed_patterns_are_rejected(kube: Kube, namespace: str) -> None:
    message = _rejected(kube, namespace, _jobdef("bad", outputs=["daily/date={date"]))
    assert "spec.outputs[0]" in message
    assert "must be a partition pattern" in message
    message = _rejected(kube, namespace, _jobdef("bad2", inputs=["raw/{1date}"]))
    assert "spec.inputs[0]" in message


def test_negative_retry_limit_is_rejected(kube: Kube, namespace: str) -> None:
    message = _rejected(kube, namespace, _jobdef("neg", retry={"limit": -1}))
    assert "retry.limit must be 0 or more" in message


def test_want_partitions_are_immutable(kube: Kube, namespace: str) -> None:
    create_object(kube, want("w", ["daily/date=2025-01-01"]), namespace)
    path = f"/apis/databuild.dev/v1alpha1/namespaces/{namespace}/wants/w"
    with pytest.raises(KubeError) as info:
        request(
            kube,
            "PATCH",
            path,
            {"spec": {"partitions": ["daily/date=2025-01-02"]}},
            content_type="application/merge-patch+json",
        )
    assert info.value.status == 422
    assert "spec.partitions is immutable: create a new Want" in str(info.value)
    # Other fields stay editable.
    patched = request(
        kube,
        "PATCH",
        path,
        {"spec": {"ttlSeconds": 60}},
        content_type="application/merge-patch+json",
    )
    assert patched["spec"]["ttlSeconds"] == 60


def test_partition_ref_is_immutable(kube: Kube, namespace: str) -> None:
    doc = {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Partition",
        "metadata": {"name": "p"},
        "spec": {"ref": "daily/date=2025-01-01"},
    }
    create_object(kube, doc, namespace)
    with pytest.raises(KubeError) as info:
        request(
            kube,
            "PATCH",
            f"/apis/databuild.dev/v1alpha1/namespaces/{namespace}/partitions/p",
            {"spec": {"ref": "daily/date=2025-01-02"}},
            content_type="application/merge-patch+json",
        )
    assert "spec.ref is immutable" in str(info.value)


def test_status_is_a_subresource(kube: Kube, namespace: str) -> None:
    doc = want("w", ["daily/date=2025-01-01"])
    doc["status"] = {"state": "Successful"}
    created = create_object(kube, doc, namespace)
    assert "status" not in created or not created["status"].get("state")


def test_category_lists_every_kind(kube: Kube) -> None:
    resources = request(kube, "GET", "/apis/databuild.dev/v1alpha1")["resources"]
    by_name = {r["name"]: r for r in resources if "/" not in r["name"]}
    assert set(by_name) == {
        "wants",
        "partitions",
        "jobruns",
        "jobdefinitions",
        "schedules",
        "taintrequests",
        "concurrencypools",
    }
    for resource in by_name.values():
        assert resource["categories"] == ["databuild"]
        assert len(resource["shortNames"]) == 1
