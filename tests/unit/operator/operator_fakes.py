"""An in-memory cluster for operator unit tests: the gateway fake plus a world store.

The executor writes through the fake gateway and into the store; tests play the
Kubernetes job controller by finishing batch Jobs (:meth:`FakeCluster.finish_job`).
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.gateway import FakeGateway
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import ExecutionResult, Executor
from databuild.operator.leader import AlwaysLeader
from databuild.operator.loop import Orchestrator
from databuild.operator.store import WorldStore

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
    """A Want manifest."""
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Want",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"partitions": partitions, **spec},
    }


class FakeCluster:
    """Gateway fake + store + executor + orchestrator, with a controllable clock."""

    def __init__(self) -> None:
        self.gateway = FakeGateway()
        self.store = WorldStore()
        self.bel = BuildEventLog()
        self.now = T0
        self.executor = Executor(self.gateway, self.store, self.bel)
        self.loop = Orchestrator(self.store, self.executor, AlwaysLeader(), clock=lambda: self.now)

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create a user's object (the API server assigns metadata; the watch delivers it)."""
        created = asyncio.run(self.gateway.create(manifest))
        created["metadata"]["creationTimestamp"] = self.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.gateway.objects[created["kind"], NS, created["metadata"]["name"]] = created
        self.store.put(created["kind"], copy.deepcopy(created))
        return created

    def delete(self, kind: str, name: str) -> None:
        """Delete an object (the watch delivers DELETED)."""
        obj = self.gateway.stored(kind, NS, name)
        assert obj is not None
        asyncio.run(self.gateway.delete(kind, NS, name))
        self.store.delete(kind, copy.deepcopy(obj))

    def reconcile(self) -> ExecutionResult:
        """One planning pass over the namespace (time moves on a little, as it does)."""
        self.now += timedelta(milliseconds=100)
        return asyncio.run(self.loop.reconcile(NS))

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

    def finish_job(
        self, name: str, *, exit_code: int = 0, message: str = "", reason: str = "Error"
    ) -> None:
        """Play the job controller and kubelet: the Job's pod ends with ``exit_code``."""
        job = self.gateway.stored("Job", NS, name)
        assert job is not None, f"no batch Job {name}"
        condition = "Complete" if exit_code == 0 else "Failed"
        job["status"] = {
            "conditions": [
                {
                    "type": condition,
                    "status": "True",
                    "reason": "BackoffLimitExceeded" if exit_code else "CompletionsReached",
                    "lastTransitionTime": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        }
        job["metadata"]["resourceVersion"] = str(int(job["metadata"]["resourceVersion"]) + 1000)
        self.store.put("Job", copy.deepcopy(job))
        labels = dict(job["spec"]["template"]["metadata"]["labels"])
        labels["batch.kubernetes.io/job-name"] = name
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-pod",
                "namespace": NS,
                "labels": labels,
                "annotations": job["spec"]["template"]["metadata"]["annotations"],
                "resourceVersion": "1",
                # The job controller's pods are controlled by their Job.
                "ownerReferences": [
                    {"kind": "Job", "name": name, "uid": job["metadata"]["uid"], "controller": True}
                ],
            },
            "status": {
                "phase": "Succeeded" if exit_code == 0 else "Failed",
                "containerStatuses": [
                    {
                        "name": "main",
                        "state": {
                            "terminated": {
                                "exitCode": exit_code,
                                "message": message,
                                "reason": "Completed" if exit_code == 0 else reason,
                            }
                        },
                    }
                ],
            },
        }
        self.store.put("Pod", pod)

    def status(self, kind: str, name: str) -> dict[str, Any]:
        """The stored status of one object."""
        obj = self.gateway.stored(kind, NS, name)
        assert obj is not None, f"no {kind} {name}"
        return dict(obj.get("status") or {})

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Every stored object of ``kind``."""
        return self.gateway.of_kind(kind, NS)
