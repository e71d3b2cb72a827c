"""The registry of kinds: one table for the gateway, the watches and the store."""

from __future__ import annotations

import pytest

from databuild.adapters.kinds import KINDS, WATCHED_KINDS, kind_info
from databuild.adapters.resources import RESOURCES
from databuild.operator.store import WorldStore


def test_every_custom_resource_is_watched_and_served_by_the_gateway() -> None:
    own = [r.KIND for r in RESOURCES]
    assert list(WATCHED_KINDS[: len(own)]) == own
    assert {k for k in WATCHED_KINDS if KINDS[k].labelled} == {"Job", "Pod"}
    assert "Event" not in WATCHED_KINDS and "Lease" not in WATCHED_KINDS
    for resource in RESOURCES:
        info = KINDS[resource.KIND]
        assert (info.group, info.version, info.plural) == (
            "databuild.dev",
            "v1alpha1",
            resource.PLURAL,
        )
        assert (
            info.collection("data")
            == f"/apis/databuild.dev/v1alpha1/namespaces/data/{resource.PLURAL}"
        )


def test_core_and_grouped_kinds_split_their_api_version() -> None:
    assert (KINDS["Pod"].group, KINDS["Pod"].version) == ("", "v1")
    assert KINDS["Pod"].collection(None) == "/api/v1/pods"
    assert (KINDS["Job"].group, KINDS["Job"].version) == ("batch", "v1")
    assert not KINDS["Lease"].has_status


def test_the_store_holds_every_watched_kind_and_no_other() -> None:
    store = WorldStore()
    for kind in WATCHED_KINDS:
        store.put(kind, {"metadata": {"name": "x", "namespace": "data", "resourceVersion": "1"}})
        assert "x" in store.objects(kind, "data")
    with pytest.raises(ValueError, match="'Secret'"):
        kind_info("Secret")
