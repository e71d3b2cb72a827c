"""Taints without ``patch`` on Partitions: a TaintRequest from a namespace editor.

``tina`` is bound only to the chart's aggregated ``view`` and ``edit`` roles (rendered
by helm, created as they are) in the test's namespace, and every request of hers goes
to the real API server with impersonation headers. She may create a TaintRequest but
not patch a Partition. The operator taints the Live partition and what was built from
it once; her new Want rebuilds each once; after the operator is killed and started
again, nothing is tainted or rebuilt a second time. A bad request is refused at apply
and a neighbour namespace served by the same operator still builds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import Scenario, jobdef
from tests.manifests import want
from tests.unit.chart.helmtool import CHART, helm

from databuild.testing import Cluster
from databuild.testing.demo import KubeError, request, wait_until
from databuild.testing.kube import Kube

pytestmark = pytest.mark.e2e

GROUP = "/apis/databuild.dev/v1alpha1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
TENANT = "tina"
RAW, CLEAN = "raw/date=2025-01-01", "clean/date=2025-01-01"


@pytest.fixture
def user_roles(kube: Kube) -> Iterator[str]:
    """The chart's aggregated user roles, created on the cluster; their name prefix."""
    name = f"tr{uuid.uuid4().hex[:6]}"
    rendered = helm(
        "template", name, str(CHART), "--show-only", "templates/user-roles.yaml"
    ).documents()  # fmt: skip
    for doc in rendered:
        request(kube, "POST", f"{RBAC}/clusterroles", doc)
    try:
        yield f"{name}-databuild-operator"
    finally:
        for doc in rendered:
            request(kube, "DELETE", f"{RBAC}/clusterroles/{doc['metadata']['name']}")


def _as(cluster: Cluster, user: str) -> Kube:
    return Kube.from_kubeconfig(cluster.kubeconfig, impersonate=user)


def _bind(kube: Kube, namespace: str, role: str, user: str) -> None:
    request(
        kube,
        "POST",
        f"{RBAC}/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": f"{user}-{role}"[:63]},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def _taint_request(name: str, refs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "TaintRequest",
        "metadata": {"name": name},
        "spec": {"partitions": refs, "reason": "bad join"},
    }


def _may_list(api: Kube, collection: str) -> bool:
    try:
        request(api, "GET", collection)
    except KubeError as error:
        assert error.status == 403, error
        return False
    return True


def _runs_per_ref(sc: Scenario) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in sc.list("JobRun"):
        for ref in run["spec"]["partitions"]:
            counts[ref] = counts.get(ref, 0) + 1
    return counts


def _states(sc: Scenario) -> dict[str, str]:
    return {p["spec"]["ref"]: p["status"]["state"] for p in sc.list("Partition")}


def test_an_editor_taints_through_a_request_once_and_never_patches_a_partition(
    scenario: Scenario, neighbour: Scenario, user_roles: str, control_plane: Cluster
) -> None:
    sc, kube, ns = scenario, scenario.kube, scenario.namespace
    sc.start_operator(also=[neighbour.namespace])
    neighbour.operators = sc.operators
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        want("first", [CLEAN]),
    )
    sc.wait_for_want("first", "Successful", timeout=90)
    for role in ("view", "edit"):
        _bind(kube, ns, f"{user_roles}-{role}", TENANT)
    tina = _as(control_plane, TENANT)
    partition = sc.partition(RAW)["metadata"]["name"]
    collection = f"{GROUP}/namespaces/{ns}/taintrequests"
    try:
        # The edit role grants TaintRequests; RBAC bindings take effect within moments.
        wait_until(
            lambda: _may_list(tina, collection),
            timeout=30,
            what="tina's role binding to take effect",
        )
        # No patch on Partitions: no way to rewrite the catalog's metadata.
        with pytest.raises(KubeError) as refused:
            request(
                tina,
                "PATCH",
                f"{GROUP}/namespaces/{ns}/partitions/{partition}",
                {"metadata": {"annotations": {"databuild.dev/taint": "x"}}},
                content_type="application/merge-patch+json",
            )
        assert refused.value.status == 403, refused.value
        # A ref with shell syntax is refused at apply, naming the field.
        with pytest.raises(KubeError) as bad:
            request(tina, "POST", collection, _taint_request("bad", ["raw/date=1;rm -rf"]))
        assert bad.value.status == 422 and "spec.partitions" in str(bad.value)
        request(tina, "POST", collection, _taint_request("t1", [RAW, "raw/date=2099-01-01"]))
    finally:
        tina.close()

    # The spec is immutable, even for an admin.
    with pytest.raises(KubeError) as immutable:
        request(
            kube,
            "PATCH",
            f"{collection}/t1",
            {"spec": {"partitions": [CLEAN]}},
            content_type="application/merge-patch+json",
        )
    assert "immutable" in str(immutable.value)

    def applied() -> dict[str, Any] | None:
        found = sc.get("TaintRequest", "t1")
        status = (found or {}).get("status") or {}
        return status if status.get("observedGeneration") else None

    status = wait_until(applied, timeout=60, what="t1 to be applied", describe=sc.describe)
    assert status["tainted"] == [RAW]
    assert status["unknown"] == ["raw/date=2099-01-01"]
    assert _states(sc) == {RAW: "Tainted", CLEAN: "Tainted"}

    sc.apply(want("again", [CLEAN]))
    sc.wait_for_want("again", "Successful", timeout=90)
    assert _runs_per_ref(sc) == {RAW: 2, CLEAN: 2}

    # Killed and started again: the applied request is never applied a second time.
    sc.operator.kill()
    sc.start_operator(also=[neighbour.namespace])
    neighbour.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        want("healthy", [CLEAN]),
    )
    neighbour.wait_for_want("healthy", "Successful", timeout=90)
    assert _states(sc) == {RAW: "Live", CLEAN: "Live"}
    assert _runs_per_ref(sc) == {RAW: 2, CLEAN: 2}
    assert sc.get("TaintRequest", "t1")["status"] == status  # type: ignore[index]
