"""The buffered writer: never blocks, survives outages, loses and duplicates nothing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from databuild.adapters.bel import (
    Baseline,
    BelEvent,
    BelStore,
    BelStoreUnavailable,
    BelWriter,
    EventQuery,
    RetentionPolicy,
    StoredEvent,
    open_store,
)
from databuild.adapters.bel.sqlite import SqliteBelStore
from databuild.testing.postgres import LocalPostgres

from .events import partition_event


def _events(n: int, start: int = 0) -> list[BelEvent]:
    return [partition_event(f"w/i={i}", "Missing", "Building", i) for i in range(start, start + n)]


class FlakyStore:
    """Wraps a real store; fails on command, optionally *after* committing (ambiguous)."""

    def __init__(self, inner: BelStore) -> None:
        self.inner = inner
        self.fail_next = 0
        self.fail_after_commit = False
        self.block = threading.Event()
        self.block.set()
        self.calls = 0

    @property
    def url(self) -> str:
        return self.inner.url

    def append(self, events: Sequence[BelEvent]) -> int:
        self.calls += 1
        self.block.wait()
        if self.fail_next:
            self.fail_next -= 1
            if self.fail_after_commit:
                self.inner.append(events)
                raise BelStoreUnavailable("connection lost during COMMIT")
            raise BelStoreUnavailable("connection refused")
        return self.inner.append(events)

    def migrate(self, target: int | None = None) -> int:
        return self.inner.migrate(target)

    def schema_version(self) -> int:
        return self.inner.schema_version()

    def query(self, query: EventQuery | None = None) -> list[StoredEvent]:
        return self.inner.query(query)

    def last_seq(self) -> int:
        return self.inner.last_seq()

    def delete_older_than(self, cutoff: datetime) -> int:
        return self.inner.delete_older_than(cutoff)

    def baseline(self) -> Baseline:
        return self.inner.baseline()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[FlakyStore]:
    store = FlakyStore(open_store(f"sqlite:///{tmp_path / 'bel.db'}"))
    yield store
    store.block.set()
    store.close()


def _writer(store: BelStore, **kwargs: object) -> BelWriter:
    return BelWriter(store, backoff_initial=0.01, backoff_max=0.05, **kwargs).start()  # type: ignore[arg-type]


def _stored_ids(store: BelStore) -> list[str]:
    return [s.event.event_id for s in store.query()]


def test_submitted_events_are_stored_in_order(flaky: FlakyStore) -> None:
    writer = _writer(flaky, batch_size=7)
    events = _events(50)
    for e in events:
        writer.submit([e])
    assert writer.flush(timeout=10)
    assert _stored_ids(flaky) == [e.event_id for e in events]
    health = writer.health()
    assert health.buffered == 0
    assert health.written_total == 50
    assert health.healthy
    assert writer.close()


def test_an_outage_loses_nothing_and_reports_the_error(flaky: FlakyStore) -> None:
    flaky.fail_next = 5
    writer = _writer(flaky)
    events = _events(20)
    writer.submit(events[:10])
    deadline = time.monotonic() + 5
    while writer.health().errors_total == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert writer.health().last_error is not None
    assert "connection refused" in (writer.health().last_error or "")
    writer.submit(events[10:])
    assert writer.flush(timeout=10)
    assert _stored_ids(flaky) == [e.event_id for e in events]
    health = writer.health()
    assert health.errors_total == 5
    assert health.last_error is None  # cleared by the next successful append
    assert health.dropped_total == 0
    writer.close()


def test_a_retry_after_an_ambiguous_failure_does_not_duplicate(flaky: FlakyStore) -> None:
    flaky.fail_next = 2
    flaky.fail_after_commit = True  # the insert lands, the acknowledgement is lost
    writer = _writer(flaky)
    events = _events(10)
    writer.submit(events)
    assert writer.flush(timeout=10)
    assert _stored_ids(flaky) == [e.event_id for e in events]
    assert flaky.calls >= 3
    writer.close()


def test_submit_never_waits_for_a_hanging_store(flaky: FlakyStore) -> None:
    flaky.block.clear()  # every append hangs
    writer = _writer(flaky)
    started = time.monotonic()
    for i in range(200):
        writer.submit(_events(1, start=i))
    assert time.monotonic() - started < 1.0
    assert writer.health().buffered == 200
    assert not writer.flush(timeout=0.05)
    flaky.block.set()
    assert writer.flush(timeout=10)
    assert len(_stored_ids(flaky)) == 200
    writer.close()


def test_a_full_buffer_refuses_newest_events_counts_and_logs(
    flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.block.clear()
    writer = _writer(flaky, max_buffer=10, batch_size=4)
    events = _events(15)
    with caplog.at_level(logging.ERROR, logger="databuild.adapters.bel.writer"):
        accepted = writer.submit(events)
    assert accepted == 10
    health = writer.health()
    assert health.dropped_total == 5
    assert not health.healthy
    assert any("buffer is full" in r.getMessage() for r in caplog.records)
    flaky.block.set()
    assert writer.flush(timeout=10)
    # What is stored is the gap-free prefix.
    assert _stored_ids(flaky) == [e.event_id for e in events[:10]]
    writer.close()


def test_opener_is_retried_until_the_store_can_be_opened(tmp_path: Path) -> None:
    attempts: list[int] = []
    url = f"sqlite:///{tmp_path / 'bel.db'}"

    def opener() -> BelStore:
        attempts.append(1)
        if len(attempts) < 3:
            raise BelStoreUnavailable("not yet")
        return open_store(url)

    writer = BelWriter(opener=opener, backoff_initial=0.01, backoff_max=0.02).start()
    writer.submit(_events(3))
    assert writer.flush(timeout=10)
    assert len(attempts) == 3
    assert writer.health().errors_total == 2
    writer.close()
    check = open_store(url)
    assert len(check.query()) == 3
    check.close()


def test_close_reports_events_that_could_not_be_stored(flaky: FlakyStore) -> None:
    flaky.fail_next = 10_000
    writer = _writer(flaky)
    writer.submit(_events(3))
    assert not writer.close(timeout=0.1)
    assert writer.health().buffered == 3


def test_constructor_needs_exactly_one_of_store_and_opener(flaky: FlakyStore) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BelWriter()
    with pytest.raises(ValueError, match="exactly one"):
        BelWriter(flaky, opener=lambda: flaky)


def test_retention_runs_from_the_writer_thread(flaky: FlakyStore) -> None:
    old = partition_event("old/x=1", "Missing", "Building", 0)  # 2025: long ago
    writer = _writer(flaky, retention=RetentionPolicy(days=30))
    writer.submit([old])
    assert writer.flush(timeout=10)
    deadline = time.monotonic() + 5
    while flaky.query() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flaky.query() == []
    assert flaky.baseline().retained_since is not None
    writer.close()


def test_sqlite_locked_by_another_writer_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "bel.db"
    store = SqliteBelStore(path, timeout=0.05)
    store.migrate()
    blocker = SqliteBelStore(path)
    blocker._conn.execute("BEGIN EXCLUSIVE")
    writer = BelWriter(store, backoff_initial=0.01, backoff_max=0.05).start()
    writer.submit(_events(5))
    deadline = time.monotonic() + 5
    while writer.health().errors_total == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "locked" in (writer.health().last_error or "")
    blocker._conn.execute("ROLLBACK")
    assert writer.flush(timeout=10)
    assert len(store.query()) == 5
    writer.close()
    blocker.close()
    store.close()


def test_postgres_restart_mid_stream_loses_and_duplicates_nothing() -> None:
    """Stop the real PostgreSQL server while events stream in, then start it again."""
    with LocalPostgres() as pg:
        url = pg.create_database("bel")
        store = open_store(url)
        writer = BelWriter(store, batch_size=10, backoff_initial=0.02, backoff_max=0.2).start()
        events = _events(300)
        for e in events[:100]:
            writer.submit([e])
        assert writer.flush(timeout=20)

        pg.stop(mode="immediate")  # a crash, not a polite shutdown
        for e in events[100:200]:
            writer.submit([e])
        deadline = time.monotonic() + 10
        while writer.health().errors_total == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.health().errors_total > 0
        assert writer.health().buffered > 0
        assert not writer.health().healthy

        pg.start()
        for e in events[200:]:
            writer.submit([e])
        assert writer.flush(timeout=30)
        writer.close()

        check = open_store(url)
        stored = check.query()
        assert [s.event.event_id for s in stored] == [e.event_id for e in events]
        seqs = [s.seq for s in stored]
        assert seqs == sorted(seqs)
        check.close()
        store.close()
