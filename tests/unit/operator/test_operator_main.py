"""Assembling the operator in-process (no cluster): wiring and waiting for the CRDs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from databuild.adapters.gateway import NotFound
from databuild.adapters.kube import ClusterConfig
from databuild.operator.main import Operator, connection_info, main
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


def test_initial_sync_lists_every_watched_kind_before_planning() -> None:
    gateway = FakeGateway()
    operator = Operator(load(["-n", "data"], env={}), gateway=gateway)
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


def test_kopf_logs_in_with_the_clients_own_credentials(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    cluster = ClusterConfig(
        server="https://10.0.0.1:443",
        ca_data=b"-----BEGIN CERTIFICATE-----\n",
        token_file=token,
        namespace="databuild-system",
    )
    operator = Operator(load(["-n", "data"], env={}), cluster=cluster, gateway=FakeGateway())
    info = connection_info(operator.cluster)
    assert (info.server, info.ca_data, info.scheme, info.token) == (
        "https://10.0.0.1:443",
        b"-----BEGIN CERTIFICATE-----\n",
        "Bearer",
        "first",
    )
    assert info.default_namespace == "databuild-system"
    assert info.certificate_data is None


def test_an_unusable_kubeconfig_stops_the_operator_with_a_clear_message(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("current-context: gone\ncontexts: []\n")
    with pytest.raises(SystemExit, match=r"cannot connect to the API server: .*no context named"):
        main(["--kubeconfig", str(kubeconfig), "-n", "data"])
