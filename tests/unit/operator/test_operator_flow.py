"""The executor and loop against the in-memory cluster: whole builds, step by step."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from operator_fakes import NS, TEMPLATE, FakeCluster, failed_once, jobdef, want

from databuild.adapters.gateway import Conflict, Invalid
from databuild.operator.executor import _already


def _one(cluster: FakeCluster, kind: str) -> dict:  # type: ignore[type-arg]
    [obj] = cluster.of_kind(kind)
    return obj


def _run_of(cluster: FakeCluster, job_definition: str) -> dict:  # type: ignore[type-arg]
    [run] = [r for r in cluster.of_kind("JobRun") if r["spec"]["jobDefinition"] == job_definition]
    return run


def test_single_partition_builds_and_settles() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    [job] = c.jobs()
    assert job["metadata"]["annotations"]["databuild.dev/attempt"] == "1"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["2025-01-01"]
    assert c.status("Want", "w")["state"] == "Building"
    assert c.settle() == 0  # the plan reached a fixpoint: nothing more to write
    c.finish_job(job["metadata"]["name"])
    c.reconcile()
    part = _one(c, "Partition")
    run = _one(c, "JobRun")
    assert part["status"]["state"] == "Live"
    assert part["status"]["jobRun"] == run["metadata"]["name"]
    assert run["status"]["state"] == "Succeeded"
    assert run["status"]["conditions"][0]["status"] == "True"
    ws = c.status("Want", "w")
    assert ws["state"] == "Successful"
    assert ws["progress"] == "1/1"
    assert ws["conditions"][0]["type"] == "Ready"
    assert ws["conditions"][0]["status"] == "True"
    assert c.settle() == 0


def test_every_transition_is_one_bel_event_and_only_milestones_are_kubernetes_events() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    c.finish_job(c.jobs()[0]["metadata"]["name"])
    c.settle()
    transitions = [(e.event.kind, e.event.from_state, e.event.to_state) for e in c.bel.events]
    assert len(transitions) == len(set(transitions))
    # A successful build: the Want starts and ends; every other transition (creations,
    # Partition and JobRun steps, a first attempt's success) is in the BEL only.
    assert sorted((e.regarding.kind, e.type, e.reason) for e in c.gateway.events) == [
        ("Want", "Normal", "AllPartitionsLive"),
        ("Want", "Normal", "Building"),
    ]
    assert len(c.bel.events) > len(c.gateway.events)


def test_status_changes_of_one_object_are_merged_into_one_write() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    # Pending -> Building plus the counts and conditions: a single status write.
    assert c.gateway.stats.writes_of(verb="patch_status", kind="Want") == 1


def test_chain_builds_upstream_first_and_records_lineage() -> None:
    c = FakeCluster()
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]))
    c.apply(want("w", ["clean/date=2025-01-01"]))
    c.reconcile()
    [raw_job] = c.jobs()
    assert raw_job["metadata"]["labels"]["databuild.dev/job-definition"] == "raw"
    assert c.status("Want", "w")["state"] == "UpstreamBuilding"
    c.finish_job(raw_job["metadata"]["name"])
    c.reconcile()
    clean_job = next(j for j in c.jobs() if j["metadata"]["name"] != raw_job["metadata"]["name"])
    env = {
        e["name"]: e["value"] for e in clean_job["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert json.loads(env["DATABUILD_INPUTS"]) == ["raw/date=2025-01-01"]
    c.finish_job(clean_job["metadata"]["name"])
    c.reconcile()
    clean = next(p for p in c.of_kind("Partition") if p["spec"]["ref"].startswith("clean"))
    assert clean["status"]["inputs"] == ["raw/date=2025-01-01"]
    assert c.status("Want", "w")["state"] == "Successful"


def test_two_wants_for_one_partition_share_one_build() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("a", ["daily/date=2025-01-01"]))
    c.reconcile()
    c.apply(want("b", ["daily/date=2025-01-01"]))
    c.reconcile()
    assert len(c.jobs()) == 1
    assert len(c.of_kind("JobRun")) == 1


def test_retry_then_success_and_failure_with_exit_code() -> None:
    c = failed_once()
    run = _one(c, "JobRun")
    assert run["status"]["state"] == "Queued"
    assert run["status"]["exitCode"] == 3
    assert "disk full" in run["status"]["message"]
    assert run["status"]["retryAfter"]
    assert len(c.jobs()) == 1  # backing off
    c.advance(6)
    c.reconcile()
    assert len(c.jobs()) == 2
    second = max(c.jobs(), key=lambda j: j["metadata"]["name"])
    assert second["metadata"]["annotations"]["databuild.dev/attempt"] == "2"
    c.finish_job(second["metadata"]["name"], exit_code=4, message="again")
    c.reconcile()
    run = _one(c, "JobRun")
    assert run["status"]["state"] == "Failed"
    assert run["status"]["exitCode"] == 4
    assert run["status"]["conditions"][0]["status"] == "False"
    assert _one(c, "Partition")["status"]["state"] == "Failed"
    ws = c.status("Want", "w")
    assert ws["state"] == "Failed"
    assert "exit code 4" in ws["conditions"][0]["message"]
    warnings = [e for e in c.gateway.events if e.type == "Warning"]
    assert any("exit code 4" in e.message for e in warnings)
    # Both attempts' Jobs are kept by the API server for their logs; the operator keeps
    # neither them nor their pods once the outcomes are recorded and released.
    c.settle()
    assert len(c.jobs()) == 2
    assert c.store.objects("Job", NS) == {} and c.store.pods_of(NS, _run_name(c)) == []


def test_a_run_that_recovers_after_a_failed_attempt_says_so_in_a_normal_event() -> None:
    c = failed_once()
    c.advance(6)
    c.reconcile()
    second = max(c.jobs(), key=lambda j: j["metadata"]["name"])
    c.finish_job(second["metadata"]["name"])
    c.settle()
    assert _one(c, "JobRun")["status"]["state"] == "Succeeded"
    runs = [(e.type, e.reason) for e in c.gateway.events if e.regarding.kind == "JobRun"]
    # The failed attempt's Warning, then the success that ends it.
    assert runs[0][0] == "Warning"
    assert runs[-1] == ("Normal", "Succeeded")
    assert runs.count(("Normal", "Succeeded")) == 1


def _run_name(cluster: FakeCluster) -> str:
    return str(_one(cluster, "JobRun")["metadata"]["name"])


def test_dependency_miss_creates_a_derived_want_owned_by_the_run() -> None:
    c = FakeCluster()
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("weekly", ["weekly/week={week}"]))
    c.apply(want("w", ["weekly/week=1"]))
    c.reconcile()
    [job] = c.jobs()
    miss = json.dumps({"missingPartitions": ["raw/date=2025-01-01"]})
    c.finish_job(job["metadata"]["name"], exit_code=2, message=miss)
    c.reconcile()
    run = _run_of(c, "weekly")
    assert run["status"]["state"] == "WaitingForUpstream"
    assert run["status"]["missingPartitions"] == ["raw/date=2025-01-01"]
    derived = next(w for w in c.of_kind("Want") if w["metadata"]["name"] != "w")
    assert derived["spec"]["source"] == {"jobRun": run["metadata"]["name"]}
    assert derived["metadata"]["ownerReferences"][0]["uid"] == run["metadata"]["uid"]
    raw_job = next(
        j for j in c.jobs() if j["metadata"]["labels"]["databuild.dev/job-definition"] == "raw"
    )
    c.finish_job(raw_job["metadata"]["name"])
    c.reconcile()
    rerun = next(j for j in c.jobs() if j["metadata"]["name"].endswith("-2"))
    env = {e["name"]: e["value"] for e in rerun["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "raw/date=2025-01-01" in json.loads(env["DATABUILD_INPUTS"])
    c.finish_job(rerun["metadata"]["name"])
    c.reconcile()
    assert c.status("Want", "w")["state"] == "Successful"
    assert _run_of(c, "weekly")["status"]["failedAttempts"] == 0
    assert _run_of(c, "weekly")["status"]["attempt"] == 2


def test_want_waits_for_its_job_definition() -> None:
    c = FakeCluster()
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    ready = c.status("Want", "w")["conditions"][0]
    assert ready["status"] == "False"
    assert ready["reason"] == "NoJobDefinition"
    assert c.settle() == 0  # waiting costs no writes
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.reconcile()
    assert len(c.jobs()) == 1


def test_deleting_the_want_cancels_the_build() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    assert len(c.jobs()) == 1
    c.delete("Want", "w")
    c.reconcile()
    assert c.jobs() == []
    assert _one(c, "JobRun")["status"]["state"] == "Cancelled"
    assert _one(c, "Partition")["status"]["state"] == "Missing"


def test_conflict_replans_from_fresh_data() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.gateway.fail_next("patch_status", "Partition", Conflict("stale", status=409))
    c.reconcile()
    assert c.loop.stats.conflicts == 1
    assert len(c.jobs()) == 1
    assert _one(c, "Partition")["status"]["state"] == "Building"


def test_an_already_applied_transition_is_not_applied_twice() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    events = len(c.bel.events)
    # A watch event still carrying the old state must not roll the store back.
    run = _one(c, "JobRun")
    stale = {**run, "status": {}, "metadata": {**run["metadata"], "resourceVersion": "1"}}
    assert not c.store.put("JobRun", stale)
    c.settle()
    assert len(c.bel.events) == events


def test_restart_recreates_nothing() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01", "daily/date=2025-01-02"]))
    c.reconcile()
    # A new operator process: empty store, listing what the API server has.
    fresh = FakeCluster()
    fresh.gateway = c.gateway
    fresh.executor.gateway = c.gateway
    fresh.now = c.now
    for kind in ("JobDefinition", "Want", "Partition", "JobRun", "Job"):
        fresh.store.load(kind, c.gateway.of_kind(kind, NS))
    before = c.gateway.stats.total_writes
    fresh.reconcile()
    assert c.gateway.stats.total_writes == before
    assert len(c.jobs()) == 2


def test_invalid_pod_template_fails_the_attempt_instead_of_looping() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.gateway.fail_next("create", "Job", Invalid("spec.template: bad", status=422))
    c.reconcile()
    c.settle()
    run = _one(c, "JobRun")
    assert run["status"]["state"] == "Failed"
    assert "InvalidPodTemplate" in run["status"]["message"]
    assert c.status("Want", "w")["state"] == "Failed"


def test_an_unreadable_want_gets_a_condition_once() -> None:
    c = FakeCluster()
    bad = want("bad", ["daily/date=2025-01-01"])
    c.apply(bad)
    # e.g. written before the CRD validated it
    patched = asyncio.run(
        c.gateway.patch("Want", NS, "bad", {"spec": {"partitions": ["not a ref"]}})
    )
    c.store.put("Want", patched)
    c.reconcile()
    ready = c.status("Want", "bad")["conditions"][0]
    assert ready["reason"] == "InvalidSpec"
    assert "not a ref" in ready["message"]
    assert c.settle() == 0


def test_sla_breach_is_flagged_once() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"], slaSeconds=10))
    c.reconcile()
    c.advance(11)
    c.reconcile()
    assert c.status("Want", "w")["slaBreached"] is True
    c.advance(1)
    c.settle()
    assert [e.reason for e in c.gateway.events].count("SLABreached") == 1


def test_job_definitions_say_whether_they_are_usable() -> None:
    c = FakeCluster()
    c.apply(jobdef("good", ["good/date={date}"]))
    c.apply(jobdef("bad", ["bad/date={date}"], ["raw/{nope}"]))
    c.reconcile()
    good = c.status("JobDefinition", "good")
    assert good["conditions"][0]["status"] == "True"
    assert good["observedGeneration"] == 1
    bad = c.status("JobDefinition", "bad")
    assert bad["conditions"][0]["reason"] == "InvalidJobDefinition"
    assert "nope" in bad["conditions"][0]["message"]
    assert [e.reason for e in c.gateway.events] == ["InvalidJobDefinition"]
    assert c.settle() == 0  # said once


def _annotate(c: FakeCluster, ref: str, annotations: dict[str, str]) -> None:
    part = next(p for p in c.of_kind("Partition") if p["spec"]["ref"] == ref)
    patched = asyncio.run(
        c.gateway.patch(
            "Partition", NS, part["metadata"]["name"], {"metadata": {"annotations": annotations}}
        )
    )
    c.store.put("Partition", patched)


def _state(c: FakeCluster, ref: str) -> str:
    part = next(p for p in c.of_kind("Partition") if p["spec"]["ref"] == ref)
    return str(part["status"]["state"])


def test_taint_request_taints_along_lineage_and_a_new_want_rebuilds() -> None:
    c = FakeCluster()
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]))
    c.apply(want("w", ["clean/date=2025-01-01"]))
    c.reconcile()
    c.finish_job(c.jobs()[0]["metadata"]["name"])
    c.reconcile()
    c.finish_job(next(j for j in c.jobs() if "clean" in j["metadata"]["name"])["metadata"]["name"])
    c.reconcile()
    assert c.status("Want", "w")["state"] == "Successful"
    c.advance(5)
    _annotate(
        c,
        "raw/date=2025-01-01",
        {
            "databuild.dev/taint": "bad upstream file",
            "databuild.dev/taint-requested-at": c.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    )
    c.reconcile()
    assert _state(c, "raw/date=2025-01-01") == "Tainted"
    assert _state(c, "clean/date=2025-01-01") == "Tainted"
    assert c.status("Want", "w")["state"] == "Successful"  # terminal Wants stay so
    tainted = [e for e in c.bel.events if e.event.to_state == "Tainted"]
    assert len(tainted) == 2
    assert c.settle() == 0  # the request is not applied twice
    c.apply(want("again", ["clean/date=2025-01-01"]))
    c.reconcile()
    assert _state(c, "raw/date=2025-01-01") == "Building"
    c.finish_job(_unfinished_job(c))
    c.reconcile()
    c.finish_job(_unfinished_job(c))
    c.reconcile()
    assert c.status("Want", "again")["state"] == "Successful"
    assert _state(c, "raw/date=2025-01-01") == "Live"
    assert _state(c, "clean/date=2025-01-01") == "Live"
    assert c.settle() == 0  # rebuilt after the request: not tainted again


def _unfinished_job(c: FakeCluster) -> str:
    [job] = [j for j in c.jobs() if not j.get("status")]
    return str(job["metadata"]["name"])


def test_a_bug_while_executing_backs_the_namespace_off_instead_of_crashing() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))

    async def broken(*_: object) -> None:
        raise KeyError("a bug")

    real = c.executor.execute
    c.executor.execute = broken  # type: ignore[method-assign,assignment]
    result = c.reconcile()
    assert result.errors == 1
    assert NS in c.loop._backoff
    c.executor.execute = real  # type: ignore[method-assign]
    c.reconcile()
    assert len(c.jobs()) == 1


def test_a_finished_job_deleted_before_the_loop_saw_it_still_counts() -> None:
    c = FakeCluster()
    c.apply(jobdef("raw", ["raw/date={date}"]))  # the missing ref is buildable
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    [job] = c.jobs()
    name = job["metadata"]["name"]
    c.finish_job(name, exit_code=2, message='{"missingPartitions": ["raw/date=1"]}')
    # A short ttlSecondsAfterFinished: Kubernetes deletes the Job and its pod at once.
    finished = c.store.get("Job", NS, name)
    pod = c.store.get("Pod", NS, f"{name}-pod")
    assert finished is not None and pod is not None
    c.store.delete("Pod", pod)
    c.store.delete("Job", finished)
    asyncio.run(c.gateway.delete("Job", NS, name))
    c.reconcile()
    run = _run_of(c, "daily")
    assert run["status"]["state"] == "WaitingForUpstream"  # the miss was read, not lost
    # attempt 1 was not run again: the only new batch Job builds the missing input
    assert [j["metadata"]["labels"]["databuild.dev/job-definition"] for j in c.jobs()] == ["raw"]
    c.settle()
    assert c.store.finished_jobs(NS) == {}  # used, then forgotten once the run moved on


def test_status_writes_that_change_nothing_are_skipped() -> None:
    assert _already({"a": 1, "b": [1]}, {"a": 1, "b": [1], "c": None})
    assert not _already({"a": 1}, {"a": 2})
    assert not _already({"a": 1}, {"a": None})
    assert not _already({}, {"a": 0})


def test_concurrent_lanes_build_the_same_result() -> None:
    c = FakeCluster()
    c.executor.write_concurrency = 8
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]))
    c.apply(want("w", [f"clean/date=2025-01-0{d}" for d in range(1, 6)]))
    for _ in range(2):
        c.reconcile()
        for job in c.jobs():
            if not job.get("status"):
                c.finish_job(job["metadata"]["name"])
    c.reconcile()
    assert c.status("Want", "w")["state"] == "Successful"
    assert len(c.jobs()) == 10
    assert c.settle() == 0


def _release_in_flight(concurrency: int) -> tuple[int, list[dict[str, Any]]]:
    """Build five partitions; the most finalizer releases in flight at once, and the Jobs."""
    c = FakeCluster()
    c.executor.write_concurrency = concurrency
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", [f"daily/date=2025-01-0{d}" for d in range(1, 6)]))
    c.reconcile()
    for job in c.jobs():
        c.finish_job(job["metadata"]["name"])
    in_flight, most = 0, 0
    patch = c.gateway.patch

    async def slow_patch(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)  # an API server's round trip
        try:
            return await patch(*args, **kwargs)
        finally:
            in_flight -= 1

    c.gateway.patch = slow_patch  # type: ignore[method-assign]
    c.settle()
    assert c.status("Want", "w")["state"] == "Successful"
    return most, c.jobs()


def test_finalizer_releases_run_side_by_side_with_write_concurrency() -> None:
    most, jobs = _release_in_flight(8)
    assert most == 5  # one per Job, not one after the other
    assert all(not j["metadata"].get("finalizers") for j in jobs)
    most, jobs = _release_in_flight(1)
    assert most == 1
    assert all(not j["metadata"].get("finalizers") for j in jobs)


def test_concurrent_writes_keep_each_builds_order() -> None:
    # Four builds written at once, each write answered after its own delay: a Partition
    # still goes Live only after its JobRun's Succeeded went through (a kill -9 in
    # between must not leave it Live), and the Want's status comes after every build.
    c = FakeCluster()
    c.executor.write_concurrency = 8
    order: list[tuple[str, str, str]] = []
    patch_status = c.gateway.patch_status
    delays = iter([0.03, 0.0, 0.02, 0.01] * 100)

    async def slow_patch_status(
        kind: str, namespace: str, name: str, patch: dict[str, Any], **kw: Any
    ) -> dict[str, Any]:
        await asyncio.sleep(next(delays))
        done = await patch_status(kind, namespace, name, patch, **kw)
        order.append((kind, name, str(patch.get("state"))))
        return done

    c.gateway.patch_status = slow_patch_status  # type: ignore[method-assign]
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", [f"daily/date=2025-01-0{d}" for d in range(1, 5)]))
    c.reconcile()
    for job in c.jobs():
        c.finish_job(job["metadata"]["name"])
    order.clear()
    c.reconcile()
    assert c.status("Want", "w")["state"] == "Successful"
    at = {(kind, name, state): i for i, (kind, name, state) in enumerate(order)}
    parts = c.gateway.of_kind("Partition", NS)
    assert len(parts) == 4
    for part in parts:
        live = at["Partition", part["metadata"]["name"], "Live"]
        assert at["JobRun", part["status"]["jobRun"], "Succeeded"] < live
        assert live < at["Want", "w", "Successful"]


def test_writes_follow_the_planners_order_by_default() -> None:
    c = FakeCluster()
    order: list[tuple[str, str]] = []
    record = c.gateway.stats.record

    def spy(verb: str, kind: str, error: object = None) -> None:
        order.append((verb, kind))
        record(verb, kind, error)  # type: ignore[arg-type]

    c.gateway.stats.record = spy  # type: ignore[method-assign]
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    order.clear()
    c.reconcile()
    writes = [w for w in order if w[0] != "event" and w[1] in ("JobRun", "Job", "Partition")]
    # The planner creates the run, starts it and creates its batch Job, then creates and
    # claims the partition (the pod does not wait for it): a crash leaves a prefix.
    assert writes == [
        ("create", "JobRun"),
        ("patch_status", "JobRun"),
        ("create", "Job"),
        ("create", "Partition"),
        ("patch_status", "Partition"),
    ]


def test_a_forged_job_under_the_next_attempts_name_changes_no_jobrun() -> None:
    c = failed_once()
    run = _one(c, "JobRun")
    name = run["metadata"]["name"]
    # Somebody else's Job, finished, under the name attempt 2 will use, with our label,
    # attempt annotation and the JobRun's name as owner, but not its uid.
    forged = c.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": f"{name}-2",
                "namespace": NS,
                "labels": {"databuild.dev/job-run": name},
                "annotations": {"databuild.dev/attempt": "2"},
                "ownerReferences": [
                    {"kind": "JobRun", "name": name, "uid": "forged", "controller": True}
                ],
            },
            "spec": {"template": TEMPLATE},
        }
    )
    forged["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    c.store.put("Job", forged)
    c.advance(6)
    c.reconcile()
    c.reconcile()
    run = _one(c, "JobRun")
    assert run["status"]["state"] == "Failed"
    assert "ForeignJob" in run["status"]["message"]
    assert "not by this JobRun" in run["status"]["message"]
    assert _one(c, "Partition")["status"]["state"] == "Failed"


def test_cancelling_deletes_only_the_job_the_jobrun_controls() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    (job,) = c.jobs()
    name = job["metadata"]["name"]
    # The Job is replaced by somebody else's under the same name.
    c.delete("Job", name)
    foreign = copy.deepcopy(job)
    foreign["metadata"] = {
        "name": name,
        "namespace": NS,
        "ownerReferences": [{"kind": "JobRun", "name": "x", "uid": "other", "controller": True}],
    }
    c.apply(foreign)
    deletes = c.gateway.stats.writes_of(verb="delete", kind="Job")
    c.delete("Want", "w")
    c.reconcile()
    assert [j["metadata"]["name"] for j in c.jobs()] == [name]  # not the operator's to delete
    assert _one(c, "JobRun")["status"]["state"] == "Cancelled"
    assert c.gateway.stats.writes_of(verb="delete", kind="Job") == deletes
