"""The async client's real request paths against the in-memory API-server transport:
paging, conflicts, Status bodies turned into errors, watches and relisting."""

from __future__ import annotations

import asyncio
import base64
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.manifests import want

from databuild.adapters.kinds import KindInfo
from databuild.adapters.kube import (
    AlreadyExists,
    ApiClient,
    ConfigError,
    Conflict,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    TooLarge,
    WatchEvent,
    from_kubeconfig,
    in_cluster,
    kubeconfig_with_token,
    load,
)
from databuild.testing.memory_transport import MemoryTransport

CONFIG_MAP = KindInfo("ConfigMap", "v1", "configmaps", has_status=False)


_want = partial(want, namespace="data", state="Successful")


def _client(page_size: int = 500) -> tuple[ApiClient, MemoryTransport]:
    transport = MemoryTransport()
    return ApiClient(transport, page_size=page_size), transport


def test_a_listing_reads_every_page_and_keeps_each_object_as_it_arrives() -> None:
    api, transport = _client(page_size=2)

    async def scenario() -> None:
        for i in range(5):
            await api.create(_want(f"w{i}"))
        await api.create(_want("elsewhere", namespace="other"))
        kept: list[str] = []

        def keep(obj: dict[str, Any]) -> dict[str, Any]:
            kept.append(obj["metadata"]["name"])
            return {"name": obj["metadata"]["name"], "kind": obj["kind"]}

        listing = await api.list("Want", "data", keep=keep)
        assert [o["name"] for o in listing.items] == [f"w{i}" for i in range(5)]
        assert {o["kind"] for o in listing.items} == {"Want"}
        assert kept == [f"w{i}" for i in range(5)]
        assert listing.resource_version
        everywhere = await api.list("Want", None)
        assert len(everywhere.items) == 6

    asyncio.run(scenario())
    pages = [p for m, p in transport.requests if m == "GET" and p.endswith("/data/wants")]
    assert len(pages) == 3  # 2 + 2 + 1


def test_an_expired_continue_token_starts_the_listing_again() -> None:
    api, transport = _client(page_size=2)

    async def scenario() -> None:
        for i in range(5):
            await api.create(_want(f"w{i}"))
        pages = 0

        def keep(obj: dict[str, Any]) -> dict[str, Any]:
            nonlocal pages
            pages += 1
            if pages == 2:  # the first page is in: the token in hand now expires
                transport.compact()
            return obj

        listing = await api.list("Want", "data", keep=keep)
        assert [o["metadata"]["name"] for o in listing.items] == [f"w{i}" for i in range(5)]

    asyncio.run(scenario())
    # first page, the expired second one, then three pages from the start
    assert len([m for m, _ in transport.requests if m == "GET"]) == 5


def test_status_is_a_subresource_and_a_stale_resource_version_is_a_conflict() -> None:
    api, _ = _client()

    async def scenario() -> None:
        created = await api.create(_want("w"))
        assert "status" not in created
        with pytest.raises(AlreadyExists) as exists:
            await api.create(_want("w"))
        assert (exists.value.status, exists.value.kind, exists.value.name) == (409, "Want", "w")
        rv = created["metadata"]["resourceVersion"]
        patched = await api.patch_status(
            "Want", "data", "w", {"state": "Building"}, resource_version=rv
        )
        assert patched["status"] == {"state": "Building"}
        assert patched["metadata"]["generation"] == 1  # a status write is no spec change
        with pytest.raises(Conflict) as stale:
            await api.patch_status("Want", "data", "w", {"state": "Failed"}, resource_version=rv)
        assert stale.value.reason == "Conflict"
        assert "has been modified" in str(stale.value)
        spec = await api.patch(
            "Want", "data", "w", {"spec": {"ttlSeconds": 60}, "status": {"x": 1}}
        )
        assert spec["metadata"]["generation"] == 2
        assert spec["status"] == {"state": "Building"}  # the main resource ignores status
        replaced = await api.replace({**spec, "status": {"state": "Pending"}}, subresource="status")
        assert replaced["status"] == {"state": "Pending"}
        with pytest.raises(Conflict):
            await api.replace(spec, subresource="status")  # spec's resourceVersion is stale

    asyncio.run(scenario())


