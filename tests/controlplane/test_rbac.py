"""RBAC is enforced: the apiserver runs with --authorization-mode=Node,RBAC."""

from __future__ import annotations

import pytest

from databuild.adapters.kube import KubeError
from databuild.testing.kube import Kube

from .jobs import wait_for


def _list_pods_status(api: Kube, namespace: str) -> int:
    try:
        api.list("Pod", namespace)
    except KubeError as e:
        return e.status
    return 200


def test_service_account_needs_a_role_binding(kube: Kube, namespace: str) -> None:
    kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}}, namespace
    )
    token = kube.token(namespace, "reader")
    with kube.with_token(token) as reader:
        # Authenticated (not 401) but not authorised.
        assert _list_pods_status(reader, namespace) == 403

        kube.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
            },
            namespace,
        )
        kube.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "reader-reads-pods"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pod-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
            namespace,
        )

        # The authorizer's informer sees the binding within moments.
        wait_for(
            "the RoleBinding to take effect",
            lambda: True if _list_pods_status(reader, namespace) == 200 else None,
            timeout=30,
        )
        # Only where it is bound.
        assert _list_pods_status(reader, "default") == 403


def test_unauthenticated_requests_are_rejected(kube: Kube) -> None:
    with kube.with_token("not-a-token") as anonymous:
        with pytest.raises(KubeError) as error:
            anonymous.list("Namespace")
        assert error.value.status == 401
