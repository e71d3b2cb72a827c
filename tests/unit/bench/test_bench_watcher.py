"""The bench's Watcher on the product's client: handler calls, ready, label selectors."""

from __future__ import annotations

import asyncio
from typing import Any

from databuild.adapters.kube import ApiClient
from databuild.bench.kube import Watcher
from databuild.testing.memory_transport import MemoryTransport


def _job(name: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "b", "labels": {"side": label}},
        "spec": {},
    }


def test_the_watcher_hands_over_the_listing_then_the_changes_it_selects() -> None:
    kube = ApiClient(MemoryTransport())
    seen: list[tuple[str, str]] = []

    async def scenario() -> None:
        await kube.create(_job("old", "baseline"))
        await kube.create(_job("theirs", "operator"))
        watcher = Watcher(
            kube,
            "Job",
            "b",
            lambda kind, obj: seen.append((kind, obj["metadata"]["name"])),
            label_selector="side=baseline",
        ).start()
        await asyncio.wait_for(watcher.ready.wait(), 5)
        assert seen == [("ADDED", "old")]
        await kube.create(_job("new", "baseline"))
        await kube.create(_job("other", "operator"))
        await kube.patch_status("Job", "b", "old", {"succeeded": 1})
        for _ in range(100):
            if len(seen) == 3:
                break
            await asyncio.sleep(0.01)
        watcher.check()
        await watcher.stop()

    asyncio.run(scenario())
    assert seen == [("ADDED", "old"), ("ADDED", "new"), ("MODIFIED", "old")]
