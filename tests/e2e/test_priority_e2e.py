"""Priorities on the real control plane: under a concurrency limit, higher first."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import pytest
from e2e_support import Scenario, jobdef, want

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
