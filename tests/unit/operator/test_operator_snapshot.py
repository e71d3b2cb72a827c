"""Snapshots: conversions are reused while an object's resourceVersion holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from databuild.adapters import codec
from databuild.operator import snapshot
from databuild.operator.store import WorldStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _part(name: str, rv: str, ref: str) -> dict[str, Any]:
    return {
        "kind": "Partition",
        "metadata": {"name": name, "namespace": "n", "resourceVersion": rv},
        "spec": {"ref": ref},
    }


def test_conversions_are_cached_per_resource_version() -> None:
    cache = snapshot.ConversionCache()
    calls: list[str] = []

    def convert(body: Any) -> str:
        calls.append(body["metadata"]["resourceVersion"])
        return str(body["spec"]["ref"])

    assert cache.convert("Partition", _part("p", "1", "a/1"), convert) == "a/1"
    assert cache.convert("Partition", _part("p", "1", "a/1"), convert) == "a/1"
    assert cache.convert("Partition", _part("p", "2", "a/1"), convert) == "a/1"
    assert calls == ["1", "2"]


def test_bad_objects_stay_bad_without_being_converted_again() -> None:
    cache = snapshot.ConversionCache()
    calls = 0

    def convert(body: Any) -> str:
        nonlocal calls
        calls += 1
        raise codec.BadObject("Want", "w", "nope")

    for _ in range(2):
        with pytest.raises(codec.BadObject):
            cache.convert("Want", _part("w", "1", "x"), convert)
    assert calls == 1


def test_build_with_cache_equals_build_without() -> None:
    store = WorldStore()
    store.put("Partition", _part("p1", "1", "a/1"))
    store.put("Partition", _part("p2", "2", "a/2"))
    cache = snapshot.ConversionCache()
    first = snapshot.build(store, "n", NOW, cache=cache)
    assert first.world.partitions == snapshot.build(store, "n", NOW).world.partitions
    store.delete("Partition", _part("p2", "3", "a/2"))
    second = snapshot.build(store, "n", NOW, cache=cache)
    assert set(second.world.partitions) == {"a/1"}
    assert len(cache._entries) == 1  # the deleted object was pruned
