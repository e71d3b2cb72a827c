"""Planner benchmark on a 100,000-partition graph (``make bench-planner``).

1,000 dates x 100 partition kinds; kind k reads kinds k-1, k-3 and 0 of the same date
(fan-in), so every top partition depends on the whole column of its date. Prints wall
time and peak traced memory of: a full plan from scratch (creating every run), a full
re-plan of a world mid-flight, and the incremental work after one batch Job completes.
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from databuild.domain.planner import Planner, plan
from databuild.domain.refs import PartitionRef, batch_job_name, jobrun_name
from databuild.domain.simulation import apply_actions
from databuild.domain.states import (
    JobRunRunning,
    JobRunState,
    JobRunSucceeded,
    JobRunWaitingForUpstream,
    PartitionBuilding,
    PartitionLive,
    PartitionState,
    WantUpstreamBuilding,
)
from databuild.domain.world import (
    JobDefinition,
    JobOutcome,
    JobRun,
    OutcomeKind,
    Partition,
    Want,
    World,
)

__all__ = ["build_world", "main"]

DATES = 1000
KINDS = 100
T0 = datetime(2025, 1, 1, tzinfo=UTC)
_R = TypeVar("_R")


def _inputs(kind: int) -> list[int]:
    return sorted({k for k in (kind - 1, kind - 3, 0) if 0 <= k < kind})


def _ref(kind: int, date: int) -> PartitionRef:
    return PartitionRef(f"kind{kind:03d}/date={date:04d}")


def job_definitions() -> dict[str, JobDefinition]:
    """One JobDefinition per kind."""
    return {
        f"kind{k:03d}": JobDefinition(
            f"kind{k:03d}",
            (f"kind{k:03d}/date={{date}}",),
            tuple(f"kind{i:03d}/date={{date}}" for i in _inputs(k)),
        )
        for k in range(KINDS)
    }


def wants(created: datetime) -> dict[str, Want]:
    """Ten Wants of 100 top partitions each."""
    top = KINDS - 1
    return {
        f"want-{w}": Want(
            f"want-{w}",
            tuple(_ref(top, d) for d in range(w * 100, (w + 1) * 100)),
            created_at=created,
        )
        for w in range(DATES // 100)
    }


def build_world(live_kinds: int) -> World:
    """A world mid-flight: kinds below ``live_kinds`` Live, that kind Running, rest waiting."""
    defs = job_definitions()
    parts: dict[str, Partition] = {}
    runs: dict[str, JobRun] = {}
    outcomes: dict[tuple[str, int], JobOutcome] = {}
    for d in range(DATES):
        for k in range(KINDS):
            ref = _ref(k, d)
            jd = f"kind{k:03d}"
            name = jobrun_name(jd, [ref], 1)
            inputs = tuple(_ref(i, d) for i in _inputs(k))
            part: PartitionState
            state: JobRunState
            if k < live_kinds:
                state = JobRunSucceeded(
                    attempt=1, batch_job=batch_job_name(name, 1), finished_at=T0
                )
                part = PartitionLive(built_by=name, live_since=T0, inputs=inputs)
                outcomes[(name, 1)] = JobOutcome(name, 1, OutcomeKind.SUCCEEDED)
            elif k == live_kinds:
                state = JobRunRunning(attempt=1, batch_job=batch_job_name(name, 1), started_at=T0)
                part = PartitionBuilding(built_by=name)
                outcomes[(name, 1)] = JobOutcome(name, 1, OutcomeKind.RUNNING)
            else:
                state = JobRunWaitingForUpstream()
                part = PartitionBuilding(built_by=name)
            runs[name] = JobRun(name, jd, (ref,), inputs, T0, {"date": f"{d:04d}"}, state)
            parts[ref] = Partition(ref, part)
    ws = {n: dataclasses.replace(w, state=WantUpstreamBuilding()) for n, w in wants(T0).items()}
    world = World(defs, ws, parts, runs, outcomes)
    # Let the planner write the derived Want status once, so re-plans are quiet.
    return apply_actions(world, plan(world, T0 + timedelta(seconds=1)).actions)


def _measure(label: str, fn: Callable[[], _R]) -> _R:
    gc.collect()
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<58} {elapsed * 1000:10.1f} ms  peak {peak / 2**20:8.1f} MiB")
    return result


def _timed(label: str, fn: Callable[[], _R]) -> _R:
    """Time without tracemalloc (which slows Python code down several times)."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    print(f"{label:<58} {(time.perf_counter() - start) * 1000:10.1f} ms")
    return result


