"""A batch Job that cannot be created fails its attempt durably, across a restart.

The operator is killed right after the plan whose batch Job create was refused (the
JobRun is Running, no Job exists); the new process must read that attempt's failure
from the JobRun and go on with retry or failure, never trying that Job again.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from operator_fakes import NS, TEMPLATE, FakeCluster, failed_once, jobdef, want

from databuild import domain
from databuild.adapters.gateway import Invalid
from databuild.operator import snapshot


def _one_plan_then_crash(c: FakeCluster) -> None:
    """Plan and execute once (no re-plan after the surprise), then kill the operator."""
    snap = snapshot.build(c.store, NS, c.now)
    plan = domain.plan(snap.world, c.now)
    asyncio.run(c.executor.execute(snap, plan, c.now))
    c.restart()


def _run(c: FakeCluster, job_definition: str = "daily") -> dict[str, Any]:
    [run] = [r for r in c.of_kind("JobRun") if r["spec"]["jobDefinition"] == job_definition]
    return run


def _neighbour_builds(c: FakeCluster) -> None:
    c.apply(jobdef("other", ["other/date={date}"]))
    c.apply(want("neighbour", ["other/date=2025-01-01"]))
    c.reconcile()
    c.finish_job(f"{_run(c, 'other')['metadata']['name']}-1")
    c.reconcile()
    assert c.status("Want", "neighbour")["state"] == "Successful"


def test_a_refused_job_is_retried_as_the_next_attempt_after_a_restart() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"], retry={"limit": 1, "backoffSeconds": 5}))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.gateway.fail_next("create", "Job", Invalid("spec.template: bad", status=422))
    _one_plan_then_crash(c)
    name = _run(c)["metadata"]["name"]
    status = _run(c)["status"]
    assert (status["state"], status["attempt"]) == ("Running", 1)

    c.reconcile()
    assert c.jobs() == []  # the refused attempt's Job was not tried again
    status = _run(c)["status"]
    assert (status["state"], status["failedAttempts"]) == ("Queued", 1)
    assert "InvalidPodTemplate" in status["message"]
    assert status["refusedAttempt"]["reason"] == "InvalidPodTemplate"
    _neighbour_builds(c)  # the refusal stays with its run

    c.advance(6)
    c.reconcile()
    assert [j["metadata"]["name"] for j in c.jobs() if j["metadata"]["name"].startswith(name)] == [
        f"{name}-2"
    ]
    c.restart()  # the old record names attempt 1 only: attempt 2 is not failed by it
    c.reconcile()
    assert _run(c)["status"]["state"] == "Running"
    c.finish_job(f"{name}-2")
    c.reconcile()
    assert _run(c)["status"]["state"] == "Succeeded"
    assert c.status("Want", "w")["state"] == "Successful"
    assert c.gateway.stored("Job", NS, f"{name}-1") is None


def test_a_refused_job_without_retries_fails_the_run_after_a_restart() -> None:
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"]))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.gateway.fail_next("create", "Job", Invalid("spec.template: bad", status=422))
    _one_plan_then_crash(c)
    c.settle()
    run = _run(c)
    assert run["status"]["state"] == "Failed"
    assert "InvalidPodTemplate: the batch Job was rejected" in run["status"]["message"]
    assert c.status("Want", "w")["state"] == "Failed"
    assert c.jobs() == []
    assert c.gateway.stats.requests["create", "Job"] == 1  # the refused one only
    _neighbour_builds(c)


def test_a_foreign_job_fails_its_attempt_once_across_a_restart() -> None:
    c = failed_once()
    name = _run(c)["metadata"]["name"]
    # Somebody else's Job under the name attempt 2 will use.
    c.apply(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": f"{name}-2", "namespace": NS},
            "spec": {"template": copy.deepcopy(TEMPLATE)},
        }
    )
    c.advance(6)
    _one_plan_then_crash(c)
    creates = c.gateway.stats.requests["create", "Job"]
    c.settle()
    assert c.gateway.stats.requests["create", "Job"] == creates  # not tried again
    run = _run(c)
    assert run["status"]["refusedAttempt"]["attempt"] == 2
    assert run["status"]["state"] == "Failed"
    assert "ForeignJob" in run["status"]["message"]
    assert [e.reason for e in c.gateway.events].count("ForeignJob") == 1
    assert c.gateway.stored("Job", NS, f"{name}-2") is not None  # not ours to delete
    _neighbour_builds(c)
