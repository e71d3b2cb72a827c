"""The chart's admission policies on the real API server, with an impersonated tenant.

The chart's ValidatingAdmissionPolicies and user roles are rendered by helm and created
as they are; ``alice`` is bound to the chart's edit role in the test's namespace, so she
may write JobDefinitions and Wants but not Jobs. Every request of hers goes to the API
server with impersonation headers. The operator's own namespace is a second namespace
the release watches. A healthy build in the same namespace still succeeds.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
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
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
COLLECTIONS = {
    "ValidatingAdmissionPolicy": f"{ADMISSION}/validatingadmissionpolicies",
    "ValidatingAdmissionPolicyBinding": f"{ADMISSION}/validatingadmissionpolicybindings",
    "ClusterRole": f"{RBAC}/clusterroles",
}
TENANT = "alice"

# A pod template that meets the restricted Pod Security Standard.
RESTRICTED_POD = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "main",
            "image": "example.invalid/job:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}


@dataclass
class Release:
    """The chart's admission objects for one release, created on the cluster."""

    fullname: str
    operator_namespace: str
    objects: list[dict[str, Any]]


def _namespace(kube: Kube, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    request(kube, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    return name


@pytest.fixture
def release(kube: Kube, namespace: str) -> Iterator[Release]:
    """The chart's policies (restricted templates on) and user roles, watching the test's
    namespace and the operator's own."""
    name = f"adm{uuid.uuid4().hex[:6]}"
    operator_ns = _namespace(kube, "databuild-system")
    rendered = helm(
        "template", name, str(CHART), "--namespace", operator_ns,
        "--set", f"watchNamespaces={{{namespace},{operator_ns}}}",
        "--set", "admission.restrictedPodTemplates=true",
        "--show-only", "templates/admission.yaml",
        "--show-only", "templates/user-roles.yaml",
    ).documents()  # fmt: skip
    created = []
    try:
        for doc in rendered:
            request(kube, "POST", COLLECTIONS[doc["kind"]], doc)
            created.append(doc)
        yield Release(f"{name}-databuild-operator", operator_ns, created)
    finally:
        for doc in reversed(created):
            path = f"{COLLECTIONS[doc['kind']]}/{doc['metadata']['name']}"
            with contextlib.suppress(KubeError):
                request(kube, "DELETE", path)
        with contextlib.suppress(KubeError):
            request(kube, "DELETE", f"/api/v1/namespaces/{operator_ns}")


def _as(cluster: Cluster, user: str) -> Kube:
    """An API client whose every request is impersonating ``user``."""
    return Kube.from_kubeconfig(cluster.kubeconfig, impersonate=user)


def _create(api: Kube, namespace: str, doc: dict[str, Any]) -> dict[str, Any]:
    plural = {"JobDefinition": "jobdefinitions", "Want": "wants"}[doc["kind"]]
    return request(api, "POST", f"{GROUP}/namespaces/{namespace}/{plural}", doc)


def _refused(api: Kube, namespace: str, doc: dict[str, Any]) -> str:
    """The API server's message refusing ``doc``; fails if it was admitted."""
    try:
        _create(api, namespace, doc)
    except KubeError as error:
        assert error.status in (403, 422), error
        return str(error)
    raise AssertionError(f"{doc['kind']} {doc['metadata']['name']} was admitted in {namespace}")


def _restricted(name: str, outputs: list[str], **pod: Any) -> dict[str, Any]:
    doc = jobdef(name, outputs)
    doc["spec"]["template"]["spec"] = {**RESTRICTED_POD, **pod}
    return doc


def _bind(kube: Kube, namespace: str, role_kind: str, role: str, user: str) -> None:
    request(
        kube,
        "POST",
        f"{RBAC}/namespaces/{namespace}/rolebindings",
        {
            "metadata": {"name": f"{user}-{role}"[:63]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def test_a_tenant_without_job_rights_cannot_make_the_operator_run_pods(
    scenario: Scenario, release: Release, control_plane: Cluster
) -> None:
    kube, ns = scenario.kube, scenario.namespace
    # The policies are live once the operator's own namespace is refused, even to admins
    # (the API server loads new policies within a second or so).
    wait_until(
        lambda: _policies_live(kube, release.operator_namespace),
        timeout=30,
        what="the admission policies to take effect",
    )
    for role in ("view", "edit"):
        _bind(kube, ns, "ClusterRole", f"{release.fullname}-{role}", TENANT)
    alice = _as(control_plane, TENANT)
    try:
        # May write Wants (not claiming to be the operator's)...
        _create(alice, ns, want("mine", ["daily/date=2025-01-01"]))
        forged = want("forged", ["daily/date=2025-01-02"], source={"jobRun": "someone-else"})
        assert "spec.source is written only by the operator" in _refused(alice, ns, forged)
        # ... but no JobDefinition: it would run pods she may not create herself.
        message = _refused(alice, ns, _restricted("daily", ["daily/date={date}"]))
        assert f"{TENANT} may not create Jobs in namespace {ns}" in message

        # Granted Jobs, she may.
        request(
            kube,
            "POST",
            f"{RBAC}/namespaces/{ns}/roles",
            {
                "metadata": {"name": "job-author"},
                "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}],
            },
        )
        _bind(kube, ns, "Role", "job-author", TENANT)
        wait_until(
            lambda: _admitted(alice, ns, _restricted("daily", ["daily/date={date}"])),
            timeout=30,
            what="alice's JobDefinition to be admitted once she may create Jobs",
        )

        # Never as the operator's ServiceAccount, never with a non-restricted pod.
        as_operator = _restricted("as-operator", ["x/{d}"], serviceAccountName=release.fullname)
        assert "operator's ServiceAccount" in _refused(alice, ns, as_operator)
        host = _restricted("host", ["h/{d}"], volumes=[{"name": "root", "hostPath": {"path": "/"}}])
        assert "spec.template.spec.volumes" in _refused(alice, ns, host)
        privileged = _restricted("privileged", ["v/{d}"])
        privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
            "privileged": True
        }
        assert "privileged" in _refused(alice, ns, privileged)
    finally:
        alice.close()

    # The healthy neighbour: alice's admitted JobDefinition builds her Want.
    scenario.start_operator()
    scenario.wait_for_want("mine", "Successful", timeout=90)


def _admitted(api: Kube, namespace: str, doc: dict[str, Any]) -> bool:
    try:
        _create(api, namespace, doc)
    except KubeError as error:
        return error.status == 409  # created by an earlier poll
    return True


def _policies_live(kube: Kube, operator_namespace: str) -> bool:
    try:
        _create(kube, operator_namespace, _restricted(f"probe-{uuid.uuid4().hex[:6]}", ["p/{x}"]))
    except KubeError as error:
        return "the operator's own namespace" in str(error)
    return False
