"""The operator against the real control plane: builds from a single partition to a backfill.

kwok simulates the pods (DESIGN.md section 6): they succeed about a second after they
start unless their labels and annotations say otherwise.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing.demo import api_writes, delete_object, request, wait_until

DATE = "2025-01-01"


def _jobs(sc: Scenario) -> list[dict[str, object]]:
    return [
        j for j in sc.list("Job") if "databuild.dev/job-run" in (j["metadata"].get("labels") or {})
    ]


def test_single_partition(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(jobdef("daily", ["daily/date={date}"]), want("w", [f"daily/date={DATE}"]))
    w = sc.wait_for_want("w", "Successful")
    ready = next(c for c in w["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert ready["observedGeneration"] == w["metadata"]["generation"]
    assert w["status"]["observedGeneration"] == w["metadata"]["generation"]
    assert w["status"]["progress"] == "1/1"
    part = sc.partition(f"daily/date={DATE}")
    assert part["status"]["state"] == "Live"
    [run] = sc.list("JobRun")
    assert part["status"]["jobRun"] == run["metadata"]["name"]
    assert run["status"]["state"] == "Succeeded"
    [job] = _jobs(sc)
    assert job["metadata"]["name"] == f"{run['metadata']['name']}-1"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    sc.wait_for_event("w", "AllPartitionsLive")


def test_three_level_chain_records_lineage(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        jobdef("stats", ["stats/date={date}"], ["clean/date={date}"]),
        want("w", [f"stats/date={DATE}"]),
    )
    sc.wait_for_want("w", "Successful")
    assert sc.partition(f"stats/date={DATE}")["status"]["inputs"] == [f"clean/date={DATE}"]
    assert sc.partition(f"clean/date={DATE}")["status"]["inputs"] == [f"raw/date={DATE}"]
    assert "inputs" not in sc.partition(f"raw/date={DATE}")["status"]
    starts = {r["spec"]["jobDefinition"]: r["status"]["startedAt"] for r in sc.list("JobRun")}
    assert starts["raw"] < starts["clean"] < starts["stats"]


def test_diamond_builds_each_partition_once(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef("top", ["top/date={date}"]),
        jobdef("left", ["left/date={date}"], ["top/date={date}"]),
        jobdef("right", ["right/date={date}"], ["top/date={date}"]),
        jobdef("bottom", ["bottom/date={date}"], ["left/date={date}", "right/date={date}"]),
        want("w", [f"bottom/date={DATE}"]),
    )
    sc.wait_for_want("w", "Successful")
    assert len(_jobs(sc)) == 4
    assert sorted(sc.partition(f"bottom/date={DATE}")["status"]["inputs"]) == [
        f"left/date={DATE}",
        f"right/date={DATE}",
    ]


def test_fifty_partition_backfill(scenario: Scenario) -> None:
    sc = scenario
    operator = sc.start_operator()
    dates = [f"2025-{m:02d}-{d:02d}" for m in (1, 2) for d in range(1, 26)]
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("daily", ["daily/date={date}"], ["raw/date={date}"]),
    )
    started = time.monotonic()
    sc.apply(want("backfill", [f"daily/date={d}" for d in dates]))
    w = sc.wait_for_want("backfill", "Successful", timeout=240)
    elapsed = time.monotonic() - started
    assert w["status"]["progress"] == "50/50"
    assert w["status"]["partitions"]["live"] == 50
    assert len(_jobs(sc)) == 100
    for d in dates[:3]:
        assert sc.partition(f"daily/date={d}")["status"]["inputs"] == [f"raw/date={d}"]
    metrics = operator.metrics()
    writes = api_writes(metrics)
    breakdown = {
        k.removeprefix("databuild_api_writes_total"): int(v)
        for k, v in metrics.items()
        if k.startswith("databuild_api_writes_total{")
    }
    print(
        f"\nbackfill: 50 wanted (100 built) partitions in {elapsed:.1f}s, "
        f"{writes:.0f} API writes, {writes / 100:.1f} per built partition: {breakdown}"
    )


def test_two_wants_for_one_partition_make_one_batch_job(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef("daily", ["daily/date={date}"], annotations={"kwok.databuild.dev/duration": "3s"}),
        want("a", [f"daily/date={DATE}"]),
        want("b", [f"daily/date={DATE}"]),
    )
    sc.wait_for_want("a", "Successful")
    sc.wait_for_want("b", "Successful")
    assert len(_jobs(sc)) == 1
    assert len(sc.list("JobRun")) == 1


def test_fail_first_succeeds_on_the_second_attempt(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef(
            "daily",
            ["daily/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            retry={"limit": 1, "backoffSeconds": 1},
        ),
        want("w", [f"daily/date={DATE}"]),
    )
    sc.wait_for_want("w", "Successful")
    [run] = sc.list("JobRun")
    assert run["status"]["attempt"] == 2
    assert run["status"]["failedAttempts"] == 1
    names = sorted(j["metadata"]["name"] for j in _jobs(sc))
    assert names == [f"{run['metadata']['name']}-1", f"{run['metadata']['name']}-2"]
    retried = sc.wait_for_event(run["metadata"]["name"], "AttemptFailed")
    assert retried["type"] == "Warning", "a failed attempt is a Warning event"


def test_failure_spends_retries_and_reports_the_exit_code(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef(
            "daily",
            ["daily/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
            annotations={
                "kwok.databuild.dev/exit-code": "3",
                "kwok.databuild.dev/message": "disk full",
            },
            retry={"limit": 1, "backoffSeconds": 1},
        ),
        want("w", [f"daily/date={DATE}"]),
    )
    w = sc.wait_for_want("w", "Failed")
    ready = next(c for c in w["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert "exit code 3" in ready["message"]
    assert "disk full" in ready["message"]
    part = sc.partition(f"daily/date={DATE}")
    assert part["status"]["state"] == "Failed"
    [run] = sc.list("JobRun")
    assert run["status"]["state"] == "Failed"
    assert run["status"]["exitCode"] == 3
    assert run["status"]["attempt"] == 2
    assert len(_jobs(sc)) == 2
    failed = sc.wait_for_event(run["metadata"]["name"], "Failed")
    assert failed["type"] == "Warning"
    assert "exit code 3" in failed["message"]


def test_dependency_miss_builds_upstream_and_reruns(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    miss = json.dumps({"missingPartitions": [f"raw/date={DATE}"]})
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef(
            "weekly",
            ["weekly/week={week}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            annotations={
                "kwok.databuild.dev/message": miss,
                "kwok.databuild.dev/exit-code": "2",
            },
        ),
        want("w", ["weekly/week=2025-W01"]),
    )
    sc.wait_for_want("w", "Successful")
    [run] = sc.runs_of("weekly")
    assert run["status"]["attempt"] == 2
    assert run["status"]["failedAttempts"] == 0  # a dependency miss spends no retry
    derived = [w for w in sc.list("Want") if w["metadata"]["name"] != "w"]
    assert len(derived) == 1
    assert derived[0]["spec"]["source"] == {"jobRun": run["metadata"]["name"]}
    assert derived[0]["metadata"]["ownerReferences"][0]["name"] == run["metadata"]["name"]
    assert sc.partition(f"raw/date={DATE}")["status"]["state"] == "Live"
    assert f"raw/date={DATE}" in sc.partition("weekly/week=2025-W01")["status"]["inputs"]


def test_want_before_its_job_definition_waits_then_succeeds(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(want("w", [f"daily/date={DATE}"]))

    def waiting() -> bool:
        w = sc.get("Want", "w") or {}
        ready = [c for c in (w.get("status") or {}).get("conditions", []) if c["type"] == "Ready"]
        return bool(ready) and ready[0]["reason"] == "NoJobDefinition"

    wait_until(
        waiting, timeout=30, what="the Want to wait for a JobDefinition", describe=sc.describe
    )
    sc.apply(jobdef("daily", ["daily/date={date}"]))
    sc.wait_for_want("w", "Successful")


def test_deleting_a_want_cancels_its_running_build(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "60s"}),
        want("w", [f"slow/date={DATE}"]),
    )
    wait_until(lambda: len(_jobs(sc)) == 1, timeout=30, what="the batch Job", describe=sc.describe)
    delete_object(sc.kube, "Want", sc.namespace, "w")

    def cancelled() -> bool:
        runs = sc.list("JobRun")
        return bool(runs) and runs[0]["status"].get("state") == "Cancelled" and not _jobs(sc)

    wait_until(
        cancelled,
        timeout=30,
        what="the JobRun to be Cancelled and its Job deleted",
        describe=sc.describe,
    )
    assert sc.partition(f"slow/date={DATE}")["status"]["state"] == "Missing"


def test_a_batch_job_the_api_server_refuses_fails_its_attempts_across_a_restart(
    scenario: Scenario,
) -> None:
    sc = scenario
    operator = sc.start_operator()
    refused = jobdef("refused", ["refused/date={date}"], retry={"limit": 1, "backoffSeconds": 2})
    # A container name the batch API refuses (not a DNS label); the CRD takes the template.
    refused["spec"]["template"]["spec"]["containers"][0]["name"] = "Not_A_Label"
    sc.apply(refused, want("w", [f"refused/date={DATE}"]))

    def recorded() -> bool:
        runs = sc.runs_of("refused")
        return bool(runs) and "refusedAttempt" in (runs[0].get("status") or {})

    wait_until(recorded, timeout=30, what="the refusal on the JobRun", describe=sc.describe)
    operator.kill()  # the record is on the API server: a new operator goes on from it
    sc.start_operator()
    sc.apply(jobdef("daily", ["daily/date={date}"]), want("neighbour", [f"daily/date={DATE}"]))
    w = sc.wait_for_want("w", "Failed", timeout=60)
    ready = next(c for c in w["status"]["conditions"] if c["type"] == "Ready")
    assert "InvalidPodTemplate" in ready["message"]
    [run] = sc.runs_of("refused")
    status = run["status"]
    assert (status["state"], status["attempt"], status["failedAttempts"]) == ("Failed", 2, 2)
    assert status["refusedAttempt"]["attempt"] == 2
    assert status["refusedAttempt"]["reason"] == "InvalidPodTemplate"
    assert "Not_A_Label" in status["refusedAttempt"]["message"]
    assert not [j for j in _jobs(sc) if j["metadata"]["name"].startswith("refused")]
    sc.wait_for_want("neighbour", "Successful")


def test_sigkill_mid_build_then_restart_converges_without_duplicates(scenario: Scenario) -> None:
    sc = scenario
    operator = sc.start_operator()
    dates = [f"2025-01-{d:02d}" for d in range(1, 7)]
    sc.apply(
        jobdef("raw", ["raw/date={date}"], annotations={"kwok.databuild.dev/duration": "2s"}),
        jobdef(
            "daily",
            ["daily/date={date}"],
            ["raw/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            retry={"limit": 2, "backoffSeconds": 1},
        ),
        *(want(f"w{i}", [f"daily/date={d}"]) for i, d in enumerate(dates)),
    )
    wait_until(
        lambda: len(_jobs(sc)) >= 3, timeout=30, what="some batch Jobs", describe=sc.describe
    )
    operator.kill()
    time.sleep(1)  # builds go on without the operator
    sc.start_operator()
    for i in range(len(dates)):
        sc.wait_for_want(f"w{i}", "Successful", timeout=90)
    attempts = sum(r["status"]["attempt"] for r in sc.list("JobRun"))
    assert len(_jobs(sc)) == attempts
    assert len(sc.list("JobRun")) == 2 * len(dates)  # one run per partition, no duplicates


def test_two_operators_one_orchestrator(scenario: Scenario) -> None:
    sc = scenario
    first = sc.start_operator()
    second = sc.start_operator()

    def leaders() -> list[float]:
        try:
            return [p.metrics().get("databuild_leader", 0.0) for p in (first, second)]
        except OSError:
            return []  # still starting

    wait_until(
        lambda: sorted(leaders()) == [0.0, 1.0],
        timeout=30,
        what="exactly one leader",
        describe=sc.describe,
    )
    sc.apply(
        jobdef("daily", ["daily/date={date}"]),
        *(want(f"w{d}", [f"daily/date=2025-01-0{d}"]) for d in range(1, 4)),
    )
    for d in range(1, 4):
        sc.wait_for_want(f"w{d}", "Successful")
    leader, follower = (first, second) if leaders()[0] else (second, first)
    assert api_writes(follower.metrics()) == 0  # the follower never wrote
    assert len(_jobs(sc)) == 3
    # The leader dies; the follower takes over once the Lease expires.
    leader.kill()
    sc.apply(want("late", [f"daily/date={DATE}"]))
    sc.wait_for_want("late", "Successful", timeout=60)
    assert follower.metrics()["databuild_leader"] == 1.0


def test_taint_marks_lineage_and_a_new_want_rebuilds(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        want("w", [f"clean/date={DATE}"]),
    )
    sc.wait_for_want("w", "Successful")
    raw = sc.partition(f"raw/date={DATE}")
    # What an admin with patch on Partitions may still do (users create a TaintRequest):
    # annotate the Partition with the reason and the time.
    requested = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    request(
        sc.kube,
        "PATCH",
        f"/apis/databuild.dev/v1alpha1/namespaces/{sc.namespace}/partitions/"
        f"{raw['metadata']['name']}",
        {
            "metadata": {
                "annotations": {
                    "databuild.dev/taint": "corrupt upstream file",
                    "databuild.dev/taint-requested-at": requested,
                }
            }
        },
        content_type="application/merge-patch+json",
    )

    def tainted() -> bool:
        return all(
            sc.partition(f"{p}/date={DATE}")["status"]["state"] == "Tainted"
            for p in ("raw", "clean")
        )

    wait_until(tainted, timeout=30, what="both partitions to be Tainted", describe=sc.describe)
    assert "built from tainted" in sc.partition(f"clean/date={DATE}")["status"]["message"]
    sc.apply(want("rebuild", [f"clean/date={DATE}"]))
    sc.wait_for_want("rebuild", "Successful")
    assert len(sc.runs_of("raw")) == 2
    assert sc.partition(f"raw/date={DATE}")["status"]["state"] == "Live"


def test_deadlines_wake_the_loop_ttl_expires_and_sla_is_flagged(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        # Nothing builds "orphan/...": only the TTL deadline can move this Want.
        want("short-lived", ["orphan/date=2025-01-01"], ttlSeconds=3),
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "20s"}),
        want("late", [f"slow/date={DATE}"], slaSeconds=2),
    )
    w = sc.wait_for_want("short-lived", "Expired", timeout=30)
    assert w["status"]["reason"] == "TTLExpired"

    def breached() -> bool:
        return bool(((sc.get("Want", "late") or {}).get("status") or {}).get("slaBreached"))

    wait_until(breached, timeout=30, what="the SLA breach to be flagged", describe=sc.describe)
    assert sc.wait_for_event("late", "SLABreached")["type"] == "Warning"
