"""``python -m databuild.bench.follow``: following a Want in a crowded namespace.

Fills a namespace with N Partitions (default 10,000) plus one Want of three, then
compares what ``databuild status`` reads (a listing of every Want, Partition and JobRun)
with what ``databuild wait``/``status --watch`` read (the Want, its Partitions by name,
then watch events), and how long a change takes to reach the follower. Prints numbers;
asserts nothing. Uses ``$DATABUILD_TEST_KUBECONFIG`` or starts a local control plane.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from databuild.adapters.kube import ApiClient
from databuild.adapters.resources import API_VERSION
from databuild.cli.follow import KubeFollower
from databuild.cli.kube import connect
from databuild.domain import PartitionRef, partition_name
from databuild.testing import ControlPlane
from databuild.testing.demo import install_crds
from databuild.testing.kube import Kube

ROOT = Path(__file__).resolve().parents[3]


async def _fill(api: ApiClient, namespace: str, count: int) -> None:
    """``count`` Partitions, eight creates in flight at a time."""
    slots = asyncio.Semaphore(8)

    async def create(i: int) -> None:
        ref = f"filler/day={i:05d}"
        body = {
            "apiVersion": API_VERSION,
            "kind": "Partition",
            "metadata": {"name": partition_name(PartitionRef(ref)), "namespace": namespace},
            "spec": {"ref": ref},
        }
        async with slots:
            await api.create(body)

    await asyncio.gather(*(create(i) for i in range(count)))


def run(kubeconfig: Path, count: int) -> None:
    """Fill a namespace, then measure a listing snapshot against the follower."""
    with Kube.from_kubeconfig(kubeconfig) as kube:
        _run(kube, kubeconfig, count)


def _run(kube: Kube, kubeconfig: Path, count: int) -> None:
    namespace = f"bench-follow-{int(time.time())}"
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    install_crds(kube, ROOT / "crds")
    started = time.monotonic()
    kube.run(_fill(kube.api, namespace, count))
    print(f"created {count} Partitions in {time.monotonic() - started:.1f}s", file=sys.stderr)
    refs = [f"wanted/day={i}" for i in range(3)]
    want = {
        "apiVersion": API_VERSION,
        "kind": "Want",
        "metadata": {"name": "followed"},
        "spec": {"partitions": refs},
    }
    kube.create(want, namespace)

    cluster = connect(kubeconfig, None, namespace)
    rows = []
    for _ in range(3):
        t = time.monotonic()
        snap = cluster.snapshot()
        rows.append(("listing snapshot (status, old want --wait poll)", time.monotonic() - t, 3))
    assert len(snap.partitions) >= count

    follower = KubeFollower(cluster.client, namespace, ["followed"])
    stream = follower.follow(tick=30.0)
    t = time.monotonic()
    first = next(stream)
    rows.append(("follower: first tree", time.monotonic() - t, follower.requests))
    assert "followed" in first.wants
    t = time.monotonic()
    kube.patch(
        "Want", namespace, "followed", {"status": {"state": "Building"}}, subresource="status"
    )
    for seen in stream:
        if seen.wants["followed"].status.state == "Building":
            break
    rows.append(("follower: a change arrives (watch)", time.monotonic() - t, follower.requests))
    print(f"\nnamespace with {count} Partitions; following 1 Want of 3 partitions\n")
    print(f"{'what':<52} {'seconds':>8} {'requests':>9}")
    for what, seconds, requests in rows:
        print(f"{what:<52} {seconds:>8.3f} {requests:>9}")
    kube.delete("Namespace", None, namespace)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m databuild.bench.follow", description=__doc__)
    p.add_argument("--partitions", type=int, default=10_000)
    args = p.parse_args(argv)
    kubeconfig = os.environ.get("DATABUILD_TEST_KUBECONFIG")
    if kubeconfig:
        run(Path(kubeconfig), args.partitions)
        return 0
    with ControlPlane() as plane:
        run(plane.kubeconfig, args.partitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
