"""The world store keeps the newest version of everything and wakes the loop on change."""

from __future__ import annotations

import asyncio
from typing import Any

from databuild.adapters import codec
from databuild.adapters.jobs import AttemptMissedDependencies, read_outcome
from databuild.operator.store import WorldStore, slim


def _obj(name: str, rv: str, ns: str = "n", **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, **extra}}


def test_newer_versions_win_and_echoes_are_not_changes() -> None:
    store = WorldStore()
    assert store.put("Want", _obj("w", "5"))
    assert store.take_dirty() == {"n"}
    assert not store.put("Want", _obj("w", "5"))  # the watch echo of our own write
    assert not store.put("Want", _obj("w", "4"))  # a late event never rolls back
    assert store.take_dirty() == set()
    assert store.put("Want", _obj("w", "6"))
    assert store.get("Want", "n", "w")["metadata"]["resourceVersion"] == "6"  # type: ignore[index]


def test_tombstones_keep_deleted_objects_out() -> None:
    store = WorldStore()
    store.put("Job", _obj("j", "5"))
    assert store.delete("Job", _obj("j", "7"))
    assert store.get("Job", "n", "j") is None
    assert not store.put("Job", _obj("j", "6"))  # from a listing that started before
    assert store.put("Job", _obj("j", "8"))  # re-created later


def test_pods_are_indexed_by_job_run() -> None:
    store = WorldStore()
    labels = {"databuild.dev/job-run": "r"}
    store.put("Pod", _obj("p1", "1", labels=labels))
    store.put("Pod", _obj("p2", "2", labels=labels))
    store.put("Pod", _obj("other", "3"))
    assert sorted(p["metadata"]["name"] for p in store.pods_of("n", "r")) == ["p1", "p2"]
    store.delete("Pod", _obj("p1", "4"))
    assert [p["metadata"]["name"] for p in store.pods_of("n", "r")] == ["p2"]
    assert store.pods_of("elsewhere", "r") == []


def test_namespaces_are_kept_apart() -> None:
    store = WorldStore()
    store.put("Want", _obj("w", "1", ns="a"))
    store.put("Want", _obj("w", "2", ns="b"))
    assert set(store.objects("Want", "a")) == {"w"}
    assert store.namespaces() == ["a", "b"]
    assert store.take_dirty() == {"a", "b"}


def test_wait_for_change() -> None:
    async def scenario() -> tuple[bool, bool]:
        store = WorldStore()
        quiet = await store.wait_for_change(0.01)
        asyncio.get_running_loop().call_later(0.01, store.put, "Want", _obj("w", "1"))
        woken = await store.wait_for_change(5)
        return quiet, woken

    assert asyncio.run(scenario()) == (False, True)


def test_resync_forgets_what_a_watch_missed_being_deleted() -> None:
    store = WorldStore()
    store.load("Want", [_obj("kept", "1"), _obj("gone", "2"), _obj("changed", "3")])
    before = store.versions("Want", "n")
    # While the listing runs, "changed" gets a newer event and "new" appears.
    store.put("Want", _obj("changed", "5"))
    store.put("Want", _obj("new", "6"))
    dropped = store.resync("Want", [_obj("kept", "4")], before)
    assert dropped == 1
    assert sorted(store.objects("Want", "n")) == ["changed", "kept", "new"]
    assert store.get("Want", "n", "kept")["metadata"]["resourceVersion"] == "4"  # type: ignore[index]
    assert not store.put("Want", _obj("gone", "2"))  # tombstoned


def test_versions_by_scope() -> None:
    store = WorldStore()
    store.put("Job", _obj("a", "1", ns="x"))
    store.put("Job", _obj("b", "2", ns="y"))
    assert store.versions("Job", "x") == {("x", "a"): "1"}
    assert store.versions("Job", None) == {("x", "a"): "1", ("y", "b"): "2"}


def test_managed_fields_are_not_kept() -> None:
    store = WorldStore()
    obj = _obj("j", "1", labels={"a": "b"}, managedFields=[{"manager": "kube-controller-manager"}])
    assert store.put("Partition", obj)
    stored = store.get("Partition", "n", "j")
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    assert stored["metadata"]["labels"] == {"a": "b"}
    assert stored["metadata"]["resourceVersion"] == "1"
    assert "managedFields" in obj["metadata"]  # the caller's object is left alone


def test_batch_jobs_and_pods_keep_only_what_outcomes_read() -> None:
    store = WorldStore()
    template = {"spec": {"containers": [{"name": "main", "env": [{"name": "X", "value": "y"}]}]}}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        **_obj("j", "3", labels={"l": "v"}, ownerReferences=[{"kind": "JobRun", "name": "r"}]),
        "spec": {"template": template},
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            "failed": 1,
        },
    }
    message = '{"missingPartitions": ["raw/date=2025-01-01"]}'
    terminated = {"exitCode": 3, "message": message, "reason": "Error"}
    pod = {
        **_obj(
            "p", "4", labels={"batch.kubernetes.io/job-name": "j", "databuild.dev/job-run": "r"}
        ),
        "spec": template["spec"],
        "status": {
            "phase": "Failed",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "main", "image": "i", "imageID": "x", "state": {"terminated": terminated}}
            ],
        },
    }
    store.put("Job", job)
    store.put("Pod", pod)
    kept_job, kept_pod = store.get("Job", "n", "j"), store.get("Pod", "n", "p")
    assert kept_job is not None and kept_pod is not None
    assert "spec" not in kept_job and "spec" not in kept_pod
    assert kept_job["apiVersion"] == "batch/v1"
    assert kept_job["metadata"]["ownerReferences"] == [{"kind": "JobRun", "name": "r"}]
    assert "labels" not in kept_job["metadata"]  # only our own labels are kept
    assert kept_pod["metadata"]["labels"] == pod["metadata"]["labels"]
    assert kept_pod["status"] == {
        "phase": "Failed",
        "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}],
    }
    # The outcome reads the same from what is kept as from the whole objects.
    assert read_outcome(kept_job, [kept_pod]) == read_outcome(job, [pod])
    assert isinstance(read_outcome(kept_job, [kept_pod]), AttemptMissedDependencies)


def test_own_kinds_keep_spec_and_status() -> None:
    store = WorldStore()
    want = {**_obj("w", "1"), "spec": {"partitions": ["a"]}, "status": {"state": "Pending"}}
    store.put("Want", want)
    assert store.get("Want", "n", "w") == {"kind": "Want", **want}


def test_a_partition_keeps_only_the_managed_fields_entry_that_timed_its_taint() -> None:
    key = "databuild.dev/taint-requested-at"
    body = {
        "kind": "Partition",
        "metadata": {
            "name": "p",
            "namespace": "n",
            "annotations": {"databuild.dev/taint": "bad", key: "2100-01-01T00:00:00Z"},
            "managedFields": [
                {"manager": m, "time": t, "fieldsV1": {"f:metadata": {"f:annotations": {f: {}}}}}
                for m, t, f in (
                    ("kubectl", "2025-01-03T00:00:00Z", f"f:{key}"),
                    ("other", "2025-01-04T00:00:00Z", "f:other"),
                )
            ],
        },
        "spec": {"ref": "a/1"},
        "status": {"state": "Live", "jobRun": "r", "liveSince": "2025-01-01T00:00:00Z"},
    }
    kept = slim("Partition", body)
    assert [e["time"] for e in kept["metadata"]["managedFields"]] == ["2025-01-03T00:00:00Z"]
    assert codec.partition_from(kept).taint_request == codec.partition_from(body).taint_request
    assert "managedFields" not in slim("Want", body)["metadata"]
