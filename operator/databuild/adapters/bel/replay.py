"""From the log back to the domain: converting events, and the states at time T."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from databuild.adapters.bel.model import BelEvent, EntityKey, EventQuery, StoredEvent, utc
from databuild.adapters.bel.store import BelStore, HistoryTruncated
from databuild.domain import EntityKind, Event, IllegalTransition, replay, transition
from databuild.domain.states import INITIAL_STATES

__all__ = ["from_domain", "replay_at", "replay_stored", "to_domain"]


def from_domain(
    event: Event,
    namespace: str,
    *,
    refs: Iterable[str] = (),
    job_definition: str | None = None,
) -> BelEvent:
    """The BEL record of a domain event in `namespace`.

    `refs` are the partitions the event is about; a Partition event's own ref (its
    ``ref`` detail) is added automatically. For JobRun events pass the run's outputs and
    its JobDefinition, so the log can be queried by ref and by job.
    """
    all_refs = list(refs)
    own = event.details.get("ref")
    if own and own not in all_refs:
        all_refs.insert(0, own)
    return BelEvent(
        namespace=namespace,
        kind=str(event.kind),
        name=event.name,
        from_state=event.from_state,
        to_state=event.to_state,
        reason=event.reason,
        time=event.time,
        details=dict(event.details),
        refs=tuple(all_refs),
        job_definition=job_definition,
    )


def to_domain(event: BelEvent) -> Event:
    """The domain event a BEL record stands for."""
    return Event(
        time=event.time,
        kind=EntityKind(event.kind),
        name=event.name,
        from_state=event.from_state,
        to_state=event.to_state,
        reason=event.reason,
        details={k: str(v) for k, v in event.details.items()},
    )


def replay_stored(
    events: Iterable[StoredEvent],
    baseline: Mapping[EntityKey, tuple[int, str]] | None = None,
) -> dict[EntityKey, str]:
    """States after applying `events` (in log order) on top of `baseline`.

    Entities whose whole history is in `events` are replayed by the domain's
    :func:`~databuild.domain.replay`; entities whose early events retention deleted start
    from their baseline state, and each later event is checked against the domain's
    state machine the same way. Raises :class:`~databuild.domain.IllegalTransition`
    when the log is inconsistent.

    Users create Wants, so the log may first see a Want already Pending: a first Want
    event leaving Pending implies its creation.
    """
    base = dict(baseline or {})
    fresh: dict[str, list[Event]] = defaultdict(list)
    seen: set[EntityKey] = set()
    seeded: list[StoredEvent] = []
    for stored in events:
        key = stored.event.entity
        if key in base:
            if stored.seq > base[key][0]:
                seeded.append(stored)
            continue
        event = to_domain(stored.event)
        if key not in seen:
            seen.add(key)
            if event.kind is EntityKind.WANT and event.from_state == INITIAL_STATES[event.kind]:
                fresh[key.namespace].append(
                    Event(event.time, event.kind, event.name, None, event.from_state, "Observed")
                )
        fresh[key.namespace].append(event)

    states: dict[EntityKey, str] = {}
    for namespace, domain_events in fresh.items():
        for (kind, name), state in replay(domain_events).items():
            states[EntityKey(namespace, str(kind), name)] = state

    current = {key: state for key, (_, state) in base.items()}
    for stored in seeded:
        e = stored.event
        if current[e.entity] != e.from_state:
            raise IllegalTransition(e.kind, e.name, e.from_state, e.to_state)
        transition(EntityKind(e.kind), e.from_state, e.to_state, e.name)
        current[e.entity] = e.to_state
    states.update(current)
    return states


def replay_at(
    store: BelStore, at: datetime, *, namespace: str | None = None
) -> dict[EntityKey, str]:
    """Every entity's state at time `at` (events at exactly `at` included).

    Raises :class:`~databuild.adapters.bel.store.HistoryTruncated` when `at` is before
    what the retention policy kept.
    """
    at = utc(at)
    base = store.baseline()
    if base.retained_since is not None and at < base.retained_since:
        raise HistoryTruncated(
            f"the BEL keeps history since {base.retained_since.isoformat()} (retention "
            f"deleted older events); cannot replay to {at.isoformat()}"
        )
    events = store.query(EventQuery(namespace=namespace, until=at + timedelta(microseconds=1)))
    baseline = {
        key: value
        for key, value in base.states.items()
        if namespace is None or key.namespace == namespace
    }
    return replay_stored(events, baseline)
