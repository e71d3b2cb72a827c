"""Assembling the operator in-process (no cluster): wiring and waiting for the CRDs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from databuild.adapters.gateway import NotFound
from databuild.operator.main import Operator, main
from databuild.operator.settings import load
from databuild.testing.fake_gateway import FakeGateway


def test_waits_for_the_crds_with_one_clear_warning(caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway()
    gateway.fail_next("list", "JobDefinition", NotFound("no such resource", status=404))
    operator = Operator(load(["-n", "data"], env={}), gateway=gateway)
    with caplog.at_level(logging.WARNING):
        asyncio.run(asyncio.wait_for(operator.wait_for_crds(), 10))
    assert "kubectl apply -f crds/" in caplog.text
    assert gateway.stats.requests["list", "JobDefinition"] == 2


def test_an_unusable_kubeconfig_stops_the_operator_with_a_clear_message(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("current-context: gone\ncontexts: []\n")
    with pytest.raises(SystemExit, match=r"cannot connect to the API server: .*no context named"):
        main(["--kubeconfig", str(kubeconfig), "-n", "data"])
