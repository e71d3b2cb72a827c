"""The operator's real loop against an in-memory API server, with a job controller played.

:class:`MemoryCluster` wires the product's own :class:`~databuild.operator.store.WorldStore`,
:class:`~databuild.operator.executor.Executor` and
:class:`~databuild.operator.loop.Orchestrator` to the in-memory
:class:`~databuild.testing.fake_gateway.FakeGateway`. What the watches would deliver is put
into the store as the API server answers; :meth:`MemoryCluster.finish_jobs` plays the
Kubernetes job controller and kubelet (every batch Job not yet finished completes, its
pod ending with exit code 0). Nothing is mocked inside the operator: plans, writes,
conflicts and the Build Event Log are the product's. The scale benchmark
(:mod:`databuild.bench.scale`) drives it with 100,000 partitions.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.kinds import KINDS
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.executor import ExecutionResult, Executor
from databuild.operator.leader import AlwaysLeader
from databuild.operator.loop import Orchestrator
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway, wire_copy

__all__ = ["MemoryCluster"]

T0 = datetime(2025, 1, 1, tzinfo=UTC)
_VERBS = (
    "create",
    "get",
    "list",
    "patch",
    "patch_status",
    "replace_status",
    "delete",
    "emit_event",
)


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


class MemoryCluster:
    """One namespace served by an in-memory API server and the operator's real loop."""

    def __init__(
        self,
        namespace: str = "data",
        *,
        start: datetime = T0,
        make_executor: Callable[[FakeGateway, WorldStore, BuildEventLog], Executor] | None = None,
    ) -> None:
        self.namespace = namespace
        self.now = start
        self.gateway = FakeGateway()
        self.api_cpu_seconds = 0.0
        """CPU the in-memory API server spent answering (its copies stand in for JSON)."""
        for verb in _VERBS:
            setattr(self.gateway, verb, self._timed(getattr(self.gateway, verb)))
        self.bel = BuildEventLog()
        self._make_executor = make_executor or Executor
        self._start_operator()
        self._finished: set[str] = set()

    def _start_operator(self) -> None:
        self.store = WorldStore()
        self.executor = self._make_executor(self.gateway, self.store, self.bel)
        self.loop = Orchestrator(self.store, self.executor, AlwaysLeader(), clock=lambda: self.now)

    def restart(self) -> None:
        """A new operator process, as after kill -9: nothing of the old one's memory.

        A new store listed from the API server, a new executor and loop; the Build Event
        Log stands for its durable store and is kept.
        """
        self._start_operator()
        for kind, info in KINDS.items():
            if info.watched:
                self.store.load(kind, copy.deepcopy(self.gateway.of_kind(kind, self.namespace)))

    def _timed(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        # The fake answers without suspending, so the time around the await is its own.
        @functools.wraps(call)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return await call(*args, **kwargs)
            finally:
                self.api_cpu_seconds += time.process_time() - started

        return timed

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a user's object; the API server stamps it and the watch delivers it."""
        body = copy.deepcopy(dict(manifest))
        body.setdefault("metadata", {})["namespace"] = self.namespace
        created = asyncio.run(self.gateway.create(body))
        created["metadata"]["creationTimestamp"] = _stamp(self.now)
        self.gateway.objects[created["kind"], self.namespace, created["metadata"]["name"]] = created
        self.store.put(created["kind"], wire_copy(created))
        return created

    def reconcile(self, step: timedelta = timedelta(milliseconds=100)) -> ExecutionResult:
        """One pass of the loop over the namespace; time moves on by ``step``."""
        self.now += step
        return asyncio.run(self.loop.reconcile(self.namespace))

    def finish_jobs(self) -> int:
        """Play the job controller: every unfinished batch Job completes. How many did."""
        done = 0
        for job in self.gateway.of_kind("Job", self.namespace):
            name = job["metadata"]["name"]
            if name in self._finished or (job.get("spec") or {}).get("suspend"):
                continue
            self.finish_job(name)
            done += 1
        return done

    def finish_job(
        self, name: str, *, exit_code: int = 0, message: str = "", reason: str = "Error"
    ) -> None:
        """Play the job controller and kubelet: the Job's pod ends with ``exit_code``."""
        job = self.gateway.stored("Job", self.namespace, name)
        assert job is not None, f"no batch Job {name}"
        self._finished.add(name)
        condition = "Complete" if exit_code == 0 else "Failed"
        job["status"] = {
            "conditions": [
                {
                    "type": condition,
                    "status": "True",
                    "reason": "BackoffLimitExceeded" if exit_code else "CompletionsReached",
                    "lastTransitionTime": _stamp(self.now),
                }
            ]
        }
        # One version sequence for every writer, as in etcd: the operator's later writes
        # (the outcome finalizer's release) must read as newer than this change.
        self.gateway.bump(job)
        self.store.put("Job", wire_copy(job))
        template = job["spec"]["template"]
        pod = {
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-pod",
                "namespace": self.namespace,
                "labels": {
                    **template["metadata"].get("labels", {}),
                    "batch.kubernetes.io/job-name": name,
                },
                "annotations": template["metadata"].get("annotations", {}),
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
                        "name": template["spec"]["containers"][0]["name"],
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

    def states(self, kind: str) -> dict[str, int]:
        """How many objects of ``kind`` are in each state (as the API server has them)."""
        counts: dict[str, int] = {}
        for obj in self.gateway.of_kind(kind, self.namespace):
            state = str((obj.get("status") or {}).get("state") or "")
            counts[state] = counts.get(state, 0) + 1
        return counts
