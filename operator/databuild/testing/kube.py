"""A blocking handle on a cluster, for tests and the demo, on the product's own client.

:class:`Kube` is the boundary's :class:`~databuild.adapters.kube.ApiClient` over
:class:`~databuild.adapters.kube.HttpTransport`, run by a
:class:`~databuild.adapters.kube.BlockingClient`: raw requests by API path, and objects
by kind (a name in :data:`KINDS`: the operator's kinds and the built-in ones tests
use). Objects are plain dicts, as the API server sends them (a field it leaves out is
missing, not ``None``). Every failure is a :class:`~databuild.adapters.kube.KubeError`:
:class:`~databuild.adapters.kube.NotFound`, :class:`~databuild.adapters.kube.Forbidden`,
... each with the HTTP ``status``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from databuild.adapters import kinds
from databuild.adapters.kinds import KindInfo
from databuild.adapters.kube import (
    DEFAULT_MAX_BODY_BYTES,
    ApiClient,
    BlockingClient,
    ClusterConfig,
    HttpTransport,
    NotFound,
    PatchType,
    Propagation,
    Request,
    Response,
    StreamedResponse,
    Transport,
    load,
)

__all__ = ["KINDS", "Kube"]

_T = TypeVar("_T")

KINDS: Mapping[str, KindInfo] = {
    **kinds.KINDS,
    **{
        info.kind: info
        for info in (
            KindInfo("Namespace", "v1", "namespaces"),
            KindInfo("Node", "v1", "nodes"),
            KindInfo("ServiceAccount", "v1", "serviceaccounts", has_status=False),
            KindInfo("Service", "v1", "services"),
            KindInfo("Endpoints", "v1", "endpoints", has_status=False),
            KindInfo("ConfigMap", "v1", "configmaps", has_status=False),
            KindInfo("Secret", "v1", "secrets", has_status=False),
            KindInfo("ResourceQuota", "v1", "resourcequotas"),
            KindInfo("Deployment", "apps/v1", "deployments"),
            KindInfo("Role", "rbac.authorization.k8s.io/v1", "roles", has_status=False),
            KindInfo(
                "RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", has_status=False
            ),
            KindInfo(
                "ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", has_status=False
            ),
            KindInfo(
                "ClusterRoleBinding",
                "rbac.authorization.k8s.io/v1",
                "clusterrolebindings",
                has_status=False,
            ),
            KindInfo(
                "CustomResourceDefinition",
                "apiextensions.k8s.io/v1",
                "customresourcedefinitions",
            ),
        )
    },
}
"""Kinds by name: the operator's (:data:`databuild.adapters.kinds.KINDS`) and the
built-in kinds tests read and write. Cluster-scoped kinds (Namespace, Node, ClusterRole,
ClusterRoleBinding, CustomResourceDefinition) are addressed with namespace ``None``."""


def _info(kind: str | KindInfo) -> KindInfo:
    if isinstance(kind, KindInfo):
        return kind
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(
            f"unknown kind {kind!r}: add it to databuild.testing.kube.KINDS, or pass a KindInfo"
        ) from None


class _Impersonating:
    """A transport that sends every request as another user (``Impersonate-User``)."""

    def __init__(self, transport: Transport, user: str) -> None:
        self.transport = transport
        self.user = user

    def _as(self, request: Request) -> Request:
        return dataclasses.replace(
            request, headers={**request.headers, "Impersonate-User": self.user}
        )

    async def send(self, request: Request, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Response:
        return await self.transport.send(self._as(request), max_bytes=max_bytes)

    def stream(self, request: Request) -> AbstractAsyncContextManager[StreamedResponse]:
        return self.transport.stream(self._as(request))

    async def close(self) -> None:
        await self.transport.close()


class Kube:
    """Blocking requests to one API server with one identity; close it when done.

    ``impersonate`` sends every request as that user (the identity needs the
    ``impersonate`` verb: the admin has it). ``transport`` replaces the HTTP transport
    to ``config``'s server (``databuild.testing.memory_transport`` in unit tests).
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        impersonate: str | None = None,
        timeout: float = 30.0,
        transport: Transport | None = None,
    ) -> None:
        self.config = config
        """Where the API server is (``server``, ``ca_data``) and who this handle is."""
        if transport is None:
            transport = HttpTransport(config, connections=16, user_agent="databuild-test")
        if impersonate is not None:
            transport = _Impersonating(transport, impersonate)
        self.api = ApiClient(transport, timeout=timeout)
        """The async client underneath, for coroutines passed to :meth:`run`."""
        self._client = BlockingClient(self.api)

    @classmethod
    def from_kubeconfig(
        cls,
        kubeconfig: Path,
        context: str | None = None,
        *,
        impersonate: str | None = None,
        timeout: float = 30.0,
    ) -> Kube:
        """A handle for a kubeconfig file's current (or given) context."""
        return cls(load(kubeconfig, context), impersonate=impersonate, timeout=timeout)

    def with_token(self, token: str) -> Kube:
        """A new handle on the same API server that authenticates with ``token`` only."""
        config = dataclasses.replace(
            self.config, token=token, token_file=None, client_cert=None, client_key=None
        )
        return Kube(config, timeout=self.api.timeout)

    def impersonating(self, user: str) -> Kube:
        """A new handle with this one's credentials whose requests act as ``user``."""
        return Kube(self.config, impersonate=user, timeout=self.api.timeout)

    def close(self) -> None:
        """Close the connections (a closed handle takes no more requests)."""
        self._client.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine of :attr:`api` (or anything else) on the handle's loop."""
        return self._client.run(coro)

    # -- by path ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """One request with a JSON ``body``; the decoded response (``{}`` if empty)."""
        return self.run(
            self.api.request(method, path, body, query=query, content_type=content_type)
        )

    @staticmethod
    def path(
        kind: str | KindInfo, namespace: str | None, name: str = "", subresource: str = ""
    ) -> str:
        """The API path of a collection, an object, or an object's subresource."""
        return ApiClient.path(_info(kind), namespace, name, subresource)

    # -- by kind ----------------------------------------------------------------------

    def get(self, kind: str | KindInfo, namespace: str | None, name: str) -> dict[str, Any]:
        """One object; :class:`~databuild.adapters.kube.NotFound` if there is none."""
        return self.run(self.api.get(_info(kind), namespace, name))

    def find(self, kind: str | KindInfo, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One object, or ``None`` if there is none."""
        try:
            return self.get(kind, namespace, name)
        except NotFound:
            return None

    def list(
        self,
        kind: str | KindInfo,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` (``None``: every namespace, or a
        cluster-scoped kind's all), each with its ``kind`` and ``apiVersion``."""
        listing = self.run(
            self.api.list(
                _info(kind),
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
            )
        )
        return listing.items

    def create(
        self,
        obj: Mapping[str, Any],
        namespace: str | None = None,
        *,
        query: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        """Create ``obj`` (its ``kind`` names the API) in its own namespace, or in
        ``namespace`` when given; ``query`` e.g. ``[("dryRun", "All")]``."""
        meta = dict(obj.get("metadata") or {})
        if namespace is not None:
            meta["namespace"] = namespace
        info = _info(str(obj.get("kind")))
        return self.request(
            "POST", self.path(info, meta.get("namespace")), {**obj, "metadata": meta}, query=query
        )

    def patch(
        self,
        kind: str | KindInfo,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        subresource: str = "",
        patch_type: PatchType = "merge",
    ) -> dict[str, Any]:
        """A JSON merge patch (or a JSON patch) of an object or its ``subresource``."""
        return self.run(
            self.api.patch(
                _info(kind), namespace, name, patch, subresource=subresource, patch_type=patch_type
            )
        )

    def delete(
        self,
        kind: str | KindInfo,
        namespace: str | None,
        name: str,
        *,
        missing_ok: bool = False,
        propagation: Propagation = "Background",
    ) -> None:
        """Delete an object (its dependents as ``propagation`` says); with
        ``missing_ok``, one that does not exist is fine."""
        try:
            self.run(self.api.delete(_info(kind), namespace, name, propagation=propagation))
        except NotFound:
            if not missing_ok:
                raise

    # -- conveniences -------------------------------------------------------------------

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create a namespace and wait (up to 30 s) for its ``default`` ServiceAccount:
        pods are refused until it exists, so a first Job would wait out the Job
        controller's backoff."""
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = dict(labels)
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("ServiceAccount", name, "default")
                return
            except NotFound:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def token(
        self, namespace: str, service_account: str, *, expiration_seconds: int | None = None
    ) -> str:
        """A token of ServiceAccount ``namespace/service_account`` (the TokenRequest API)."""
        spec: dict[str, Any] = {"audiences": []}
        if expiration_seconds is not None:
            spec["expirationSeconds"] = expiration_seconds
        response = self.request(
            "POST",
            self.path("ServiceAccount", namespace, service_account, "token"),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(response["status"]["token"])