def test_a_json_patch_with_a_resource_version_is_conditional() -> None:
    api, _ = _client()

    async def scenario() -> None:
        created = await api.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"}},
            kind=CONFIG_MAP,
        )
        rv = created["metadata"]["resourceVersion"]
        ops = [{"op": "add", "path": "/data", "value": {"a": "1"}}]
        patched = await api.patch(
            CONFIG_MAP, "ns", "c", ops, patch_type="json", resource_version=rv
        )
        assert patched["data"] == {"a": "1"}
        with pytest.raises(Conflict):
            await api.patch(CONFIG_MAP, "ns", "c", ops, patch_type="json", resource_version=rv)

    asyncio.run(scenario())


def test_a_422_status_body_becomes_invalid_with_the_servers_words() -> None:
    api, transport = _client()
    transport.reject(
        "wants",
        lambda obj: (
            "spec.partitions: Required value" if not obj["spec"].get("partitions") else None
        ),
    )

    async def scenario() -> None:
        bad = _want("bad")
        bad["spec"]["partitions"] = []
        with pytest.raises(Invalid) as invalid:
            await api.create(bad)
        error = invalid.value
        assert (error.status, error.reason, error.kind, error.name, error.namespace) == (
            422,
            "Invalid",
            "Want",
            "bad",
            "data",
        )
        assert "spec.partitions: Required value" in str(error)
        assert str(error).startswith("POST Want data/bad: HTTP 422 Invalid")
        # the neighbour in the same namespace is untouched by the other's error
        good = await api.create(_want("good"))
        assert good["metadata"]["name"] == "good"
        assert [w["metadata"]["name"] for w in (await api.list("Want", "data")).items] == ["good"]

    asyncio.run(scenario())


def test_every_failure_is_one_error_type_with_the_status() -> None:
    api, transport = _client()

    async def scenario() -> None:
        with pytest.raises(NotFound) as missing:
            await api.get("Want", "data", "nope")
        assert missing.value.status == 404
        transport.fail_next(500, "etcd is down", method="GET")
        with pytest.raises(KubeError) as broken:
            await api.get("Want", "data", "nope")
        assert (type(broken.value), broken.value.status) == (KubeError, 500)
        assert "etcd is down" in str(broken.value)

    asyncio.run(scenario())


def test_delete_preconditions_and_finalizers() -> None:
    api, _ = _client()

    async def scenario() -> None:
        created = await api.create(_want("w"))
        with pytest.raises(Conflict):
            await api.delete("Want", "data", "w", uid="someone-else")
        kept = await api.patch("Want", "data", "w", {"metadata": {"finalizers": ["x/y"]}})
        await api.delete("Want", "data", "w", uid=created["metadata"]["uid"])
        pending = await api.get("Want", "data", "w")
        assert pending["metadata"]["deletionTimestamp"]
        assert kept["metadata"]["uid"] == pending["metadata"]["uid"]
        await api.patch("Want", "data", "w", {"metadata": {"finalizers": None}})
        with pytest.raises(NotFound):
            await api.get("Want", "data", "w")

    asyncio.run(scenario())


def test_a_response_over_the_size_cap_is_refused_before_decoding() -> None:
    transport = MemoryTransport()
    api = ApiClient(transport, max_body_bytes=400)

    async def scenario() -> None:
        big = _want("w")
        big["spec"]["partitions"] = [f"daily/date=2025-01-{d:02}" for d in range(1, 29)]
        with pytest.raises(TooLarge):
            await api.create(big)

    asyncio.run(scenario())


def test_a_watch_delivers_changes_and_bookmarks_and_an_expired_one_relists() -> None:
    api, transport = _client()

    async def scenario() -> list[tuple[str, str]]:
        await api.create(_want("a"))
        seen: list[tuple[str, str]] = []
        follow = api.follow("Want", "data", timeout_seconds=30)

        async def next_event() -> WatchEvent:
            return await asyncio.wait_for(anext(follow), 5)

        for _ in range(3):
            event = await next_event()
            seen.append((event.type, event.object.get("metadata", {}).get("name", "")))
        await api.create(_want("b"))
        transport.bookmark()  # moves the position on, never reaches the caller
        event = await next_event()
        seen.append((event.type, event.object["metadata"]["name"]))
        await api.delete("Want", "data", "a")
        event = await next_event()
        seen.append((event.type, event.object["metadata"]["name"]))
        # The history is compacted under the open watch: it ends with 410, and the
        # client lists again, then watches on from the new listing.
        transport.compact()
        for _ in range(3):
            event = await next_event()
            seen.append((event.type, event.object.get("metadata", {}).get("name", "")))
        await api.create(_want("c"))
        event = await next_event()
        seen.append((event.type, event.object["metadata"]["name"]))
        await follow.aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen == [
        ("LISTING", ""),
        ("ADDED", "a"),
        ("SYNCED", ""),
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("LISTING", ""),
        ("ADDED", "b"),
        ("SYNCED", ""),
        ("ADDED", "c"),
    ]


