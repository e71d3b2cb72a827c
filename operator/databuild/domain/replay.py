"""Replaying the Build Event Log: the states of all entities from events alone."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from databuild.domain.events import EntityKind, Event, IllegalTransition
from databuild.domain.states import transition

__all__ = ["replay"]


def replay(events: Iterable[Event]) -> Mapping[tuple[EntityKind, str], str]:
    """``{(kind, name): state}`` after applying ``events`` in order, from empty.

    Raises :class:`IllegalTransition` for an event that is not on an edge of its
    entity's state machine, or whose ``from_state`` is not the entity's current state
    (including a creation event for an entity that already exists). An event repeating
    the entity's previous transition is a duplicate delivery and is skipped.
    """
    states: dict[tuple[EntityKind, str], str] = {}
    last: dict[tuple[EntityKind, str], tuple[str | None, str]] = {}
    for event in events:
        key = (event.kind, event.name)
        current = states.get(key)
        edge = (event.from_state, event.to_state)
        if key in states and last.get(key) == edge and current == event.to_state:
            # The same transition logged twice (a crash between appending the event and
            # writing the status makes the operator redo the step): at-least-once.
            continue
        if current != event.from_state:
            raise IllegalTransition(event.kind, event.name, event.from_state, event.to_state)
        transition(event.kind, event.from_state, event.to_state, event.name)
        states[key] = event.to_state
        last[key] = edge
    return states
