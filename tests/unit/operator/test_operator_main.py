"""Assembling the operator in-process (no cluster): wiring and waiting for the CRDs."""

from __future__ import annotations

import asyncio
import logging

import pytest

from databuild.adapters.gateway import NotFound
from databuild.operator.main import Operator
from databuild.operator.settings import load
from databuild.testing.fake_gateway import FakeGateway


def test_waits_for_the_crds_with_one_clear_warning(caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway()
    gateway.fail_next("list", "JobDefinition", NotFound("no such resource", status=404))
    operator = Operator(load(["-n", "data"], env={}), api=object(), gateway=gateway)
    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(operator.wait_for_crds(), 10))
    assert "kubectl apply -f crds/" in caplog.text
    assert gateway.stats.requests["list", "JobDefinition"] == 2


def test_initial_sync_lists_every_watched_kind_before_planning() -> None:
    gateway = FakeGateway()
    operator = Operator(load(["-n", "data"], env={}), api=object(), gateway=gateway)
    asyncio.run(operator.initial_sync())
    assert operator.synced.is_set()
    assert {kind for (verb, kind) in gateway.stats.requests if verb == "list"} == {
        "JobDefinition",
        "Want",
        "Partition",
        "JobRun",
        "Job",
        "Pod",
        "Schedule",
        "TaintRequest",
        "ConcurrencyPool",
    }
    assert gateway.stats.total_writes == 0
