"""Queues on the real control plane: spec.jobMetadata on the Job, waiting for admission.

The test plays the queueing system's part here by resuming the suspended Job, as Kueue
does when it admits a workload; tests/e2e/test_kueue_e2e.py runs the real Kueue.
"""

from __future__ import annotations

from typing import Any

from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.adapters.kinds import KINDS
from databuild.testing.demo import request, wait_until

QUEUE = "kueue.x-k8s.io/queue-name"


def test_jobs_carry_job_metadata_and_wait_for_admission(scenario: Scenario) -> None:
    sc = scenario
    sc.apply(
        jobdef(
            "queued",
            ["queued/date={date}"],
            jobMetadata={
                "labels": {QUEUE: "team-a", "example.com/team": "a"},
                "annotations": {"example.com/cost-center": "42"},
            },
        ),
        jobdef("direct", ["direct/date={date}"]),
        want("held", ["queued/date=2025-01-01"]),
        want("free", ["direct/date=2025-01-01"]),
    )
    sc.start_operator()
    # The neighbour without a queue builds at once.
    sc.wait_for_want("free", "Successful")

    def waiting() -> dict[str, Any] | None:
        runs = sc.runs_of("queued")
        status = runs[0].get("status", {}) if runs else {}
        return runs[0] if status.get("admission") == "WaitingForAdmission" else None

    run = wait_until(waiting, timeout=60, what="WaitingForAdmission", describe=sc.describe)
    assert run["status"]["state"] == "Running"
    job_name = run["status"]["jobName"]
    job = sc.get("Job", job_name)
    assert job is not None
    assert job["metadata"]["labels"][QUEUE] == "team-a"
    assert job["metadata"]["labels"]["example.com/team"] == "a"
    assert job["metadata"]["annotations"]["example.com/cost-center"] == "42"
    assert job["spec"]["suspend"] is True
    assert QUEUE not in job["spec"]["template"]["metadata"]["labels"]
    # Held: no pod runs, the Want is not done.
    assert not [p for p in sc.list("Pod") if p["metadata"]["labels"].get("job-name") == job_name]
    assert sc.get("Want", "held")["status"]["state"] != "Successful"  # type: ignore[index]
    # The queue admits it.
    request(
        sc.kube,
        "PATCH",
        f"{KINDS['Job'].collection(sc.namespace)}/{job_name}",
        {"spec": {"suspend": False}},
        content_type="application/merge-patch+json",
    )
    sc.wait_for_want("held", "Successful", timeout=60)


def test_runs_waiting_for_admission_do_not_count_against_max_concurrent_runs(
    scenario: Scenario,
) -> None:
    sc = scenario
    sc.apply(
        jobdef(
            "queued",
            ["queued/date={date}"],
            jobMetadata={"labels": {QUEUE: "team-a"}},
            maxConcurrentRuns=1,
        ),
        *(want(f"w{d}", [f"queued/date=2025-01-0{d}"]) for d in (1, 2, 3)),
    )
    sc.start_operator()

    def all_held() -> list[dict[str, Any]] | None:
        runs = sc.runs_of("queued")
        held = [r for r in runs if r.get("status", {}).get("admission") == "WaitingForAdmission"]
        return runs if len(held) == 3 else None

    # With a limit of 1, all three Jobs exist: none of them runs yet.
    runs = wait_until(all_held, timeout=60, what="three runs held", describe=sc.describe)
    assert all(r["status"]["state"] == "Running" for r in runs)
    for run in runs:
        request(
            sc.kube,
            "PATCH",
            f"{KINDS['Job'].collection(sc.namespace)}/{run['status']['jobName']}",
            {"spec": {"suspend": False}},
            content_type="application/merge-patch+json",
        )
    for d in (1, 2, 3):
        sc.wait_for_want(f"w{d}", "Successful", timeout=60)
