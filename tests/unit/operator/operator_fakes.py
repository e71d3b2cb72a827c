"""An in-memory cluster for operator unit tests: the gateway fake plus a world store.

The executor writes through the fake gateway and into the store; tests play the
Kubernetes job controller by finishing batch Jobs (:meth:`MemoryCluster.finish_job`).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests import manifests

from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import Executor
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway
from databuild.testing.memory_cluster import MemoryCluster

NS = "data"
T0 = datetime(2025, 1, 1, tzinfo=UTC)
TEMPLATE = {"spec": {"containers": [{"name": "main", "image": "busybox", "args": ["{date}"]}]}}


def jobdef(
    name: str, outputs: list[str], inputs: list[str] | None = None, **spec: Any
) -> dict[str, Any]:
    """A JobDefinition manifest."""
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"outputs": outputs, "inputs": inputs or [], "template": TEMPLATE, **spec},
    }


def want(name: str, partitions: list[str], **spec: Any) -> dict[str, Any]:
    """A Want manifest in ``NS``."""
    return manifests.want(name, partitions, namespace=NS, **spec)


class FakeCluster(MemoryCluster):
    """The in-memory cluster of the testing package, in namespace ``data`` from ``T0``."""

    def __init__(
        self,
        make_executor: Callable[[FakeGateway, WorldStore, BuildEventLog], Executor] | None = None,
    ) -> None:
        super().__init__(NS, start=T0, make_executor=make_executor)

    def delete(self, kind: str, name: str) -> None:
        """Delete an object (the watch delivers DELETED)."""
        obj = self.gateway.stored(kind, NS, name)
        assert obj is not None
        asyncio.run(self.gateway.delete(kind, NS, name))
        self.store.delete(kind, copy.deepcopy(obj))

    def settle(self, rounds: int = 10) -> int:
        """Reconcile until a plan writes nothing; the number of passes."""
        for i in range(rounds):
            if self.reconcile().writes == 0:
                return i
        raise AssertionError("the plans never settled")

    def advance(self, seconds: float) -> None:
        """Let time pass."""
        self.now += timedelta(seconds=seconds)

    def jobs(self) -> list[dict[str, Any]]:
        """The batch Jobs, by name."""
        return self.gateway.of_kind("Job", NS)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        """The stored status of one object."""
        obj = self.gateway.stored(kind, NS, name)
        assert obj is not None, f"no {kind} {name}"
        return dict(obj.get("status") or {})

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every stored object of ``kind``."""
        return self.gateway.of_kind(kind, NS)


def failed_once() -> FakeCluster:
    """One build of ``daily/date=2025-01-01`` whose first attempt failed (exit code 3,
    "disk full"), planned: its JobRun is Queued, backing off 5 s with one retry left."""
    c = FakeCluster()
    c.apply(jobdef("daily", ["daily/date={date}"], retry={"limit": 1, "backoffSeconds": 5}))
    c.apply(want("w", ["daily/date=2025-01-01"]))
    c.reconcile()
    c.finish_job(c.jobs()[0]["metadata"]["name"], exit_code=3, message="disk full")
    c.reconcile()
    return c
