"""The store contract, run against both backends (SQLite and a real PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from databuild.adapters.bel import BelEvent, BelStore, EventQuery, open_store

from .events import T0, at, jobrun_event, partition_event


def _ids(store: BelStore, query: EventQuery | None = None) -> list[str]:
    return [s.event.event_id for s in store.query(query)]


def test_append_assigns_increasing_sequence_numbers_in_order(store: BelStore) -> None:
    events = [
        partition_event("raw/date=2025-01-01", "Missing", "Building", 1),
        partition_event("raw/date=2025-01-01", "Building", "Live", 2),
        partition_event("raw/date=2025-01-02", "Missing", "Building", 3),
    ]
    assert store.append(events) == 3
    stored = store.query()
    assert [s.event for s in stored] == events
    seqs = [s.seq for s in stored]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    assert store.last_seq() == seqs[-1]


def test_empty_store(store: BelStore) -> None:
    assert store.query() == []
    assert store.last_seq() == 0
    assert store.append([]) == 0


def test_round_trips_every_field(store: BelStore) -> None:
    event = jobrun_event(
        "build-summary-1a2b",
        "Running",
        "WaitingForUpstream",
        0,
        job_definition="daily-summary",
        outputs=("summary/date=2025-01-01", "summary_by_city/date=2025-01-01"),
        reason="DependencyMiss",
        jobName="build-summary-1a2b-1",
        missing=["raw/date=2025-01-01"],
        nested={"exitCode": 3, "ok": False, "note": None, "ünïcode": "✓"},
    )
    store.append([event])
    (stored,) = store.query()
    assert stored.event == event
    assert stored.event.time == T0  # microseconds survive
    assert stored.event.time.tzinfo is not None
    assert stored.event.details["nested"]["ünïcode"] == "✓"
    assert stored.to_dict()["details"]["missing"] == ["raw/date=2025-01-01"]
    assert stored.to_dict()["time"] == "2025-01-01T12:00:00.123456Z"


def test_first_event_of_an_entity_may_have_no_from_state(store: BelStore) -> None:
    event = partition_event("raw/date=2025-01-01", None, "Missing", 0)
    store.append([event])
    assert store.query()[0].event.from_state is None


def test_appending_the_same_event_again_stores_it_once(store: BelStore) -> None:
    first = partition_event("raw/date=2025-01-01", "Missing", "Building", 1)
    second = partition_event("raw/date=2025-01-01", "Building", "Live", 2)
    assert store.append([first]) == 1
    # A retry after an ambiguous failure re-sends what may already be stored.
    assert store.append([first, second]) == 1
    assert store.append([first, second]) == 0
    assert _ids(store) == [first.event_id, second.event_id]


def test_event_ids_are_stable_and_distinguish_transitions() -> None:
    a = partition_event("raw/date=2025-01-01", "Missing", "Building", 1)
    again = partition_event("raw/date=2025-01-01", "Missing", "Building", 1)
    later = partition_event("raw/date=2025-01-01", "Missing", "Building", 2)
    other_ns = partition_event("raw/date=2025-01-01", "Missing", "Building", 1, namespace="x")
    assert a.event_id == again.event_id
    assert len({a.event_id, later.event_id, other_ns.event_id}) == 3
    explicit = BelEvent("ns", "Want", "w", None, "Pending", "Created", T0, event_id="w#1")
    assert explicit.event_id == "w#1"


def _fixture_log(store: BelStore) -> list[BelEvent]:
    events = [
        partition_event("raw/date=2025-01-01", "Missing", "Building", 0),
        jobrun_event(
            "ingest-1", None, "Queued", 0, job_definition="ingest", outputs=("raw/date=2025-01-01",)
        ),
        jobrun_event(
            "ingest-1",
            "Queued",
            "Running",
            1,
            job_definition="ingest",
            outputs=("raw/date=2025-01-01",),
        ),
        jobrun_event(
            "ingest-1",
            "Running",
            "Succeeded",
            10,
            job_definition="ingest",
            outputs=("raw/date=2025-01-01",),
        ),
        partition_event("raw/date=2025-01-01", "Building", "Live", 10),
        partition_event("summary/date=2025-01-01", "Missing", "Building", 11),
        jobrun_event(
            "sum-1",
            "Running",
            "Failed",
            20,
            job_definition="summarise",
            outputs=("summary/date=2025-01-01",),
        ),
        partition_event("summary/date=2025-01-01", "Building", "Failed", 20),
        partition_event("raw/date=2025-01-01", "Missing", "Building", 5, namespace="other"),
        partition_event("odd/100%_[x]", "Missing", "Building", 30),
        partition_event("odd/1000_ax", "Missing", "Building", 31),
        partition_event("RAW/date=2025-01-01", "Missing", "Building", 32),
    ]
    store.append(events)
    return events


def test_query_by_entity(store: BelStore) -> None:
    log = _fixture_log(store)
    runs = store.query(EventQuery(kind="JobRun", name="ingest-1"))
    assert [s.event.to_state for s in runs] == ["Queued", "Running", "Succeeded"]
    assert {s.event.kind for s in store.query(EventQuery(kind="Partition"))} == {"Partition"}
    assert len(store.query(EventQuery(namespace="other"))) == 1
    assert len(store.query(EventQuery(namespace="data"))) == len(log) - 1


def test_query_by_ref_glob(store: BelStore) -> None:
    _fixture_log(store)

    def refs(glob: str) -> list[tuple[str, str]]:
        found = store.query(EventQuery(ref_glob=glob, namespace="data"))
        return [(s.event.kind, s.event.to_state) for s in found]

    assert refs("raw/*") == [
        ("Partition", "Building"),
        ("JobRun", "Queued"),
        ("JobRun", "Running"),
        ("JobRun", "Succeeded"),
        ("Partition", "Live"),
    ]
    assert refs("summary/date=2025-01-0?") == [
        ("Partition", "Building"),
        ("JobRun", "Failed"),
        ("Partition", "Failed"),
    ]
    assert refs("*date=2025-01-01") == refs("*/date=2025-01-01")
    assert len(refs("*")) == 11  # "*" crosses "/": every event in the namespace
    # Globs are case-sensitive, and %, _ and [ are literal characters of refs.
    assert refs("RAW/*") == [("Partition", "Building")]
    assert len(refs("odd/100%_[x]")) == 1
    assert len(refs("odd/100*")) == 2
    assert len(refs("odd/100%*")) == 1
    assert refs("odd/1000?ax") == [("Partition", "Building")]
    assert refs("nothing/*") == []


def test_query_by_job_definition_and_state(store: BelStore) -> None:
    _fixture_log(store)
    ingest = store.query(EventQuery(job_definition="ingest"))
    assert [s.event.to_state for s in ingest] == ["Queued", "Running", "Succeeded"]
    failed = store.query(EventQuery(state="Failed"))
    assert [(s.event.kind, s.event.name) for s in failed] == [
        ("JobRun", "sum-1"),
        ("Partition", "p-summary-date-2025-01-01"),
    ]
    combined = EventQuery(job_definition="summarise", state="Failed", kind="JobRun")
    assert len(store.query(combined)) == 1
    assert store.query(EventQuery(job_definition="summarise", state="Live")) == []


def test_query_by_time_range_since_inclusive_until_exclusive(store: BelStore) -> None:
    _fixture_log(store)
    window = store.query(EventQuery(since=at(10), until=at(20), namespace="data"))
    assert [s.event.time for s in window] == [at(10), at(10), at(11)]
    assert store.query(EventQuery(since=at(100))) == []
    before = store.query(EventQuery(until=at(1)))
    assert {s.event.time for s in before} == {at(0)}
    assert store.query(EventQuery(since=at(10), until=at(10))) == []


def test_query_after_seq_limit_and_reasons(store: BelStore) -> None:
    _fixture_log(store)
    everything = store.query()
    middle = everything[4].seq
    tail = store.query(EventQuery(after_seq=middle))
    assert tail == everything[5:]
    assert store.query(EventQuery(after_seq=middle, limit=2)) == everything[5:7]
    assert store.query(EventQuery(reasons=["Transition"])) == everything
    assert store.query(EventQuery(reasons=["Nope"])) == []
    assert store.query(EventQuery(reasons=[])) == []


def test_sequence_numbers_keep_growing_across_reopen(store_url: str) -> None:
    first = open_store(store_url)
    first.append([partition_event("a/b", "Missing", "Building", 0)])
    last = first.last_seq()
    first.close()
    again = open_store(store_url)
    again.append([partition_event("a/b", "Building", "Live", 1)])
    assert again.last_seq() > last
    assert len(again.query()) == 2
    again.close()


def test_time_of_naive_datetimes_is_taken_as_utc(store: BelStore) -> None:
    naive = T0.replace(tzinfo=None)
    event = BelEvent("ns", "Want", "w", None, "Pending", "Created", naive)
    assert event.time == T0
    store.append([event])
    assert store.query(EventQuery(since=T0 - timedelta(microseconds=1)))[0].event.time == T0


@pytest.mark.parametrize("count", [1, 250])
def test_large_batches_are_appended_atomically_in_order(store: BelStore, count: int) -> None:
    events = [partition_event(f"big/i={i}", "Missing", "Building", i) for i in range(count)]
    assert store.append(events) == count
    assert [s.event.refs[0] for s in store.query()] == [f"big/i={i}" for i in range(count)]
