"""Keeping a planner failure with the Want that causes it.

The planner plans a whole namespace at once, so an exception raised for one Want would
otherwise stop every Want of the namespace. When a plan raises, the Wants are split in
halves and each half planned on its own until the Wants that fail alone are found
(O(k log n) plans for k such Wants); those are left out of the plan, like a Want whose
spec cannot be read, and get a ``Stalled`` condition saying why, while the rest of the
namespace is planned without them. A failure that no single Want causes is raised as
before (the namespace backs off).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from databuild import domain
from databuild.operator.snapshot import Snapshot, bad_want

log = logging.getLogger(__name__)

PLANNING_FAILED = "PlanningFailed"
"""The condition reason of a Want the planner cannot plan."""

StalledWant = tuple[str, str]
"""A Want left out of planning: (name, what went wrong)."""


def _only(world: domain.World, names: Sequence[str]) -> domain.World:
    return dataclasses.replace(world, wants={n: world.wants[n] for n in names})


def _describe(error: BaseException) -> str:
    text = str(error)[:300]
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return (
        f"planning it failed ({what}); check its partitions, numbers and times "
        "(ttlSeconds, slaSeconds, dataTimestamp) and the JobDefinitions that match them, "
        "then edit or delete it"
    )


def _culprits(world: domain.World, names: Sequence[str], now: datetime) -> list[StalledWant]:
    """The Wants among ``names`` that make the planner raise on their own."""
    try:
        domain.plan(_only(world, names), now)
    except Exception as error:
        if len(names) == 1:
            return [(names[0], _describe(error))]
        middle = len(names) // 2
        return _culprits(world, names[:middle], now) + _culprits(world, names[middle:], now)
    return []


def plan_isolated(
    world: domain.World, now: datetime, known: Mapping[str, str] | None = None
) -> tuple[domain.Plan, tuple[StalledWant, ...]]:
    """``domain.plan(world, now)``, without the Wants that make it raise.

    ``known`` (name -> what went wrong) are Wants found to fail before and unchanged
    since: they are left out up front, so a namespace with one bad Want does not search
    for it again on every plan. Returns the plan and every Want left out with the reason.
    Raises what the planner raised when no Want on its own is to blame.
    """
    known = {n: p for n, p in (known or {}).items() if n in world.wants}
    names = sorted(n for n in world.wants if n not in known)
    try:
        return domain.plan(_only(world, names), now), tuple(sorted(known.items()))
    except Exception:
        found = _culprits(world, names, now) if names else []
        if not found:
            raise
    stalled = sorted({**known, **dict(found)}.items())
    log.warning(
        "left %d Want(s) out of planning: %s",
        len(stalled),
        "; ".join(f"{n}: {p}" for n, p in stalled),
    )
    left_out = {name for name, _ in stalled}
    rest = [n for n in names if n not in left_out]
    return domain.plan(_only(world, rest), now), tuple(stalled)


def plan_keeping(
    world: domain.World, now: datetime, known: Mapping[str, str] | None = None
) -> tuple[domain.Plan, tuple[StalledWant, ...], domain.Planner | None]:
    """:func:`plan_isolated`, also returning the :class:`domain.Planner` that made the plan.

    The Planner, kept, plans the next changes incrementally; there is none when a Want
    had to be left out (the namespace stays on full passes, which look for the culprits).
    """
    if not any(n in world.wants for n in known or {}):
        planner = domain.Planner(world)
        try:
            return planner.plan(now), (), planner
        except Exception:
            log.info("planning raised; looking for the Wants to blame", exc_info=True)
    plan, stalled = plan_isolated(world, now, known)
    return plan, stalled, None


def with_stalled_wants(
    snap: Snapshot, wants: Mapping[str, Mapping[str, Any]], stalled: Sequence[StalledWant]
) -> Snapshot:
    """``snap`` with the ``stalled`` Wants (bodies in ``wants``) added to those flagged."""
    extra = tuple(
        bad_want(name, wants[name], problem, reason=PLANNING_FAILED)
        for name, problem in stalled
        if name in wants
    )
    return dataclasses.replace(snap, bad_wants=(*snap.bad_wants, *extra))


__all__ = [
    "PLANNING_FAILED",
    "StalledWant",
    "plan_isolated",
    "plan_keeping",
    "with_stalled_wants",
]
