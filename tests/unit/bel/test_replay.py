"""replay_at: the states at time T, from the log, using the domain's replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from databuild.adapters.bel import (
    BelEvent,
    BelStore,
    EntityKey,
    HistoryTruncated,
    from_domain,
    replay_at,
    to_domain,
)
from databuild.domain import EntityKind, Event, IllegalTransition, JobDefinition, World, replay
from databuild.domain.simulation import Simulator
from databuild.domain.world import JobOutcome, JobRun, OutcomeKind, Retry

START = datetime(2025, 3, 1, tzinfo=UTC)


def _world() -> World:
    return World(
        job_definitions={
            "raw": JobDefinition("raw", ("raw/date={date}",)),
            "daily": JobDefinition("daily", ("daily/date={date}",), ("raw/date={date}",)),
            "flaky": JobDefinition("flaky", ("flaky/date={date}",), retry=Retry(1, 0)),
        }
    )


def _fail_first_flaky(run: JobRun, attempt: int) -> JobOutcome:
    if run.job_definition == "flaky" and attempt == 1:
        return JobOutcome(run.name, attempt, OutcomeKind.FAILED, exit_code=1)
    return JobOutcome(run.name, attempt, OutcomeKind.SUCCEEDED)


def _simulate() -> Simulator:
    sim = Simulator(_world(), START, script=_fail_first_flaky)
    sim.add_want("daily", ["daily/date=2025-01-01"])
    sim.run_until_quiet()
    sim.add_want("flaky", ["flaky/date=2025-01-01"])
    sim.run_until_quiet()
    return sim


def _record(sim: Simulator, namespace: str = "data") -> list[BelEvent]:
    runs = sim.world.job_runs
    out = []
    for e in sim.log:
        if e.kind is EntityKind.JOB_RUN:
            run = runs[e.name]
            out.append(
                from_domain(e, namespace, refs=run.partitions, job_definition=run.job_definition)
            )
        else:
            out.append(from_domain(e, namespace))
    return out


def _domain_states(events: list[Event], namespace: str = "data") -> dict[EntityKey, str]:
    # Users create Wants, so the planner's log never has their creation event.
    created: list[Event] = []
    seen: set[str] = set()
    for e in events:
        if e.kind is EntityKind.WANT and e.name not in seen:
            seen.add(e.name)
            if e.from_state == "Pending":
                created.append(Event(e.time, e.kind, e.name, None, "Pending", "Observed"))
        created.append(e)
    return {EntityKey(namespace, str(k), n): s for (k, n), s in replay(created).items()}


def test_domain_events_round_trip_through_the_store(store: BelStore) -> None:
    sim = _simulate()
    store.append(_record(sim))
    back = [to_domain(s.event) for s in store.query()]
    assert back == sim.log


def test_partition_and_jobrun_events_are_indexed_by_ref_and_job(store: BelStore) -> None:
    sim = _simulate()
    recorded = _record(sim)
    assert all(e.refs for e in recorded if e.kind != "Want")
    run_events = [e for e in recorded if e.kind == "JobRun"]
    assert {e.job_definition for e in run_events} == {"raw", "daily", "flaky"}


def test_replay_at_every_event_time_matches_the_domain_replay(store: BelStore) -> None:
    sim = _simulate()
    store.append(_record(sim))
    times = sorted({e.time for e in sim.log})
    assert len(times) > 3
    for t in times:
        expected = _domain_states([e for e in sim.log if e.time <= t])
        assert replay_at(store, t, namespace="data") == expected, t
    assert replay_at(store, times[0] - timedelta(seconds=1)) == {}


def test_replay_at_the_end_reproduces_the_current_states(store: BelStore) -> None:
    sim = _simulate()
    store.append(_record(sim))
    states = replay_at(store, sim.now + timedelta(days=1), namespace="data")
    for ref, part in sim.world.partitions.items():
        assert states[EntityKey("data", "Partition", part.name)] == part.state.STATE, ref
    for name, run in sim.world.job_runs.items():
        assert states[EntityKey("data", "JobRun", name)] == run.state.STATE
    for name, want in sim.world.wants.items():
        assert states[EntityKey("data", "Want", name)] == want.state.STATE
    # The flaky run failed once and was retried: its log shows both attempts.
    flaky_run = next(n for n, r in sim.world.job_runs.items() if r.job_definition == "flaky")
    assert states[EntityKey("data", "JobRun", flaky_run)] == "Succeeded"


def test_namespaces_are_replayed_separately(store: BelStore) -> None:
    sim = _simulate()
    store.append(_record(sim, "a"))
    store.append(_record(sim, "b"))
    late = sim.now + timedelta(days=1)
    only_a = replay_at(store, late, namespace="a")
    both = replay_at(store, late)
    assert {k.namespace for k in only_a} == {"a"}
    assert len(both) == 2 * len(only_a)


def test_replay_after_retention_starts_from_the_baseline(store: BelStore) -> None:
    sim = _simulate()
    store.append(_record(sim))
    times = sorted({e.time for e in sim.log})
    cutoff = times[len(times) // 2]
    expected_end = replay_at(store, sim.now)
    expected_mid = replay_at(store, cutoff)
    assert store.delete_older_than(cutoff) > 0
    assert replay_at(store, sim.now) == expected_end
    assert replay_at(store, cutoff) == expected_mid
    with pytest.raises(HistoryTruncated, match="retention"):
        replay_at(store, cutoff - timedelta(microseconds=1))


def test_a_want_first_seen_pending_counts_as_created(store: BelStore) -> None:
    store.append([BelEvent("data", "Want", "w", "Pending", "Building", "Building", START)])
    assert replay_at(store, START) == {EntityKey("data", "Want", "w"): "Building"}
    # Only Wants: a Partition's creation is always logged, so its absence is an error.
    store.append([BelEvent("data", "Partition", "p", "Missing", "Building", "X", START)])
    with pytest.raises(IllegalTransition):
        replay_at(store, START)


def test_an_inconsistent_log_is_reported(store: BelStore) -> None:
    bad = BelEvent("data", "Partition", "p", "Live", "Missing", "Nonsense", START)
    store.append([BelEvent("data", "Partition", "p", None, "Missing", "Created", START), bad])
    with pytest.raises(IllegalTransition):
        replay_at(store, START)