def test_a_watch_from_a_compacted_version_is_gone() -> None:
    api, transport = _client()

    async def scenario() -> None:
        created = await api.create(_want("a"))
        await api.create(_want("b"))
        transport.compact()
        with pytest.raises(Gone):
            async for _ in api.watch(
                "Want", "data", resource_version=created["metadata"]["resourceVersion"]
            ):
                pass

    asyncio.run(scenario())


def test_kubeconfig_loading_and_its_errors(tmp_path: Path) -> None:
    ca = base64.b64encode(b"-----CA-----").decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": "https://k:6443/", "certificate-authority-data": ca},
            }
        ],
        "users": [
            {"name": "u", "user": {"token": "s3cret"}},
            {"name": "plugin", "user": {"exec": {"command": "aws"}}},
        ],
        "contexts": [
            {"name": "main", "context": {"cluster": "c", "user": "u", "namespace": "data"}},
            {"name": "eks", "context": {"cluster": "c", "user": "plugin"}},
            {"name": "broken", "context": {"cluster": "missing", "user": "u"}},
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    config = from_kubeconfig(path)
    assert (config.server, config.ca_data, config.namespace) == (
        "https://k:6443",
        b"-----CA-----",
        "data",
    )
    assert config.headers() == {"Authorization": "Bearer s3cret"}
    with pytest.raises(ConfigError, match="exec or auth-provider plugin"):
        from_kubeconfig(path, "eks")
    with pytest.raises(ConfigError, match="no cluster named 'missing'"):
        from_kubeconfig(path, "broken")
    with pytest.raises(ConfigError, match="no context named 'nope'"):
        from_kubeconfig(path, "nope")
    other = kubeconfig_with_token(path, "t0k3n", "system:serviceaccount:a:b")
    (tmp_path / "other").write_text(yaml.safe_dump(other))
    again = from_kubeconfig(tmp_path / "other")
    assert (again.server, again.ca_data, again.token) == (
        "https://k:6443",
        b"-----CA-----",
        "t0k3n",
    )


def test_in_cluster_config_reads_the_rotating_token_and_comes_after_an_explicit_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("t1\n")
    (tmp_path / "ca.crt").write_bytes(b"-----CA-----")
    (tmp_path / "namespace").write_text("databuild-system")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="KUBERNETES_SERVICE_HOST is not set"):
        in_cluster(tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    config = in_cluster(tmp_path)
    assert (config.server, config.ca_data, config.namespace) == (
        "https://[fd00::1]:6443",
        b"-----CA-----",
        "databuild-system",
    )
    assert config.headers() == {"Authorization": "Bearer t1"}
    (tmp_path / "token").write_text("t2\n")
    assert config.bearer_token() == "t1"  # read again only after a minute
    config._token_cache.clear()
    assert config.bearer_token() == "t2"
    with pytest.raises(ConfigError, match="no ServiceAccount token"):
        in_cluster(tmp_path / "elsewhere")
    explicit = tmp_path / "kubeconfig"
    explicit.write_text(
        yaml.safe_dump(
            {
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k"}}],
                "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:8080"}}],
            }
        )
    )
    assert load(explicit).server == "http://127.0.0.1:8080"
    assert load(explicit).ssl_context() is None
    # In a Pod: $KUBECONFIG first (the CLI's order), the ServiceAccount first (the operator's).
    monkeypatch.setenv("KUBECONFIG", str(explicit))
    assert load().server == "http://127.0.0.1:8080"
    with pytest.raises(ConfigError, match="no ServiceAccount token"):
        load(in_cluster_first=True)  # tried first; this machine has no token
