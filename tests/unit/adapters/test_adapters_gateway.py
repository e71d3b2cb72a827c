"""The gateway protocol's in-memory fake behaves like the API server where it matters."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest
from tests.manifests import want

from databuild.adapters.gateway import (
    AlreadyExists,
    Conflict,
    Gateway,
    GatewayError,
    GatewayStats,
    Invalid,
    KubernetesGateway,
    NotFound,
    ObjectReference,
    event_manifest,
    merge_patch,
)
from databuild.adapters.kube import ApiClient, Request, Response, error_from_response
from databuild.testing.fake_gateway import FakeGateway
from databuild.testing.memory_transport import MemoryTransport

_want = partial(want, partitions=["a"], namespace="ns", state="Successful")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_both_gateways_satisfy_the_protocol() -> None:
    gateways: list[Gateway] = [FakeGateway(), KubernetesGateway(ApiClient(MemoryTransport()))]
    assert all(isinstance(g.stats, GatewayStats) for g in gateways)


def test_create_assigns_metadata_and_ignores_status() -> None:
    gw = FakeGateway()
    created = run(gw.create(_want()))
    assert created["metadata"]["uid"]
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["resourceVersion"]
    assert "status" not in created
    assert gw.stats.writes_of(verb="create", kind="Want") == 1


def test_create_twice_is_already_exists_and_not_a_write() -> None:
    gw = FakeGateway()
    run(gw.create(_want()))
    with pytest.raises(AlreadyExists):
        run(gw.create(_want()))
    assert gw.stats.total_writes == 1
    assert gw.stats.total_requests == 2
    assert gw.stats.errors["create", "Want", "AlreadyExists"] == 1


def test_status_patch_with_stale_version_conflicts() -> None:
    gw = FakeGateway()
    created = run(gw.create(_want()))
    rv = created["metadata"]["resourceVersion"]
    patched = run(gw.patch_status("Want", "ns", "w", {"state": "Building"}, resource_version=rv))
    assert patched["status"] == {"state": "Building"}
    assert patched["metadata"]["generation"] == 1  # status writes don't bump generation
    with pytest.raises(Conflict):
        run(gw.patch_status("Want", "ns", "w", {"state": "Failed"}, resource_version=rv))
    run(gw.patch_status("Want", "ns", "w", {"state": None}))
    assert gw.stored("Want", "ns", "w")["status"] == {}  # type: ignore[index]


def test_replace_status_uses_the_objects_version() -> None:
    gw = FakeGateway()
    created = run(gw.create(_want()))
    created["status"] = {"state": "Pending"}
    replaced = run(gw.replace_status(created))
    assert replaced["status"] == {"state": "Pending"}
    with pytest.raises(Conflict):
        run(gw.replace_status(created))


def test_spec_patch_bumps_generation() -> None:
    gw = FakeGateway()
    run(gw.create(_want()))
    patched = run(gw.patch("Want", "ns", "w", {"spec": {"ttlSeconds": 5}, "status": {"x": 1}}))
    assert patched["metadata"]["generation"] == 2
    assert "status" not in patched
    labelled = run(gw.patch("Want", "ns", "w", {"metadata": {"labels": {"a": "b"}}}))
    assert labelled["metadata"]["generation"] == 2


def test_missing_objects_are_not_found() -> None:
    gw = FakeGateway()
    with pytest.raises(NotFound):
        run(gw.get("Want", "ns", "nope"))
    with pytest.raises(NotFound):
        run(gw.delete("Want", "ns", "nope"))
    with pytest.raises(NotFound):
        run(gw.patch_status("Want", "ns", "nope", {}))


def test_delete_collects_dependents() -> None:
    gw = FakeGateway()
    owner = run(
        gw.create(
            {
                "apiVersion": "databuild.dev/v1alpha1",
                "kind": "JobRun",
                "metadata": {"name": "r", "namespace": "ns"},
                "spec": {},
            }
        )
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "r-1",
            "namespace": "ns",
            "ownerReferences": [{"uid": owner["metadata"]["uid"], "kind": "JobRun"}],
        },
    }
    run(gw.create(job))
    with pytest.raises(Conflict):
        run(gw.delete("JobRun", "ns", "r", uid="other"))
    run(gw.delete("JobRun", "ns", "r", uid=owner["metadata"]["uid"]))
    assert gw.of_kind("Job") == []
    assert gw.stats.writes_of(verb="delete") == 1


def test_injected_failures() -> None:
    gw = FakeGateway()
    gw.fail_next("create", "Want", Invalid("nope", status=422))
    with pytest.raises(Invalid):
        run(gw.create(_want()))
    run(gw.create(_want()))  # only the next request fails
    assert gw.stats.total_writes == 1


def test_events_are_recorded_and_counted() -> None:
    gw = FakeGateway()
    ref = ObjectReference(kind="Want", name="w", namespace="ns", uid="u")
    run(gw.emit_event(ref, type="Normal", reason="Building", message="started"))
    assert gw.events[0].reason == "Building"
    assert gw.stats.summary() == {"event Event": 1}


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="does not handle kind"):
        run(FakeGateway().create({"kind": "Secret", "metadata": {"name": "s"}}))


def test_event_manifest() -> None:
    ref = ObjectReference(kind="JobRun", name="r", namespace="ns", uid="u")
    first = event_manifest(ref, type="Warning", reason="Failed", message="x" * 5000, action="A")
    second = event_manifest(ref, type="Warning", reason="Failed", message="m", action="A")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    assert first["involvedObject"] == {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobRun",
        "name": "r",
        "namespace": "ns",
        "uid": "u",
    }
    assert len(first["message"]) == 1024
    assert first["type"] == "Warning"


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}}
    patch = {"a": "z", "c": {"f": None}, "l": [1]}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [1]}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}}


@pytest.mark.parametrize(
    ("status", "reason", "error"),
    [
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", AlreadyExists),
        (409, "Conflict", Conflict),
        (422, "Invalid", Invalid),
    ],
)
def test_api_errors_are_typed(status: int, reason: str, error: type[Exception]) -> None:
    body = f'{{"kind": "Status", "reason": "{reason}", "message": "details"}}'.encode()
    mapped = error_from_response(status, body, "POST /x")
    assert type(mapped) is error
    assert isinstance(mapped, GatewayError)
    assert "details" in str(mapped)


class _RecordingTransport(MemoryTransport):
    """The in-memory API server, keeping each request's timeout; requests to paths
    containing ``hold`` wait until ``release`` is set."""

    def __init__(self, hold: str = "\0") -> None:
        super().__init__()
        self.timeouts: list[float | None] = []
        self.hold = hold
        self.release = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def send(self, request: Request, *, max_bytes: int = 0) -> Response:
        self.timeouts.append(request.timeout)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hold in request.path:
                await asyncio.wait_for(self.release.wait(), 10)
            return await super().send(request, max_bytes=max_bytes)
        finally:
            self.in_flight -= 1


def test_writes_never_outlive_the_leaders_term() -> None:
    transport = _RecordingTransport()
    budget: list[float | None] = [2.5]
    gw = KubernetesGateway(
        ApiClient(transport), request_timeout=30.0, write_budget=lambda: budget[0]
    )
    run(gw.create(_want()))
    run(gw.get("Want", "ns", "w"))  # reads are not writes: the usual timeout
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
    run(gw.create({**lease, "metadata": {"name": "l", "namespace": "ns"}}))  # wins terms
    assert transport.timeouts == [2.5, 30.0, 30.0]
    budget[0] = 0.0
    with pytest.raises(GatewayError, match="not sent, leadership has lapsed"):
        run(gw.create(_want("late")))
    assert len(transport.timeouts) == 3
    assert gw.stats.errors["create", "Want", "KubeError"] == 1
    budget[0] = None  # leader election off
    run(gw.create(_want("any")))
    assert transport.timeouts[-1] == 30.0


def test_requests_in_flight_are_bounded_by_the_gateway() -> None:
    transport = _RecordingTransport(hold="/wants")
    gw = KubernetesGateway(ApiClient(transport), max_in_flight=16)

    async def forty() -> None:
        writes = [asyncio.ensure_future(gw.create(_want(f"w{i}"))) for i in range(40)]
        await asyncio.sleep(0.05)
        assert transport.in_flight == 16  # as many as allowed, and no more
        transport.release.set()
        await asyncio.gather(*writes)

    run(forty())
    assert transport.most_in_flight == 16
    assert gw.stats.writes_of(verb="create", kind="Want") == 40


def test_a_lease_renewal_never_waits_behind_writes() -> None:
    transport = _RecordingTransport(hold="/wants")
    gw = KubernetesGateway(ApiClient(transport), max_in_flight=2)
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}

    async def renew_while_writes_hang() -> None:
        writes = [asyncio.ensure_future(gw.create(_want(f"w{i}"))) for i in range(4)]
        await asyncio.sleep(0.05)  # every write lane now waits on the API server
        await asyncio.wait_for(
            gw.create({**lease, "metadata": {"name": "l", "namespace": "ns"}}), timeout=5
        )
        assert not any(w.done() for w in writes)
        transport.release.set()
        await asyncio.gather(*writes)

    run(renew_while_writes_hang())
    assert len(transport.timeouts) == 5


def test_the_real_gateway_pages_listings_and_maps_errors() -> None:
    transport = _RecordingTransport()
    gw = KubernetesGateway(ApiClient(transport, page_size=2))

    async def scenario() -> None:
        for i in range(5):
            await gw.create(_want(f"w{i}"))
        names = [w["metadata"]["name"] for w in await gw.list("Want", "ns")]
        assert names == [f"w{i}" for i in range(5)]
        with pytest.raises(AlreadyExists):
            await gw.create(_want("w0"))
        with pytest.raises(NotFound):
            await gw.delete("Want", "ns", "nope")

    run(scenario())
    assert gw.stats.requests["list", "Want"] == 1
    assert gw.stats.codes["create", "Want", "409"] == 1
    assert gw.stats.errors["delete", "Want", "NotFound"] == 1
