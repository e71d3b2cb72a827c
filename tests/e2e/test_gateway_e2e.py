"""The real gateway and its async client against the real API server: typed errors,
conflicts, counting, paging, watches."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
from tests.manifests import want

from databuild.adapters.gateway import (
    AlreadyExists,
    Conflict,
    Invalid,
    KubernetesGateway,
    NotFound,
    ObjectReference,
)
from databuild.adapters.kube import ApiClient, HttpTransport, WatchEvent, from_kubeconfig

if TYPE_CHECKING:
    from databuild.testing import Cluster

pytestmark = pytest.mark.usefixtures("crds")


_want = partial(want, "w", state="Successful")


def _client(cluster: Cluster, page_size: int = 500) -> ApiClient:
    return ApiClient(HttpTransport(from_kubeconfig(cluster.kubeconfig)), page_size=page_size)


def test_create_get_patch_status_and_conflicts(control_plane: Cluster, namespace: str) -> None:
    gw = KubernetesGateway(_client(control_plane))

    async def scenario() -> None:
        created = await gw.create(_want(namespace=namespace))
        assert "state" not in (created.get("status") or {})  # status is a subresource
        with pytest.raises(AlreadyExists):
            await gw.create(_want(namespace=namespace))
        rv = created["metadata"]["resourceVersion"]
        patched = await gw.patch_status(
            "Want", namespace, "w", {"state": "Building"}, resource_version=rv
        )
        assert patched["status"]["state"] == "Building"
        with pytest.raises(Conflict):
            await gw.patch_status("Want", namespace, "w", {"state": "Failed"}, resource_version=rv)
        patched["status"]["state"] = "Pending"
        replaced = await gw.replace_status(patched)
        assert replaced["status"]["state"] == "Pending"
        with pytest.raises(Conflict):
            await gw.replace_status(patched)
        removed = await gw.patch_status("Want", namespace, "w", {"state": None})
        assert "state" not in (removed.get("status") or {})
        with pytest.raises(Invalid):
            await gw.patch_status("Want", namespace, "w", {"state": "Weird"})
        with pytest.raises(NotFound):
            await gw.get("Want", namespace, "nope")
        listed = await gw.list("Want", namespace)
        assert [w["metadata"]["name"] for w in listed] == ["w"]
        assert listed[0]["kind"] == "Want"
        await gw.emit_event(
            ObjectReference.of(created), type="Normal", reason="Tested", message="hello"
        )
        events = await gw.list("Event", namespace)
        assert any(e["reason"] == "Tested" and e["involvedObject"]["name"] == "w" for e in events)
        with pytest.raises(Conflict):
            await gw.delete("Want", namespace, "w", uid="not-its-uid")
        await gw.delete("Want", namespace, "w", uid=created["metadata"]["uid"])
        with pytest.raises(NotFound):
            await gw.delete("Want", namespace, "w")
        await gw.client.close()

    asyncio.run(scenario())
    assert gw.stats.writes_of(verb="create", kind="Want") == 1
    assert gw.stats.writes_of(verb="patch_status", kind="Want") == 2
    assert gw.stats.writes_of(verb="replace_status", kind="Want") == 1
    assert gw.stats.writes_of(verb="delete") == 1
    assert gw.stats.writes_of(kind="Event") == 1
    assert gw.stats.errors["create", "Want", "AlreadyExists"] == 1
    assert gw.stats.errors["patch_status", "Want", "Conflict"] == 1


def test_list_reads_in_pages_and_keeps_what_it_is_told(
    control_plane: Cluster, namespace: str
) -> None:
    client = _client(control_plane, page_size=2)
    gw = KubernetesGateway(client)
    names = [f"w{i}" for i in range(5)]

    def keep(obj: dict[str, Any]) -> dict[str, Any]:
        return {"kind": obj["kind"], "metadata": {"name": obj["metadata"]["name"]}}

    async def scenario() -> list[dict[str, Any]]:
        for name in names:
            want = _want(namespace=namespace)
            want["metadata"]["name"] = name
            await gw.create(want)
        sent = client.requests
        listed = await gw.list("Want", namespace, keep=keep)
        assert client.requests - sent == 3  # pages of 2, 2 and 1
        await client.close()
        return listed

    listed = asyncio.run(scenario())
    assert sorted(w["metadata"]["name"] for w in listed) == names
    assert all(w == {"kind": "Want", "metadata": {"name": w["metadata"]["name"]}} for w in listed)
    assert gw.stats.requests["list", "Want"] == 1


def test_follow_lists_then_watches_the_real_api_server(
    control_plane: Cluster, namespace: str
) -> None:
    client = _client(control_plane)

    async def scenario() -> list[tuple[str, str]]:
        first = _want(namespace=namespace)
        await client.create(first)
        events = client.follow("Want", namespace, timeout_seconds=5)

        async def step() -> WatchEvent:
            return await asyncio.wait_for(anext(events), 30)

        seen = [await step(), await step(), await step()]
        second = {**first, "metadata": {"name": "w2", "namespace": namespace}}
        await client.create(second)
        seen.append(await step())
        await client.delete("Want", namespace, "w")
        seen.append(await step())
        await events.aclose()
        await client.close()
        return [(e.type, e.object.get("metadata", {}).get("name", "")) for e in seen]

    assert asyncio.run(scenario()) == [
        ("LISTING", ""),
        ("ADDED", "w"),
        ("SYNCED", ""),
        ("ADDED", "w2"),
        ("DELETED", "w"),
    ]
