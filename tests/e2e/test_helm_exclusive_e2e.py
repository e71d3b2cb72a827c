"""One release per namespace: the chart refuses to install over another release's namespaces.

Release A's operator Roles (rendered by helm, created as they are) watch namespace X.
A server-side dry run of release B (helm's ``lookup`` reads the real API server) is
refused for X and for every namespace, and allowed for another namespace Y.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest
from tests.unit.chart.helmtool import CHART, helm

from databuild.testing import Cluster
from databuild.testing.demo import KubeError, request
from databuild.testing.kube import Kube

pytestmark = pytest.mark.e2e

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    request(kube, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


@pytest.fixture
def watched(kube: Kube) -> Iterator[tuple[str, str, str]]:
    """(release A's name, its operator namespace, the namespace it watches)."""
    name, home, watched = f"a{uuid.uuid4().hex[:6]}", _namespace(kube, "ops"), _namespace(kube, "x")
    docs = helm(
        "template", name, str(CHART), "--namespace", home,
        "--set", f"watchNamespaces={{{watched}}}", "--show-only", "templates/rbac.yaml",
    ).documents()  # fmt: skip
    roles = [d for d in docs if d["kind"] == "Role"]
    for doc in roles:
        request(kube, "POST", f"{RBAC}/namespaces/{doc['metadata']['namespace']}/roles", doc)
    try:
        yield name, home, watched
    finally:
        # At once, not with the namespaces: later installs in this session look them up.
        for doc in roles:
            path = (
                f"{RBAC}/namespaces/{doc['metadata']['namespace']}/roles/{doc['metadata']['name']}"
            )
            with contextlib.suppress(KubeError):
                request(kube, "DELETE", path)
        for ns in (home, watched):
            with contextlib.suppress(KubeError):
                request(kube, "DELETE", f"/api/v1/namespaces/{ns}")


def _dry_run(cluster: Cluster, name: str, namespace: str, *values: str) -> tuple[int, str]:
    result = helm(
        "install", name, str(CHART), "--namespace", namespace, "--dry-run=server", *values,
        kubeconfig=cluster.kubeconfig, check=False,
    )  # fmt: skip
    return result.returncode, result.stderr + result.stdout


def test_a_second_release_over_the_same_namespace_is_refused(
    control_plane: Cluster, kube: Kube, watched: tuple[str, str, str]
) -> None:
    first, home, ns = watched
    other = _namespace(kube, "y")
    try:
        code, out = _dry_run(control_plane, "second", home, "--set", f"watchNamespaces={{{ns}}}")
        assert code != 0, out
        assert f"release {first} already watches namespace {ns}" in out, out

        code, out = _dry_run(control_plane, "second", home)  # every namespace, X included
        assert code != 0, out
        assert f"release {first} already watches namespace {ns}" in out, out

        # The neighbour: another namespace is fine.
        code, out = _dry_run(control_plane, "second", home, "--set", f"watchNamespaces={{{other}}}")
        assert code == 0, out
    finally:
        with contextlib.suppress(KubeError):
            request(kube, "DELETE", f"/api/v1/namespaces/{other}")
