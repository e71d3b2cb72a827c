"""TaintRequests against the in-memory gateway: applied once, reported, retired.

The orchestrator and the TaintRequest controller share one gateway and store, as in
the operator; a "restart" is a fresh store, orchestrator and controller listing the
same gateway.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

from operator_fakes import NS, FakeCluster, jobdef, want

from databuild.operator.executor import Executor
from databuild.operator.leader import AlwaysLeader
from databuild.operator.loop import Orchestrator
from databuild.operator.taints import TaintRequestController

RAW = "raw/date=2025-01-01"
CLEAN = "clean/date=2025-01-01"


class Harness(FakeCluster):
    """The fake cluster plus the TaintRequest controller (retention: one hour)."""

    def __init__(self) -> None:
        super().__init__()
        self.taints = self._controller()

    def _controller(self) -> TaintRequestController:
        return TaintRequestController(
            self.gateway,
            self.store,
            is_leading=lambda: True,
            retention_seconds=3600,
            clock=lambda: self.now,
        )

    def report(self) -> int:
        return asyncio.run(self.taints.reconcile_all(self.now))

    def request(self, name: str, refs: list[str], *, at_offset: float = 0.0) -> None:
        """A user's TaintRequest, created by the server at now + ``at_offset`` seconds."""
        created = self.apply(
            {
                "apiVersion": "databuild.dev/v1alpha1",
                "kind": "TaintRequest",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"partitions": refs, "reason": "bad rows"},
            }
        )
        stamp = (self.now + timedelta(seconds=at_offset)).strftime("%Y-%m-%dT%H:%M:%SZ")
        created["metadata"]["creationTimestamp"] = stamp
        self.gateway.objects["TaintRequest", NS, name] = created
        self.store.put("TaintRequest", copy.deepcopy(created))

    def restart(self) -> None:
        """A new operator process: its store is listed from the API server."""
        gateway, now = self.gateway, self.now
        FakeCluster.__init__(self)
        self.gateway, self.now = gateway, now
        self.executor = Executor(self.gateway, self.store, self.bel)
        self.loop = Orchestrator(self.store, self.executor, AlwaysLeader(), clock=lambda: self.now)
        for kind in ("JobDefinition", "Want", "Partition", "JobRun", "Job", "TaintRequest"):
            self.store.load(kind, asyncio.run(self.gateway.list(kind, NS)))
        self.taints = self._controller()

    def build(self, name: str, refs: list[str]) -> None:
        """A Want for ``refs``, built to the end."""
        self.apply(want(name, refs))
        for _ in range(6):
            self.reconcile()
            for job in self.jobs():
                if not job.get("status"):
                    self.finish_job(job["metadata"]["name"])
        assert self.status("Want", name)["state"] == "Successful"

    def state(self, ref: str) -> str:
        part = next(p for p in self.of_kind("Partition") if p["spec"]["ref"] == ref)
        return str(part["status"]["state"])

    def request_status(self, name: str) -> dict[str, Any]:
        obj = self.gateway.stored("TaintRequest", NS, name)
        assert obj is not None
        return dict(obj.get("status") or {})

    def taint_events(self) -> list[str]:
        return [e.event.name for e in self.bel.events if e.event.to_state == "Tainted"]


def _graph(c: Harness) -> None:
    c.apply(jobdef("raw", ["raw/date={date}"]))
    c.apply(jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]))
    c.build("w", [CLEAN])
    c.advance(5)


def test_a_request_taints_along_lineage_and_reports_each_ref() -> None:
    c = Harness()
    _graph(c)
    c.request("t", [RAW, "raw/date=2099-01-01"])
    assert c.report() == 0  # the planner has not acted yet: nothing to report
    assert c.request_status("t") == {}
    c.advance(2)  # past the end of the request's second
    c.reconcile()
    assert (c.state(RAW), c.state(CLEAN)) == ("Tainted", "Tainted")
    assert c.report() == 1
    status = c.request_status("t")
    assert status["tainted"] == [RAW]
    assert status["unknown"] == ["raw/date=2099-01-01"]
    assert status["observedGeneration"] == 1
    assert status["conditions"][0]["reason"] == "Applied"
    assert c.report() == 0  # written once


def test_an_applied_request_never_taints_a_rebuild_even_with_the_clocks_apart() -> None:
    c = Harness()
    _graph(c)
    # The server's clock runs a minute ahead of the operator's: the request is dated
    # after data the operator will rebuild in the next minute.
    c.request("t", [RAW], at_offset=60)
    c.advance(62)
    c.reconcile()
    assert c.state(RAW) == "Tainted"
    assert c.report() == 1
    c.now -= timedelta(seconds=50)  # the operator's clock is behind again
    c.build("again", [CLEAN])  # Live since before the request's time, on this clock
    c.advance(60)  # past the request's time
    assert c.settle() == 0
    assert (c.state(RAW), c.state(CLEAN)) == ("Live", "Live")
    assert sorted(c.taint_events()) == sorted(
        [p["metadata"]["name"] for p in c.of_kind("Partition")]
    )  # each tainted exactly once


def test_a_restart_before_the_report_neither_taints_twice_nor_loses_the_report() -> None:
    c = Harness()
    _graph(c)
    c.request("t", [RAW])
    c.advance(2)
    c.reconcile()
    assert c.state(RAW) == "Tainted"  # the operator stops before writing the report
    c.restart()
    c.settle()
    assert c.report() == 1
    assert c.request_status("t")["tainted"] == [RAW]
    c.build("again", [CLEAN])
    assert c.taint_events() == []  # since the restart: the rebuild was not tainted
    c.restart()
    assert c.settle() == 0
    assert c.report() == 0
    assert c.state(RAW) == "Live"
    assert c.taint_events() == []


def test_refs_that_are_not_live_are_reported_and_a_neighbour_is_tainted() -> None:
    c = Harness()
    _graph(c)
    c.apply(want("building", ["raw/date=2025-01-02"]))
    c.reconcile()  # raw/2025-01-02 is Building
    c.request("t", ["raw/date=2025-01-02", RAW])
    c.advance(2)
    c.reconcile()
    assert c.report() == 1
    status = c.request_status("t")
    assert status["notLive"] == ["raw/date=2025-01-02"]
    assert status["tainted"] == [RAW]


def test_applied_requests_are_deleted_after_the_retention() -> None:
    c = Harness()
    _graph(c)
    c.request("t", [RAW])
    c.advance(2)
    c.reconcile()
    c.report()
    c.advance(3599)
    assert c.report() == 0
    assert c.gateway.stored("TaintRequest", NS, "t") is not None
    c.advance(2)
    assert c.report() == 1
    assert c.gateway.stored("TaintRequest", NS, "t") is None
