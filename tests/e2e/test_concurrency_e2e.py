"""Concurrency on the real control plane: priorities under a limit, and shared pools."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing.demo import KubeError, create_object, wait_until

SLOW = {"kwok.databuild.dev/duration": "4s"}


def _time(run: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(run["status"][field].replace("Z", "+00:00"))


def test_a_later_high_priority_want_starts_before_earlier_low_ones(scenario: Scenario) -> None:
    sc = scenario
    sc.apply(
        jobdef("load", ["load/date={date}"], annotations=SLOW, maxConcurrentRuns=1),
        jobdef("other", ["other/date={date}"]),
        *(want(f"low{d}", [f"load/date=2025-01-0{d}"]) for d in (1, 2, 3)),
    )
    sc.start_operator()

    def first_running() -> list[dict[str, Any]] | None:
        runs = sc.runs_of("load")
        started = [r for r in runs if r.get("status", {}).get("startedAt")]
        return runs if len(runs) == 3 and started else None

    runs = wait_until(first_running, timeout=60, what="a load run started", describe=sc.describe)
    assert sum(bool(r.get("status", {}).get("startedAt")) for r in runs) == 1
    sc.apply(want("urgent", ["load/date=2025-01-09"], priority=10))
    # Out of range: the API server refuses it and says where.
    with pytest.raises(KubeError, match=r"spec\.priority"):
        create_object(
            sc.kube, want("too-urgent", ["load/date=2025-01-08"], priority=5000), sc.namespace
        )
    # The neighbour outside the limit builds while the limit holds the queue back.
    sc.apply(want("neighbour", ["other/date=2025-01-01"]))
    sc.wait_for_want("neighbour", "Successful")
    for name in ("urgent", "low1", "low2", "low3"):
        sc.wait_for_want(name, "Successful", timeout=90)

    by_ref = {r["spec"]["partitions"][0]: r for r in sc.runs_of("load")}
    order = sorted(by_ref, key=lambda ref: _time(by_ref[ref], "startedAt"))
    assert order[:2] == ["load/date=2025-01-01", "load/date=2025-01-09"], order
    # Never two at once: each started after the one before it finished.
    runs = [by_ref[ref] for ref in order]
    for before, after in itertools.pairwise(runs):
        assert _time(after, "startedAt") >= _time(before, "finishedAt"), sc.describe()


def _pool(name: str, limit: int) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "ConcurrencyPool",
        "metadata": {"name": name},
        "spec": {"maxConcurrentRuns": limit},
    }


def test_jobs_in_a_pool_of_one_never_run_at_once_and_a_missing_pool_is_explained(
    scenario: Scenario,
) -> None:
    sc = scenario
    sc.apply(
        _pool("warehouse", 1),
        jobdef("load-a", ["a/date={date}"], annotations=SLOW, concurrencyPool="warehouse"),
        jobdef("load-b", ["b/date={date}"], annotations=SLOW, concurrencyPool="warehouse"),
        jobdef("ghost", ["ghost/date={date}"], concurrencyPool="nowhere"),
        jobdef("outside", ["out/date={date}"], annotations=SLOW),
        want("pooled", ["a/date=2025-01-01", "b/date=2025-01-01", "a/date=2025-01-02"]),
        want("stranded", ["ghost/date=2025-01-01"]),
        want("neighbour", ["out/date=2025-01-01", "out/date=2025-01-02"]),
    )
    # Bad pools are refused by the API server, saying which field.
    with pytest.raises(KubeError, match=r"spec\.maxConcurrentRuns"):
        create_object(sc.kube, _pool("empty", 0), sc.namespace)
    with pytest.raises(KubeError, match=r"spec\.concurrencyPool"):
        create_object(
            sc.kube, jobdef("bad", ["bad/{d}"], concurrencyPool="Not_A_Name"), sc.namespace
        )
    sc.start_operator()

    # Outside the pool: both of its runs at once, while the pool runs one at a time.
    sc.wait_for_want("neighbour", "Successful", timeout=60)
    out = sc.runs_of("outside")
    assert len(out) == 2
    assert max(_time(r, "startedAt") for r in out) < min(_time(r, "finishedAt") for r in out)
    sc.wait_for_want("pooled", "Successful", timeout=90)
    runs = sorted(sc.runs_of("load-a") + sc.runs_of("load-b"), key=lambda r: _time(r, "startedAt"))
    assert len(runs) == 3
    for before, after in itertools.pairwise(runs):
        assert _time(after, "startedAt") >= _time(before, "finishedAt"), sc.describe()

    # The pool reports itself; members are named.
    def settled() -> dict[str, Any] | None:
        pool = sc.get("ConcurrencyPool", "warehouse") or {}
        status = pool.get("status") or {}
        done = status.get("running") == 0 and status.get("waiting") == 0
        return pool if done and status.get("observedGeneration") == 1 else None

    pool = wait_until(settled, timeout=30, what="pool status settled", describe=sc.describe)
    (ready,) = pool["status"]["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Applied")
    assert "load-a, load-b" in ready["message"]

    # The missing pool holds its member back and says why, without touching the others.
    stranded = sc.get("Want", "stranded") or {}
    conditions = {c["type"]: c for c in stranded["status"]["conditions"]}
    assert conditions["Ready"]["reason"] == "ConcurrencyPoolNotFound", stranded
    assert conditions["Stalled"]["status"] == "True"
    assert "'nowhere', which does not exist" in conditions["Ready"]["message"]
    (ghost,) = sc.runs_of("ghost")
    # A JobRun without a written state is Queued (its creation is its only transition).
    assert ghost.get("status", {}).get("state", "Queued") == "Queued", ghost
    assert not ghost.get("status", {}).get("startedAt")
    assert ghost["status"]["reason"] == "ConcurrencyPoolNotFound", ghost
    # Creating it lets the run start.
    sc.apply(_pool("nowhere", 1))
    sc.wait_for_want("stranded", "Successful", timeout=60)
