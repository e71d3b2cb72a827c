"""Schema migrations: a version table, applied in order, idempotent, concurrent-safe."""

from __future__ import annotations

import threading

import pytest

from databuild.adapters.bel import BelStoreError, open_store

from .events import partition_event


def test_a_new_database_is_migrated_to_the_newest_version(store_url: str) -> None:
    raw = open_store(store_url, migrate=False)
    assert raw.schema_version() == 0
    version = raw.migrate()
    assert version >= 2
    assert raw.schema_version() == version
    raw.close()


def test_migrating_again_changes_nothing(store_url: str) -> None:
    store = open_store(store_url)
    version = store.schema_version()
    store.append([partition_event("a/x=1", "Missing", "Building", 0)])
    assert store.migrate() == version
    other = open_store(store_url, migrate=False)
    assert other.migrate() == version
    other.close()
    assert len(store.query()) == 1
    store.close()


def test_upgrading_from_an_older_version_keeps_the_events(store_url: str) -> None:
    old = open_store(store_url, migrate=False)
    assert old.migrate(target=1) == 1
    event = partition_event("a/x=1", "Missing", "Building", 0)
    old.append([event])
    old.close()

    new = open_store(store_url)
    assert new.schema_version() >= 2
    assert [s.event for s in new.query()] == [event]
    # The newer schema's features work on the upgraded data.
    assert new.delete_older_than(event.time) == 0
    assert new.baseline().retained_since == event.time
    new.close()


def test_an_unknown_target_version_is_refused(store_url: str) -> None:
    store = open_store(store_url, migrate=False)
    with pytest.raises(BelStoreError, match="unknown to this version"):
        store.migrate(target=999)
    store.close()


def test_concurrent_migrations_apply_each_version_once(store_url: str) -> None:
    stores = [open_store(store_url, migrate=False) for _ in range(4)]
    errors: list[BaseException] = []
    versions: list[int] = []

    def run(i: int) -> None:
        try:
            versions.append(stores[i].migrate())
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(versions)) == 1
    for s in stores:
        s.close()
