"""How long planning a huge namespace holds up the operator's event loop.

The event loop also answers the liveness probe (``/healthz``), renews the leader Lease
and reads the watches, so the worst delay it sees while a plan runs is what a probe or
a renewal waits. ``python -m databuild.bench.liveness`` (``make bench-liveness``) plans
the planner benchmark's 100,000-partition graph from scratch twice while a probe
coroutine wakes every 10 ms: once inline on the loop (as the operator used to), once in
a worker thread (as the orchestrator does now), and prints the plan time and the delays
the probe saw.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from datetime import timedelta

from databuild.domain import World
from databuild.domain.bench import DATES, KINDS, T0, job_definitions, wants
from databuild.operator.isolation import plan_isolated

PERIOD = 0.01


async def _probe(stop: asyncio.Event, delays: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(PERIOD)
        delays.append(time.perf_counter() - started - PERIOD)


async def _measure(world: World, threaded: bool) -> tuple[float, list[float]]:
    now = T0 + timedelta(seconds=10)
    stop = asyncio.Event()
    delays: list[float] = []
    probe = asyncio.create_task(_probe(stop, delays))
    await asyncio.sleep(0.1)
    plan: Callable[[], object] = lambda: plan_isolated(world, now)  # noqa: E731
    started = time.perf_counter()
    if threaded:
        await asyncio.to_thread(plan)
    else:
        plan()
    seconds = time.perf_counter() - started
    await asyncio.sleep(0.1)
    stop.set()
    await probe
    return seconds, sorted(delays)


def main() -> None:
    """Run both measurements and print the numbers."""
    world = World(job_definitions(), wants(T0))
    print(f"graph: {DATES * KINDS:,} partitions, planned from scratch; probe every 10 ms")
    for threaded in (False, True):
        gc.collect()
        seconds, delays = asyncio.run(_measure(world, threaded))
        where = "worker thread" if threaded else "on the event loop"
        p99 = delays[int(len(delays) * 0.99)] if delays else 0.0
        print(
            f"plan {where:<18} {seconds:7.2f} s   probe delay: max {delays[-1] * 1000:8.1f} ms,"
            f" p99 {p99 * 1000:7.1f} ms, {len(delays)} probes"
        )


if __name__ == "__main__":
    main()
