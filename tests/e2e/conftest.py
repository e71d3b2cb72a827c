"""Fixtures for end-to-end tests: the CRDs installed, the operator running, and helpers.

The control plane itself (``control_plane``, ``kube``, ``namespace``) comes from the
``databuild.testing`` pytest plugin. The operator runs as a subprocess, the way users
run it (``python -m databuild.operator``), serving only the test's namespace and
holding a Lease of its own, so tests never see each other's operators.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import Scenario

from databuild.testing.demo import install_crds

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crds(kube: Kube) -> Iterator[None]:
    """The CRDs in ``crds/``, applied and Established."""
    install_crds(kube, ROOT / "crds")
    yield


@pytest.fixture
def scenario(
    kube: Kube,
    namespace: str,
    control_plane: Cluster,
    crds: None,
    request: pytest.FixtureRequest,
) -> Iterator[Scenario]:
    """A namespace with the CRDs installed; start its operator with ``start_operator``."""
    tmp_path: Path = request.getfixturevalue("tmp_path")
    sc = Scenario(kube, namespace, control_plane, tmp_path)
    try:
        yield sc
    finally:
        for process in sc.operators:
            process.stop()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and sc.operators:
            print(f"\n--- operator log ({sc.operator.log_path}) ---\n{sc.operator.log_tail(80)}")


@pytest.fixture
def neighbour(scenario: Scenario, kube: Kube) -> Iterator[Scenario]:
    """A second, healthy namespace, for an operator serving ``scenario``'s as well."""
    name = f"{scenario.namespace[:50]}-ok"
    kube.create_namespace(name)  # and its default ServiceAccount, without which no pods
    try:
        yield Scenario(kube, name, scenario.cluster, scenario.log_dir)
    finally:
        kube.delete("Namespace", None, name, missing_ok=True)  # a test may delete it itself


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
