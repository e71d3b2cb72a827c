"""A Running JobRun whose batch Job is suspended says it waits for admission."""

from __future__ import annotations

import asyncio
from typing import Any

from databuild import domain
from databuild.operator.admission import AdmissionReporter, widen_limits, widen_pools
from databuild.operator.store import WorldStore
from databuild.testing.fake_gateway import FakeGateway

NS = "data"


def _setup(suspended: bool) -> tuple[FakeGateway, WorldStore, AdmissionReporter]:
    gateway, store = FakeGateway(), WorldStore()
    run = asyncio.run(
        gateway.create(
            {
                "apiVersion": "databuild.dev/v1alpha1",
                "kind": "JobRun",
                "metadata": {"name": "r", "namespace": NS},
                "spec": {"jobDefinition": "d", "partitions": ["p/1"]},
            }
        )
    )
    run = asyncio.run(
        gateway.patch_status("JobRun", NS, "r", {"state": "Running", "jobName": "r-1"})
    )
    store.put("JobRun", run)
    store.put("Job", _job(suspended))
    return gateway, store, AdmissionReporter(gateway, store, is_leading=lambda: True)


def _job(suspended: bool, version: int = 1) -> dict[str, Any]:
    condition = {"type": "Suspended", "status": "True" if suspended else "False"}
    return {
        "kind": "Job",
        "metadata": {"name": "r-1", "namespace": NS, "resourceVersion": str(version)},
        "status": {"conditions": [condition]},
    }


def _admission(gateway: FakeGateway) -> Any:
    run = gateway.stored("JobRun", NS, "r")
    assert run is not None
    return run["status"].get("admission")


def test_a_suspended_job_shows_waiting_then_admitted() -> None:
    gateway, store, reporter = _setup(suspended=True)
    assert asyncio.run(reporter.reconcile_all()) == 1
    assert _admission(gateway) == "WaitingForAdmission"
    assert asyncio.run(reporter.reconcile_all()) == 0  # nothing new: no write
    store.put("Job", _job(False, version=2))
    assert asyncio.run(reporter.reconcile_all()) == 1
    assert _admission(gateway) == "Admitted"


def test_a_job_never_held_back_writes_nothing() -> None:
    gateway, _, reporter = _setup(suspended=False)
    assert asyncio.run(reporter.reconcile_all()) == 0
    assert _admission(gateway) is None


def test_runs_held_back_do_not_count_against_the_limits() -> None:
    defs = {
        "queued": domain.JobDefinition("queued", ("q/{d}",), max_concurrent_runs=1),
        "free": domain.JobDefinition("free", ("f/{d}",)),
    }
    settings = widen_limits(defs, domain.Settings(max_concurrent_runs=5), {"queued": 2, "free": 1})
    assert defs["queued"].max_concurrent_runs == 3
    assert defs["free"].max_concurrent_runs is None
    assert settings.max_concurrent_runs == 8
    assert widen_limits(defs, domain.Settings(), {"queued": 1}).max_concurrent_runs is None


def test_runs_held_by_a_queue_do_not_count_against_their_pool() -> None:
    defs = {
        "a": domain.JobDefinition("a", ("a/{d}",), concurrency_pool="shared"),
        "b": domain.JobDefinition("b", ("b/{d}",), concurrency_pool="shared"),
        "free": domain.JobDefinition("free", ("f/{d}",)),
    }
    pools = {
        "shared": domain.ConcurrencyPool("shared", 1),
        "idle": domain.ConcurrencyPool("idle", 4),
    }
    widened = widen_pools(pools, defs, {"a": 2, "b": 1, "free": 5})
    assert widened == {"shared": domain.ConcurrencyPool("shared", 4), "idle": pools["idle"]}
