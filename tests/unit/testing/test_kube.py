"""The harness's blocking handle (databuild.testing.kube.Kube) on the product's client,
against the in-memory API-server transport."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager

import pytest
from tests.manifests import want

from databuild.adapters.kube import (
    DEFAULT_MAX_BODY_BYTES,
    AlreadyExists,
    ClusterConfig,
    NotFound,
    Request,
    Response,
    StreamedResponse,
)
from databuild.testing.kube import KINDS, Kube
from databuild.testing.memory_transport import MemoryTransport

CONFIG = ClusterConfig(server="https://127.0.0.1:6443", token="admin")


class Recording:
    """A transport that keeps every request's headers, then hands it on."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.headers: list[dict[str, str]] = []

    async def send(self, request: Request, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Response:
        self.headers.append(dict(request.headers))
        return await self.transport.send(request, max_bytes=max_bytes)

    def stream(self, request: Request) -> AbstractAsyncContextManager[StreamedResponse]:
        self.headers.append(dict(request.headers))
        return self.transport.stream(request)

    async def close(self) -> None:
        await self.transport.close()


@pytest.fixture
def kube() -> Iterator[Kube]:
    with Kube(CONFIG, transport=MemoryTransport()) as handle:
        yield handle


def test_objects_by_kind_are_plain_dicts(kube: Kube) -> None:
    kube.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, "data")
    created = kube.create(want("w", ["raw/date=2025-01-01"]), "data")
    assert created["metadata"]["namespace"] == "data"
    assert kube.get("Want", "data", "w")["spec"]["partitions"] == ["raw/date=2025-01-01"]
    assert [o["metadata"]["name"] for o in kube.list("Want", "data")] == ["w"]
    assert kube.list("Want", "elsewhere") == []
    assert [o["kind"] for o in kube.list("ConfigMap")] == ["ConfigMap"]

    patched = kube.patch(
        "Want", "data", "w", {"status": {"state": "Building"}}, subresource="status"
    )
    assert patched["status"]["state"] == "Building"
    assert kube.find("Want", "data", "w") is not None

    kube.delete("Want", "data", "w")
    assert kube.find("Want", "data", "w") is None
    kube.delete("Want", "data", "w", missing_ok=True)
    with pytest.raises(NotFound) as missing:
        kube.delete("Want", "data", "w")
    assert missing.value.status == 404


def test_raw_requests_raise_the_boundarys_errors(kube: Kube) -> None:
    collection = kube.path("Want", "data")
    assert collection == "/apis/databuild.dev/v1alpha1/namespaces/data/wants"
    kube.request("POST", collection, want("w", ["raw/date=2025-01-01"]))
    with pytest.raises(AlreadyExists) as twice:
        kube.request("POST", collection, want("w", ["raw/date=2025-01-01"]))
    assert twice.value.status == 409
    with pytest.raises(NotFound):
        kube.request("GET", f"{collection}/nope")
    listed = kube.request("GET", collection, query=[("limit", "1")])
    assert [o["metadata"]["name"] for o in listed["items"]] == ["w"]


def test_cluster_scoped_kinds_take_no_namespace() -> None:
    assert Kube.path("Namespace", None, "data") == "/api/v1/namespaces/data"
    assert Kube.path("ServiceAccount", "data", "default", "token") == (
        "/api/v1/namespaces/data/serviceaccounts/default/token"
    )
    assert KINDS["ClusterRole"].collection(None) == (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles"
    )
    with pytest.raises(ValueError, match="unknown kind 'Gadget'"):
        Kube.path("Gadget", "data")


def test_impersonation_and_tokens_make_new_identities() -> None:
    recording = Recording(MemoryTransport())
    with Kube(CONFIG, transport=recording, impersonate="mallory") as mallory:
        mallory.list("Want", "data")
    assert recording.headers[-1]["Impersonate-User"] == "mallory"

    with Kube(CONFIG, transport=MemoryTransport()) as admin, admin.with_token("t0ken") as other:
        assert other.config.server == CONFIG.server
        assert other.config.bearer_token() == "t0ken"
        assert other.config.client_cert is None
