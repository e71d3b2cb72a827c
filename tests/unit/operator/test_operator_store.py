"""The world store keeps the newest version of everything and wakes the loop on change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from databuild.adapters import codec
from databuild.adapters.jobs import AttemptMissedDependencies, read_outcome
from databuild.operator import store as store_module
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


def test_the_journal_tells_echoes_from_outside_changes() -> None:
    store = WorldStore()
    store.put("Want", _obj("w", "1"))  # a user's Want, from the watch
    store.take_dirty()
    store.take_journal("n")
    # The operator's own writes: journaled, but they wake nobody.
    assert store.put("Want", _obj("w", "2"), echo=True)
    assert store.put("Job", _obj("j", "3"), echo=True)
    assert store.take_dirty() == set()
    assert not store.changed_outside("n")
    journal = store.take_journal("n")
    assert journal.changes == {("Want", "w"): False, ("Job", "j"): False}
    assert not journal.external
    assert store.take_journal("n").changes == {}  # taken: a new journal starts
    # A pod finishing is a change from outside; its deletion keeps its last copy.
    pod = _obj("p", "4", labels={"databuild.dev/job-run": "r"})
    store.put("Pod", pod)
    store.delete("Pod", _obj("p", "5"))
    assert store.take_dirty() == {"n"}
    journal = store.take_journal("n")
    assert journal.external_kinds() == {"Pod"}
    assert journal.names("Pod") == ["p"]
    assert journal.deleted["Pod", "p"]["metadata"]["labels"] == pod["metadata"]["labels"]


def test_a_watch_event_ahead_of_the_write_response_is_an_echo_after_all() -> None:
    store = WorldStore()
    # The watch delivers version 7 (the operator's own write) before its response...
    assert store.put("JobRun", _obj("r", "7"))
    assert store.changed_outside("n")
    # ... which, stored as the echo it is, explains it.
    assert not store.put("JobRun", _obj("r", "7"), echo=True)
    assert not store.changed_outside("n")
    # A change somebody else made stays one, whatever echoes come after.
    store.put("JobRun", _obj("r", "8"))
    store.put("JobRun", _obj("r", "9"), echo=True)
    assert store.take_journal("n").changes == {("JobRun", "r"): True}
    # Deletes the operator made itself are echoes; others are not.
    store.forget("Job", "n", "j", echo=True)
    store.put("Job", _obj("k", "10"))
    store.forget("Job", "n", "k", echo=True)
    store.put("Job", _obj("m", "11"), echo=True)
    store.delete("Job", _obj("m", "12"))
    assert store.take_journal("n").changes == {("Job", "k"): True, ("Job", "m"): True}


def test_a_journal_nobody_takes_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "JOURNAL_CHANGES", 3)
    monkeypatch.setattr(store_module, "JOURNAL_ECHOES", 2)
    store = WorldStore()
    for i in range(3):
        store.put("Want", _obj(f"e{i}", str(i)), echo=True)
    store.put("Job", _obj("j", "9"), echo=True)
    store.forget("Job", "n", "j", echo=True)  # the operator's own delete: always named
    assert store.take_journal("n").changes == {
        ("Want", "e0"): False,
        ("Want", "e1"): False,
        ("Job", "j"): False,
    }
    for i in range(5):
        store.put("Pod", _obj(f"p{i}", str(10 + i)))
        store.delete("Pod", _obj(f"p{i}", str(20 + i)))
    journal = store.take_journal("n")
    assert journal.overflowed and journal.external  # "anything changed": a full pass
    assert len(journal.changes) <= 3 and len(journal.deleted) == 0


def test_the_sweeps_read_only_jobs_holding_the_finalizer_and_running_or_stalled_runs() -> None:
    store = WorldStore()
    store.put("Job", _obj("held", "1", finalizers=["databuild.dev/outcome"]))
    store.put("Job", _obj("released", "2", finalizers=["databuild.dev/outcome"]))
    store.put("Job", _obj("released", "3", finalizers=[]))
    running = {**_obj("running", "4"), "status": {"state": "Running"}}
    done = {**_obj("done", "5"), "status": {"state": "Succeeded"}}
    stalled = {"type": "Stalled", "status": "True", "reason": "FailedCreate"}
    recovering = {
        **_obj("recovering", "6"),
        "status": {"state": "Succeeded", "conditions": [stalled]},
    }
    for run in (running, done, recovering):
        store.put("JobRun", run)
    assert set(store.swept("Job", "n")) == {"held"}
    assert set(store.swept("JobRun", "n")) == {"running", "recovering"}
    store.put("JobRun", {**_obj("running", "7"), "status": {"state": "Succeeded"}})
    store.delete("Job", _obj("held", "8"))
    assert set(store.swept("JobRun", "n")) == {"recovering"}
    assert store.swept("Job", "n") == {}


def test_job_runs_are_counted_by_definition_state_and_admission_as_they_change() -> None:
    def run(name: str, rv: str, jd: str, state: str | None, admission: str | None = None) -> Any:
        status = {k: v for k, v in (("state", state), ("admission", admission)) if v}
        return {**_obj(name, rv), "spec": {"jobDefinition": jd}, "status": status}

    def recount(store: WorldStore) -> dict[tuple[str, str, str], int]:
        counts: dict[tuple[str, str, str], int] = {}
        for body in store.objects("JobRun", "n").values():
            status = body.get("status") or {}
            key = (
                body["spec"]["jobDefinition"],
                status.get("state") or "Queued",
                status.get("admission") or "",
            )
            counts[key] = counts.get(key, 0) + 1
        return counts

    store = WorldStore()
    store.put("JobRun", run("r1", "1", "a", None))
    store.put("JobRun", run("r2", "2", "a", "Running"))
    store.put("JobRun", run("r3", "3", "b", "Running", "WaitingForAdmission"))
    store.put(
        "JobRun",
        run("elsewhere", "4", "a", "Running")
        | {"metadata": {"name": "x", "namespace": "m", "resourceVersion": "4"}},
    )
    assert store.job_run_tally("n") == {
        ("a", "Queued", ""): 1,
        ("a", "Running", ""): 1,
        ("b", "Running", "WaitingForAdmission"): 1,
    }
    store.put("JobRun", run("r1", "5", "a", "Running"))  # started
    store.put("JobRun", run("r2", "1", "a", "Queued"))  # a stale copy changes nothing
    store.put("JobRun", run("r3", "6", "b", "Running", "Admitted"))
    store.delete("JobRun", run("r2", "7", "a", "Running"))
    assert (
        store.job_run_tally("n")
        == recount(store)
        == {
            ("a", "Running", ""): 1,
            ("b", "Running", "Admitted"): 1,
        }
    )
    assert store.job_run_tally("m") == {("a", "Running", ""): 1}
    assert store.job_run_tally("nowhere") == {}


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


def _run(name: str, rv: str, state: str, attempt: int, uid: str = "run-uid") -> dict[str, Any]:
    return {**_obj(name, rv, uid=uid), "status": {"state": state, "attempt": attempt}}


def _job(name: str, rv: str, attempt: int, *, finalizer: bool, uid: str = "run-uid") -> Any:
    return {
        **_obj(
            name,
            rv,
            annotations={"databuild.dev/attempt": str(attempt)},
            ownerReferences=[{"kind": "JobRun", "name": "r", "uid": uid, "controller": True}],
            finalizers=["databuild.dev/outcome"] if finalizer else [],
        ),
        "status": {"conditions": [{"type": "Complete", "status": "True"}]},
    }


def _pod(name: str, rv: str, attempt: int) -> dict[str, Any]:
    return {
        **_obj(
            name,
            rv,
            labels={"databuild.dev/job-run": "r", "batch.kubernetes.io/job-name": f"r-{attempt}"},
            annotations={"databuild.dev/attempt": str(attempt)},
        ),
        "status": {"phase": "Succeeded"},
    }


def test_jobs_and_pods_of_a_recorded_outcome_are_forgotten() -> None:
    store = WorldStore()
    store.put("JobRun", _run("r", "1", "Running", 1))
    store.put("Job", _job("r-1", "2", 1, finalizer=True))
    store.put("Pod", _pod("r-1-pod", "3", 1))
    # The run waits for this attempt: its Job and pod are what the outcome is read from.
    assert set(store.objects("Job", "n")) == {"r-1"}
    assert [p["metadata"]["name"] for p in store.pods_of("n", "r")] == ["r-1-pod"]
    store.take_dirty()
    # The outcome is recorded: nobody reads the pod again.
    assert store.put("JobRun", _run("r", "4", "Succeeded", 1))
    assert store.pods_of("n", "r") == []
    assert store.objects("Pod", "n") == {}
    # The Job stays while it carries the outcome finalizer (the executor releases it) ...
    assert set(store.objects("Job", "n")) == {"r-1"}
    # ... and goes once it is released; that is a change, the loop looks again.
    store.take_dirty()
    assert store.put("Job", _job("r-1", "5", 1, finalizer=False))
    assert store.take_dirty() == {"n"}
    assert store.get("Job", "n", "r-1") is None
    assert store.finished_jobs("n") == {}
    # A stale copy (a listing that started before the release) does not come back, nor
    # do later versions of what is settled; none of them wakes the loop.
    assert not store.put("Job", _job("r-1", "2", 1, finalizer=True))
    assert not store.put("Job", _job("r-1", "9", 1, finalizer=False))
    assert not store.put("Pod", _pod("r-1-pod", "3", 1))
    assert store.take_dirty() == set()
    assert store.objects("Job", "n") == {} and store.objects("Pod", "n") == {}
    # Deleted, then made again under the same name: an object like any other.
    store.delete("Job", _obj("r-1", "10"))
    assert store.put("Job", _job("r-1", "11", 1, finalizer=True))
    assert store.get("Job", "n", "r-1") is not None


def test_only_the_attempt_a_running_run_waits_for_is_kept() -> None:
    store = WorldStore()
    store.put("JobRun", _run("r", "1", "Running", 2))
    store.put("Job", _job("r-1", "2", 1, finalizer=False))  # the failed first attempt
    store.put("Job", _job("r-2", "3", 2, finalizer=False))  # the attempt it waits for
    store.put("Pod", _pod("r-1-pod", "4", 1))
    store.put("Pod", _pod("r-2-pod", "5", 2))
    assert set(store.objects("Job", "n")) == {"r-2"}
    assert [p["metadata"]["name"] for p in store.pods_of("n", "r")] == ["r-2-pod"]


def test_jobs_whose_run_is_unknown_or_not_theirs_are_kept() -> None:
    store = WorldStore()
    store.put("Job", _job("r-1", "1", 1, finalizer=False))  # no JobRun seen (yet)
    assert store.get("Job", "n", "r-1") is not None
    store.put("JobRun", _run("r", "2", "Succeeded", 1))
    # Named after the run, but controlled by another object of that name: not ours to judge.
    store.put("Job", _job("r-2", "3", 2, finalizer=False, uid="other-uid"))
    assert set(store.objects("Job", "n")) == {"r-1", "r-2"}
    # A neighbour namespace's run of the same name settles nothing here.
    store.put(
        "JobRun",
        {
            **_run("r", "4", "Succeeded", 1),
            "metadata": {"name": "r", "namespace": "m", "resourceVersion": "4", "uid": "run-uid"},
        },
    )
    assert set(store.objects("Job", "n")) == {"r-1", "r-2"}


def test_objects_decoded_apart_share_their_keys_and_repeated_values() -> None:
    def decoded(name: str, uid: str) -> dict[str, Any]:
        # Each watch event is its own JSON document: its own copy of every string.
        return json.loads(
            json.dumps(
                {
                    "kind": "JobRun",
                    "metadata": {
                        "name": name,
                        "namespace": "n",
                        "uid": uid,
                        "resourceVersion": "1",
                        "labels": {"databuild.dev/job-definition": "daily"},
                    },
                    "spec": {"jobDefinition": "daily", "partitions": [f"daily/date={name}"]},
                    "status": {
                        "state": "Succeeded",
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "reason": "Succeeded",
                                "lastTransitionTime": "2025-01-01T00:00:00Z",
                            }
                        ],
                    },
                }
            )
        )

    store = WorldStore()
    one, two = decoded("a", "uid-a"), decoded("b", "uid-b")
    store.put("JobRun", one)
    store.put("JobRun", two)
    a, b = store.get("JobRun", "n", "a"), store.get("JobRun", "n", "b")
    assert a == one and b == two  # the same content ...
    assert a is not None and b is not None
    # ... with one copy of each key and of each value that repeats.
    [key_a], [key_b] = [k for k in a if k == "metadata"], [k for k in b if k == "metadata"]
    assert key_a is key_b
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a["spec"]["jobDefinition"] is b["spec"]["jobDefinition"]
    label = "databuild.dev/job-definition"
    assert a["metadata"]["labels"][label] is b["metadata"]["labels"][label]
    [cond_a], [cond_b] = a["status"]["conditions"], b["status"]["conditions"]
    for field in ("type", "status", "reason", "lastTransitionTime"):
        assert cond_a[field] is cond_b[field]
    assert a["status"]["state"] is b["status"]["state"]
    # What is the object's own stays its own.
    assert a["metadata"]["uid"] == "uid-a" and b["metadata"]["uid"] == "uid-b"
    # Decoded apart, the inputs did not share them (and are left alone).
    assert next(k for k in one if k == "metadata") is not next(k for k in two if k == "metadata")
    assert one["status"]["state"] is not two["status"]["state"]
