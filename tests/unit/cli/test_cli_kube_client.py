"""The CLI's real cluster access (KubeCluster, the follower, pod logs) on the product's
async client, against the in-memory API-server transport: the same code as on a real
cluster, without one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from tests.manifests import want

from databuild.adapters.kube import ApiClient, BlockingClient
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.follow import KubeFollower
from databuild.cli.kube import KubeCluster
from databuild.testing.memory_transport import MemoryTransport


@pytest.fixture
def cluster() -> Iterator[tuple[KubeCluster, MemoryTransport]]:
    transport = MemoryTransport()
    client = BlockingClient(ApiClient(transport, page_size=2))
    try:
        yield KubeCluster(client, "data"), transport
    finally:
        client.close()


def test_wants_are_created_read_and_listed_across_pages_and_namespaces(
    cluster: tuple[KubeCluster, MemoryTransport],
) -> None:
    kube, _ = cluster
    for i in range(3):
        created = kube.create_want(want(f"w{i}"))
        assert (created.metadata.name, created.metadata.namespace) == (f"w{i}", "data")
    kube.in_namespace("other").create_want(want("elsewhere"))
    assert kube.get_want("w1").spec.partitions == ["daily/date=2025-01-01"]
    assert sorted(kube.snapshot().wants) == ["w0", "w1", "w2"]
    assert kube.namespaces() == ["data", "other"]
    with pytest.raises(CliError) as missing:
        kube.get_want("nope")
    assert missing.value.code == ExitCode.NOT_FOUND
    assert "Want 'nope' in namespace data: not found" in str(missing.value)


def test_a_server_error_says_what_failed_and_exits_unavailable(
    cluster: tuple[KubeCluster, MemoryTransport],
) -> None:
    kube, transport = cluster
    transport.fail_next(500, "etcd is down")
    with pytest.raises(CliError) as failed:
        kube.snapshot()
    assert failed.value.code == ExitCode.UNAVAILABLE
    assert "listing wants in namespace data: 500" in str(failed.value)


def test_the_follower_reads_by_name_then_applies_watch_events(
    cluster: tuple[KubeCluster, MemoryTransport],
) -> None:
    kube, transport = cluster
    kube.create_want(want("followed", ["a/x=1"]))
    kube.create_want(want("other", ["b/x=1"]))
    follower = KubeFollower(kube.client, "data", ["followed"])
    stream = follower.follow(tick=5.0)
    first = next(stream)
    assert sorted(first.wants) == ["followed"]
    api = kube.client.api
    kube.client.run(api.patch_status("Want", "data", "other", {"state": "Building"}))
    kube.client.run(api.patch_status("Want", "data", "followed", {"state": "Building"}))
    seen = next(stream)
    assert seen.wants["followed"].status.state == "Building"
    before = follower.requests

    async def compact() -> None:
        transport.compact()  # the watches end with 410 Gone: everything is read again

    kube.client.run(compact())
    again = next(stream)
    assert sorted(again.wants) == ["followed"]
    assert follower.requests >= before + 3 + 1  # three versions and the Want read again
    stream.close()


def test_pod_logs_are_streamed_line_by_line(
    cluster: tuple[KubeCluster, MemoryTransport],
) -> None:
    kube, transport = cluster
    kube.client.run(
        kube.client.api.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "run-1-abcde",
                    "namespace": "data",
                    "labels": {"databuild.dev/job-run": "run"},
                    "annotations": {"databuild.dev/attempt": "1"},
                },
                "spec": {"containers": [{"name": "main"}]},
            }
        )
    )
    logs = kube.pod_logs()
    pods = logs.pods("run")
    assert [(p.name, p.attempt, p.containers) for p in pods] == [("run-1-abcde", 1, ("main",))]
    transport.logs["data", "run-1-abcde"] = "reading input\nwriting output\ndone"
    lines = list(logs.read(pods[0], "main", tail=None, follow=False))
    assert lines == ["reading input", "writing output", "done"]
    assert list(logs.read(pods[0], "main", tail=1, follow=False)) == ["done"]
    assert transport.requests[-1] == ("GET", "/api/v1/namespaces/data/pods/run-1-abcde/log")
    gone = dataclasses.replace(pods[0], name="deleted")
    with pytest.raises(CliError) as missing:
        list(logs.read(gone, "main", tail=None, follow=False))
    assert missing.value.code == ExitCode.NOT_FOUND
