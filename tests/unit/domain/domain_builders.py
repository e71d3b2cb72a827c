"""Builders shared by the domain tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from databuild.domain.actions import Action
from databuild.domain.refs import PartitionRef
from databuild.domain.world import JobDefinition, JobOutcome, JobRun, OutcomeKind, Retry, World

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def jd(
    name: str,
    outputs: str | Iterable[str],
    inputs: Iterable[str] = (),
    *,
    retries: int = 0,
    backoff: float = 0.0,
    max_runs: int | None = None,
) -> JobDefinition:
    """A JobDefinition with short arguments."""
    outs = (outputs,) if isinstance(outputs, str) else tuple(outputs)
    return JobDefinition(
        name, outs, tuple(inputs), Retry(retries, backoff), max_concurrent_runs=max_runs
    )


def chain_world() -> World:
    """raw <- clean <- daily, plus a diamond: daily reads clean and raw."""
    return World(
        job_definitions={
            "raw": jd("raw", "raw/date={date}"),
            "clean": jd("clean", "clean/date={date}", ["raw/date={date}"]),
            "daily": jd("daily", "daily/date={date}", ["clean/date={date}", "raw/date={date}"]),
        }
    )


def kinds(actions: Iterable[Action]) -> list[str]:
    """Action type names, for readable assertions."""
    return [type(a).__name__ for a in actions]


class Script:
    """Scripted batch Job outcomes by output ref and attempt; the default is success.

    ``fail``: ref -> attempts that fail (``ALWAYS`` for every attempt);
    ``miss``: ref -> {attempt: refs reported missing}; ``hold``: refs whose jobs keep
    running until released.
    """

    ALWAYS = frozenset(range(1, 1000))

    def __init__(
        self,
        fail: dict[str, Iterable[int]] | None = None,
        miss: dict[str, dict[int, list[str]]] | None = None,
        hold: Iterable[str] = (),
    ) -> None:
        self.fail = {k: set(v) for k, v in (fail or {}).items()}
        self.miss = miss or {}
        self.hold = set(hold)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, run: JobRun, attempt: int) -> JobOutcome | None:
        ref = run.partitions[0]
        if ref in self.hold:
            return None
        self.calls.append((ref, attempt))
        if attempt in self.miss.get(ref, {}):
            missing = tuple(PartitionRef(r) for r in self.miss[ref][attempt])
            return JobOutcome(run.name, attempt, OutcomeKind.DEPENDENCY_MISS, 1, "", missing)
        if attempt in self.fail.get(ref, set()):
            return JobOutcome(run.name, attempt, OutcomeKind.FAILED, 2, "boom")
        return JobOutcome(run.name, attempt, OutcomeKind.SUCCEEDED, 0)


def states(world: World) -> dict[str, str]:
    """Every entity's state by a readable key, for comparing worlds."""
    out = {f"want:{n}": w.state.STATE for n, w in world.wants.items()}
    out.update({f"part:{r}": p.state.STATE for r, p in world.partitions.items()})
    out.update({f"run:{n}": r.state.STATE for n, r in world.job_runs.items()})
    return out


def active_runs_by_ref(world: World) -> dict[str, list[str]]:
    """Non-terminal JobRuns per output ref (invariant 1: at most one each)."""
    found: dict[str, list[str]] = {}
    for run in world.job_runs.values():
        if run.state.STATE in ("Queued", "WaitingForUpstream", "Running"):
            for ref in run.partitions:
                found.setdefault(ref, []).append(run.name)
    return found
