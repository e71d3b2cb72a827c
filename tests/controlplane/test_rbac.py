"""RBAC is enforced: the apiserver runs with --authorization-mode=Node,RBAC."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .jobs import wait_for


def _client_for_token(admin: client.ApiClient, token: str) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = admin.configuration.host
    configuration.ssl_ca_cert = admin.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(configuration)


def _list_pods_status(api: client.ApiClient, namespace: str) -> int:
    try:
        client.CoreV1Api(api).list_namespaced_pod(namespace)
    except ApiException as e:
        return int(e.status)
    return 200


def test_service_account_needs_a_role_binding(kube: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    token = core.create_namespaced_service_account_token(
        "reader",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[])),
    ).status.token
    reader = _client_for_token(kube, token)
    try:
        # Authenticated (not 401) but not authorised.
        assert _list_pods_status(reader, namespace) == 403

        rbac = client.RbacAuthorizationV1Api(kube)
        rbac.create_namespaced_role(
            namespace,
            client.V1Role(
                metadata=client.V1ObjectMeta(name="pod-reader"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])],
            ),
        )
        rbac.create_namespaced_role_binding(
            namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name="reader-reads-pods"),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"
                ),
                subjects=[
                    client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
                ],
            ),
        )

        # The authorizer's informer sees the binding within moments.
        wait_for(
            "the RoleBinding to take effect",
            lambda: True if _list_pods_status(reader, namespace) == 200 else None,
            timeout=30,
        )
        # Only where it is bound.
        assert _list_pods_status(reader, "default") == 403
    finally:
        reader.close()


def test_unauthenticated_requests_are_rejected(kube: client.ApiClient) -> None:
    anonymous = _client_for_token(kube, "not-a-token")
    try:
        with pytest.raises(ApiException) as error:
            client.CoreV1Api(anonymous).list_namespace()
        assert error.value.status == 401
    finally:
        anonymous.close()
