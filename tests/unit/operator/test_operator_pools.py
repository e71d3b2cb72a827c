"""ConcurrencyPools through the operator: the shared limit, the status, a missing pool."""

from __future__ import annotations

from typing import Any

from operator_fakes import NS, FakeCluster, jobdef, want


def _pool(name: str, limit: int) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "ConcurrencyPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"maxConcurrentRuns": limit},
    }


def test_a_pool_limits_its_members_and_reports_its_counts() -> None:
    c = FakeCluster()
    c.apply(_pool("warehouse", 1))
    c.apply(jobdef("a", ["a/date={date}"], concurrencyPool="warehouse"))
    c.apply(jobdef("b", ["b/date={date}"], concurrencyPool="warehouse"))
    c.apply(want("w", ["a/date=2025-01-01", "b/date=2025-01-01"]))
    c.settle()
    [job] = c.jobs()
    status = c.status("ConcurrencyPool", "warehouse")
    assert (status["running"], status["waiting"], status["observedGeneration"]) == (1, 1, 1)
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("True", "Applied")
    assert "JobDefinitions a, b" in ready["message"]
    writes = c.gateway.stats.writes_of(verb="patch_status", kind="ConcurrencyPool")
    assert c.settle() == 0  # nothing changed: no status rewritten
    assert c.gateway.stats.writes_of(verb="patch_status", kind="ConcurrencyPool") == writes
    c.finish_job(job["metadata"]["name"])
    c.settle()
    assert len(c.jobs()) == 2  # the other member got the slot
    status = c.status("ConcurrencyPool", "warehouse")
    assert (status["running"], status["waiting"]) == (1, 0)
    assert status["conditions"][0]["lastTransitionTime"] == ready["lastTransitionTime"]


def test_a_missing_pool_holds_its_members_and_leaves_others_alone() -> None:
    c = FakeCluster()
    c.apply(jobdef("a", ["a/date={date}"], concurrencyPool="nowhere"))
    c.apply(jobdef("free", ["free/date={date}"]))
    c.apply(want("held", ["a/date=2025-01-01"]))
    c.apply(want("neighbour", ["free/date=2025-01-01"]))
    c.settle()
    assert [j["metadata"]["name"].startswith("free-") for j in c.jobs()] == [True]
    ready = {x["type"]: x for x in c.status("Want", "held")["conditions"]}
    assert ready["Ready"]["reason"] == "ConcurrencyPoolNotFound"
    assert ready["Stalled"]["status"] == "True"
    [run] = [r for r in c.gateway.of_kind("JobRun", NS) if r["spec"]["jobDefinition"] == "a"]
    name = run["metadata"]["name"]
    assert run["status"]["reason"] == "ConcurrencyPoolNotFound"
    assert "'nowhere', which does not exist" in run["status"]["message"]
    writes = c.gateway.stats.writes_of(verb="patch_status", kind="JobRun")
    assert c.settle() == 0  # said once
    assert c.gateway.stats.writes_of(verb="patch_status", kind="JobRun") == writes
    c.apply(_pool("nowhere", 3))
    c.settle()
    assert len(c.jobs()) == 2
    assert c.status("JobRun", name)["reason"] != "ConcurrencyPoolNotFound"