def hostile_worlds() -> dict[str, World]:
    """Adversarial namespaces: need graphs without end, each stopped by a budget.

    ``chain``: ``a/{x}`` reads ``a/{x}0`` (deep); ``tree``: ``b/{x}`` reads ``b/{x}0`` and
    ``b/{x}1`` (deep and exploding); ``wide``: 256 inputs of 256 inputs (65,536 refs,
    three levels: the refs budget); each with 1 and with 20 such Wants.
    """
    wide = {
        "top": JobDefinition("top", ("top/{x}",), tuple(f"mid/{{x}}/{i}" for i in range(256))),
        "mid": JobDefinition(
            "mid", ("mid/{x}/{k}",), tuple(f"leaf/{{x}}/{{k}}/{j}" for j in range(256))
        ),
        "leaf": JobDefinition("leaf", ("leaf/{x}/{k}/{j}",)),
    }
    shapes: dict[str, tuple[dict[str, JobDefinition], str]] = {
        "chain": ({"a": JobDefinition("a", ("a/{x}",), ("a/{x}0",))}, "a"),
        "tree": ({"b": JobDefinition("b", ("b/{x}",), ("b/{x}0", "b/{x}1"))}, "b"),
        "wide": (wide, "top"),
    }
    worlds: dict[str, World] = {}
    for shape, (defs, head) in shapes.items():
        for count in (1, 20):
            worlds[f"{shape} x{count}"] = World(
                defs,
                {
                    f"w{i}": Want(f"w{i}", (PartitionRef(f"{head}/{i + 1}"),), created_at=T0)
                    for i in range(count)
                },
            )
    return worlds


def hostile() -> None:
    """Worst-case planning time and memory of the adversarial graphs."""
    for label, world in hostile_worlds().items():
        result = _timed(f"plan(): {label}", lambda w=world: plan(w, T0))  # type: ignore[misc]
        failed = sum(1 for a in result.actions if type(a).__name__ == "TransitionWant")
        print(f"  {failed} Wants failed (NeedBudgetExceeded), {len(result.actions)} actions")
        _measure("  same, traced", lambda w=world: plan(w, T0))  # type: ignore[misc]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the numbers (``--hostile``: the adversarial graphs)."""
    args = sys.argv[1:] if argv is None else argv
    if "--hostile" in args:
        hostile()
        return
    print(f"graph: {DATES} dates x {KINDS} kinds = {DATES * KINDS:,} partitions")
    now = T0 + timedelta(seconds=10)

    empty = World(job_definitions(), wants(T0))
    first = _timed("plan(): from scratch (creates every run)", lambda: plan(empty, now))
    print(f"  {len(first.actions):,} actions")
    _measure("  same, traced", lambda: plan(empty, now))
    del first

    mid = build_world(live_kinds=KINDS // 2)
    steady = _timed("plan(): full re-plan mid-flight, nothing changed", lambda: plan(mid, now))
    print(f"  {len(steady.actions)} actions")
    _measure("  same, traced", lambda: plan(mid, now))

    running = sorted(k for k, o in mid.outcomes.items() if o.kind is OutcomeKind.RUNNING)
    done = JobOutcome(running[0][0], running[0][1], OutcomeKind.SUCCEEDED)
    after = dataclasses.replace(mid, outcomes={**mid.outcomes, running[0]: done})
    one = _timed("plan(): full re-plan after one batch Job completed", lambda: plan(after, now))
    print(f"  {len(one.actions)} actions: " + ", ".join(sorted({type(a).__name__ for a in one})))

    planner = _timed("Planner(world) + first plan (full pass)", lambda: _primed(mid, now))
    _measure("  same, traced", lambda: _primed(mid, now))
    samples: list[float] = []
    for index, (name, attempt) in enumerate(running[:200]):
        planner.observe_outcome(JobOutcome(name, attempt, OutcomeKind.SUCCEEDED))
        start = time.perf_counter()
        result = planner.plan(now + timedelta(seconds=index))
        samples.append(time.perf_counter() - start)
        assert result.actions, "a completed job must move something"
    samples.sort()
    median, worst = samples[len(samples) // 2], samples[-1]
    print(
        f"{'Planner.plan() after one batch Job completed (200 runs)':<58} "
        f"{median * 1000:10.2f} ms median, {worst * 1000:.2f} ms max"
    )
    print(f"  full passes: {planner.full_passes} (the first only)")
    name, attempt = running[300]
    planner.observe_outcome(JobOutcome(name, attempt, OutcomeKind.SUCCEEDED))
    _measure("  one more, traced", lambda: planner.plan(now + timedelta(seconds=999)))


def _primed(world: World, now: datetime) -> Planner:
    planner = Planner(world)
    planner.plan(now)
    return planner


if __name__ == "__main__":
    main()
