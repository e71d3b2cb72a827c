"""The operator's watches against the in-memory API server: listing, events, relisting
after 410 Gone (dropping what was deleted meanwhile), a refused kind retried without
stopping the others; and the liveness endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import pytest
from tests.manifests import want

from databuild.adapters.kinds import WATCHED_KINDS
from databuild.adapters.kube import ApiClient
from databuild.adapters.kube.transport import Request, Response
from databuild.operator import watches as watches_module
from databuild.operator.health import HealthServer
from databuild.operator.main import Operator
from databuild.operator.settings import load
from databuild.operator.store import WorldStore
from databuild.operator.watches import Watches
from databuild.testing.memory_transport import MemoryTransport

_want = partial(want, namespace="data")


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _run(scenario: Callable[[ApiClient, MemoryTransport], Awaitable[None]]) -> None:
    transport = MemoryTransport()
    api = ApiClient(transport)

    async def main() -> None:
        await scenario(api, transport)

    asyncio.run(asyncio.wait_for(main(), 30))


def test_listing_every_kind_syncs_then_events_reach_the_store() -> None:
    async def scenario(api: ApiClient, transport: MemoryTransport) -> None:
        await api.create(_want("before"))
        await api.create(_want("elsewhere", namespace="other"))
        store = WorldStore()
        w = Watches(api, store, ["data"], timeout_seconds=30)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.synced.wait(), 5)
        listed = {path for method, path in transport.requests if method == "GET"}
        # Every watched kind was listed in the served namespace (and only there).
        assert len([p for p in listed if "/namespaces/data/" in p]) >= len(WATCHED_KINDS)
        assert not [p for p in listed if "/namespaces/other/" in p]
        assert set(store.objects("Want", "data")) == {"before"}
        assert store.get("Want", "other", "elsewhere") is None

        await api.create(_want("after"))
        await _until(lambda: store.get("Want", "data", "after") is not None, "ADDED")
        await api.patch("Want", "data", "after", {"metadata": {"labels": {"x": "1"}}})
        await _until(
            lambda: (
                (store.get("Want", "data", "after") or {})["metadata"].get("labels") == {"x": "1"}
            ),
            "MODIFIED",
        )
        await api.delete("Want", "data", "before")
        await _until(lambda: store.get("Want", "data", "before") is None, "DELETED")
        assert w.events >= 3
        task.cancel()

    _run(scenario)


def test_an_expired_watch_lists_again_and_drops_what_was_deleted_meanwhile() -> None:
    async def scenario(api: ApiClient, transport: MemoryTransport) -> None:
        await api.create(_want("kept"))
        await api.create(_want("gone"))
        store = WorldStore()
        w = Watches(api, store, ["data"], timeout_seconds=30)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.synced.wait(), 5)
        assert set(store.objects("Want", "data")) == {"kept", "gone"}
        # The delete and the compaction happen before the watch can deliver the
        # DELETED event: the watch ends with 410 Gone and never reports it.
        transport.objects[("databuild.dev/v1alpha1", "wants")].pop(("data", "gone"))
        transport.compact()
        await _until(lambda: store.get("Want", "data", "gone") is None, "the relisting")
        assert store.get("Want", "data", "kept") is not None
        # And it watches on from the new listing.
        await api.create(_want("new"))
        await _until(lambda: store.get("Want", "data", "new") is not None, "the new watch")
        task.cancel()

    _run(scenario)


class _WriteDuringListing(MemoryTransport):
    """Creates a Want and records it in ``store`` (as the executor records its own writes)
    while the next listing of Wants is on its way back."""

    store: WorldStore | None = None

    async def send(self, request: Request, *, max_bytes: int = 0) -> Response:
        response = await super().send(request, max_bytes=max_bytes)
        listing = request.method == "GET" and request.path.endswith("/wants")
        if self.store is not None and listing and ("watch", "true") not in request.query:
            store, self.store = self.store, None
            store.put("Want", await ApiClient(self).create(_want("recorded")))
        return response


def test_a_relisting_keeps_what_the_operator_wrote_while_it_ran() -> None:
    transport = _WriteDuringListing()
    api = ApiClient(transport)

    async def scenario() -> None:
        await api.create(_want("kept"))
        store = WorldStore()
        w = Watches(api, store, ["data"], timeout_seconds=30)
        task = asyncio.create_task(w.run())
        await asyncio.wait_for(w.synced.wait(), 5)
        dropped: list[str] = []
        delete = store.delete

        def recording_delete(kind: str, obj: Mapping[str, Any]) -> bool:
            dropped.append(obj["metadata"]["name"])
            return delete(kind, obj)

        store.delete = recording_delete  # type: ignore[method-assign]
        transport.store = store
        transport.compact()  # the Wants' watch ends with 410 Gone: it lists again
        await _until(lambda: transport.store is None, "the relisting")
        await _until(lambda: store.get("Want", "data", "recorded") is not None, "the watch")
        await asyncio.sleep(0.05)
        # Newer than the listing, so the listing's absence says nothing about it.
        assert dropped == []
        assert set(store.objects("Want", "data")) == {"kept", "recorded"}
        task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_kind_the_operator_may_not_list_is_retried_and_stops_no_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watches_module, "_FIRST_DELAY", 0.01)

    async def scenario(api: ApiClient, transport: MemoryTransport) -> None:
        transport.fail_next(403, "pods is forbidden", method="GET", plural="pods")
        await api.create(_want("w"))
        store = WorldStore()
        w = Watches(api, store, ["data"], timeout_seconds=30)
        task = asyncio.create_task(w.run())
        await _until(lambda: store.get("Want", "data", "w") is not None, "the Wants")
        # The refused kind is listed again; only then is the world synced.
        await asyncio.wait_for(w.synced.wait(), 5)
        pod_lists = [p for m, p in transport.requests if m == "GET" and p.endswith("/pods")]
        assert len(pod_lists) >= 2
        await api.create(_want("w2"))
        await _until(lambda: store.get("Want", "data", "w2") is not None, "a later Want")
        task.cancel()

    _run(scenario)


def test_the_operator_plans_only_once_its_watches_listed_every_kind() -> None:
    async def scenario(api: ApiClient, transport: MemoryTransport) -> None:
        operator = Operator(load(["-n", "data"], env={}), api=api)
        assert operator.watches is not None and not operator.synced.is_set()
        task = asyncio.create_task(operator.watches.run())
        await asyncio.wait_for(operator.synced.wait(), 5)
        lists = {p.rsplit("/", 1)[1] for m, p in transport.requests if m == "GET"}
        assert {"jobdefinitions", "wants", "partitions", "jobruns", "jobs", "pods"} <= lists
        assert {"schedules", "taintrequests", "concurrencypools"} <= lists
        assert not [m for m, _ in transport.requests if m != "GET"]  # nothing written
        task.cancel()

    _run(scenario)


async def _http_get(port: int, request: bytes) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode(), body


def test_the_liveness_endpoint_answers_on_the_event_loop() -> None:
    async def scenario() -> None:
        synced = asyncio.Event()
        server = HealthServer(0, address="127.0.0.1", synced=synced.is_set)
        await server.start()
        try:
            status, body = await _http_get(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
            assert status == "HTTP/1.1 200 OK"
            assert body == b'{"synced": false, "leading": true}'
            synced.set()
            _, body = await _http_get(server.port, b"GET /healthz?verbose HTTP/1.1\r\n\r\n")
            assert b'"synced": true' in body
            status, _ = await _http_get(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
            assert status == "HTTP/1.1 404 Not Found"
            status, _ = await _http_get(server.port, b"garbage\r\n\r\n")
            assert status == "HTTP/1.1 404 Not Found"
        finally:
            await server.stop()

    asyncio.run(asyncio.wait_for(scenario(), 10))
