"""Retention: the only deletion; what it deletes, and what it keeps for replay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from databuild.adapters.bel import BelStore, EntityKey, EventQuery, RetentionPolicy

from .events import T0, at, partition_event


def _log(store: BelStore) -> None:
    store.append(
        [
            partition_event("a/x=1", "Missing", "Building", 0),
            partition_event("a/x=1", "Building", "Live", 5),
            partition_event("b/x=1", "Missing", "Building", 8),
            partition_event("b/x=1", "Building", "Failed", 12),
            partition_event("c/x=1", "Missing", "Building", 20),
        ]
    )


def test_deletes_only_events_older_than_the_cutoff(store: BelStore) -> None:
    _log(store)
    assert store.delete_older_than(at(8)) == 2
    remaining = store.query()
    assert [s.event.time for s in remaining] == [at(8), at(12), at(20)]
    # The ref index goes with the events.
    assert store.query(EventQuery(ref_glob="a/*")) == []
    assert len(store.query(EventQuery(ref_glob="b/*"))) == 2


def test_keeps_each_pruned_entity_state_as_the_baseline(store: BelStore) -> None:
    _log(store)
    assert store.baseline().retained_since is None
    store.delete_older_than(at(10))
    base = store.baseline()
    assert base.retained_since == at(10)
    states = {key.name: state for key, (_, state) in base.states.items()}
    assert states == {"p-a-x-1": "Live", "p-b-x-1": "Building"}
    key = EntityKey("data", "Partition", "p-b-x-1")
    seq, _ = base.states[key]
    assert seq < min(s.seq for s in store.query())
    # A later, wider cut moves the baseline on.
    store.delete_older_than(at(15))
    assert store.baseline().states[key][1] == "Failed"
    assert store.baseline().retained_since == at(15)


def test_a_narrower_cut_does_not_move_retained_since_back(store: BelStore) -> None:
    _log(store)
    store.delete_older_than(at(10))
    assert store.delete_older_than(at(1)) == 0
    assert store.baseline().retained_since == at(10)


def test_sequence_numbers_are_never_reused_after_deletion(store: BelStore) -> None:
    _log(store)
    last = store.last_seq()
    store.delete_older_than(at(100))
    assert store.query() == []
    store.append([partition_event("d/x=1", "Missing", "Building", 200)])
    assert store.query()[0].seq > last


def test_retention_policy_cuts_days_before_now(store: BelStore) -> None:
    _log(store)
    policy = RetentionPolicy(days=1)
    now = T0 + timedelta(days=1, seconds=9)
    assert policy.cutoff(now) == at(9)
    assert policy.apply(store, now=now) == 3
    assert len(store.query()) == 2


def test_retention_days_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RetentionPolicy(days=0)
