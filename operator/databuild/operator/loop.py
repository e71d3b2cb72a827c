"""The orchestration loop: the one task that plans and writes.

It sleeps until the world store changes from outside or the planner's next deadline
(retry backoff, TTL, SLA) passes, waits a moment for the burst of changes to settle
(debounce), plans every changed namespace, and executes the plan. A namespace whose
journal holds only batch Job and pod changes is planned by the Planner kept from its last
pass (:mod:`incremental`); anything else builds the World from the store and plans it in
full. The echoes of the operator's own writes wake nothing.
A plan that met a surprise (a conflict, an object not in the expected state) is
re-planned at once from fresh data, a few times; a failed write backs off that object
alone (the executor's retry queue), and anything else that goes wrong backs off that
namespace alone, so bad input or a struggling API server never makes the loop spin and
never stops the other namespaces.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from databuild import domain
from databuild.operator import incremental, isolation, snapshot
from databuild.operator.executor import ExecutionResult, Executor
from databuild.operator.store import Journal, WorldStore

log = logging.getLogger(__name__)

MAX_REPLANS = 5
"""Immediate re-plans after surprises before the namespace waits for the next change."""
MAX_ERROR_BACKOFF = 60.0
RECHECK_UNPLANNABLE = 60.0
"""Seconds a Want the planner raised for is left out before it is tried again."""
PARALLEL_NAMESPACES = 4
"""Namespaces planned and written at once, so one slow namespace delays no other."""


_R = TypeVar("_R")


def _timed(call: Callable[..., _R], *args: Any) -> tuple[_R, float]:
    """``call(*args)`` and the seconds it took (timed inside the worker thread)."""
    started = time.perf_counter()
    return call(*args), time.perf_counter() - started


class Leadership(Protocol):
    """What the loop needs of leader election."""

    def is_leading(self) -> bool:
        """Whether this process may write now."""
        ...

    async def wait_until_leading(self) -> None:
        """Return once this process may write."""
        ...


@dataclass
class LoopStats:
    """Counters the metrics endpoint and tests read."""

    plans: int = 0
    full_plans: int = 0
    """Plans that looked at everything (from a fresh snapshot, or the kept Planner's own)."""
    incremental_plans: int = 0
    """Plans the kept Planner made around the changes alone."""
    snapshots: int = 0
    """Full passes that read the namespace from the store (a new Planner)."""
    actions: int = 0
    writes: int = 0
    conflicts: int = 0
    errors: int = 0
    plan_seconds: list[float] = field(default_factory=list)
    """Duration of the last passes: reading, planning and executing."""
    planning_seconds: list[float] = field(default_factory=list)
    """Of each, the time until the plan was made (reading the changes, planning)."""
    planner_seconds: list[float] = field(default_factory=list)
    """Of that, the planner's own time in its worker thread."""
    last_plan_at: float = 0.0

    def observe(
        self, seconds: float, actions: int, result: ExecutionResult, planning: float = 0.0
    ) -> None:
        """Count one plan and its execution."""
        self.plans += 1
        self.planning_seconds.append(planning)
        del self.planning_seconds[:-1000]
        del self.planner_seconds[:-1000]
        self.actions += actions
        self.writes += result.writes
        self.conflicts += result.conflicts
        self.errors += result.errors
        self.plan_seconds.append(seconds)
        del self.plan_seconds[:-1000]
        self.last_plan_at = time.monotonic()


class Orchestrator:
    """Plans and executes; each namespace on its own, a few at a time.

    A namespace is never reconciled twice at once; one whose plan takes long (a huge
    namespace planning in its worker thread, an API server slow to answer its writes)
    holds one of :data:`PARALLEL_NAMESPACES` slots, and the others go on.
    """

    def __init__(
        self,
        store: WorldStore,
        executor: Executor,
        leadership: Leadership,
        *,
        settings: domain.Settings | None = None,
        debounce_seconds: float = 0.05,
        max_debounce_seconds: float = 0.5,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_reconcile: Callable[[float, bool], None] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.leadership = leadership
        self.settings = settings or domain.Settings()
        self.debounce = debounce_seconds
        self.max_debounce = max_debounce_seconds
        self.clock = clock
        self.stats = LoopStats()
        self.cache = snapshot.ConversionCache()
        self.planners = incremental.IncrementalPlanners(self.cache)
        """The Planner kept per namespace between passes."""
        self.on_reconcile = on_reconcile
        """Told the duration of every planning pass and whether it went well (metrics)."""
        self._deadlines: dict[str, datetime] = {}
        self._backoff: dict[str, tuple[float, float]] = {}  # ns -> (delay, not before)
        self.idle = asyncio.Event()
        """Set while the loop has nothing to do (tests wait on it)."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._unplannable: dict[str, dict[str, tuple[str, str, float]]] = {}
        """Per namespace, Wants the planner raised for: name -> (resourceVersion, why, since)."""
        self._again: set[str] = set()
        self._woken: set[str] = set()  # due for a deadline or a backoff, not a change
        self._settled: set[str] = set()  # whose last pass went exactly as planned
        self._leading = False
        self._slots = asyncio.Semaphore(PARALLEL_NAMESPACES)

    async def run(self) -> None:
        """Run forever (cancel to stop)."""
        try:
            while True:
                await self.leadership.wait_until_leading()
                if not self._leading:
                    # A new term: another leader may have written meanwhile.
                    self.planners.clear()
                    self._settled.clear()
                    self._leading = True
                await self._wait()
                if not self.leadership.is_leading():
                    self._leading = False
                    continue
                for namespace in self._due():
                    if namespace in self._running:
                        self._again.add(namespace)  # changed meanwhile: once more after
                        continue
                    self._running[namespace] = asyncio.create_task(
                        self._reconcile_alone(namespace), name=f"databuild-plan-{namespace}"
                    )
        finally:
            for task in self._running.values():
                task.cancel()

    async def _reconcile_alone(self, namespace: str) -> None:
        try:
            async with self._slots:
                woken = namespace in self._woken
                self._woken.discard(namespace)
                # Only the echoes of a pass that went as planned: nothing to plan.
                if self.leadership.is_leading() and (woken or not self._echoes_only(namespace)):
                    await self.reconcile(namespace)
        except Exception:
            # reconcile() confines what it can; this is the last line, so that one
            # namespace can never end the orchestration of every other.
            log.exception("reconciling namespace %s failed", namespace)
            self._back_off(namespace)
        finally:
            del self._running[namespace]
            if namespace in self._again:
                self._again.discard(namespace)
                self.store.mark_dirty(namespace)
            else:
                self.store.wake()  # its new deadlines count from now on

    async def _wait(self) -> None:
        timeout = self._sleep_seconds()
        if not self._running:
            self.idle.set()
        changed = await self.store.wait_for_change(timeout)
        self.idle.clear()
        if changed:
            # Let the burst settle (one write often brings several watch events), but
            # never delay planning by more than max_debounce.
            started = time.monotonic()
            version = self.store.version
            while time.monotonic() - started < self.max_debounce:
                await asyncio.sleep(self.debounce)
                if self.store.version == version:
                    break
                version = self.store.version

    def _sleep_seconds(self) -> float | None:
        now = self.clock()
        waits = [(d - now).total_seconds() for d in self._deadlines.values()]
        mono = time.monotonic()
        # A namespace being reconciled is looked at again when that ends (it wakes us).
        waits += [
            not_before - mono
            for ns, (_, not_before) in self._backoff.items()
            if ns not in self._running
        ]
        if not waits:
            return None
        return max(0.0, min(waits))

    def _due(self) -> list[str]:
        due = self.store.take_dirty()
        now = self.clock()
        for ns, deadline in list(self._deadlines.items()):
            if deadline <= now:
                due.add(ns)
                self._woken.add(ns)
                del self._deadlines[ns]
        mono = time.monotonic()
        for ns, (_, not_before) in list(self._backoff.items()):
            if ns in due and not_before > mono:
                due.discard(ns)  # still backing off; it is retried when the time comes
            elif not_before <= mono and ns not in self._running:
                due.add(ns)
                self._woken.add(ns)
        return sorted(due)

    def _echoes_only(self, namespace: str) -> bool:
        """Whether nothing changed in ``namespace`` but the echoes of the last pass's
        writes, which went exactly as planned: then there is nothing to plan."""
        return namespace in self._settled and not self.store.changed_outside(namespace)

    async def reconcile(self, namespace: str) -> ExecutionResult:
        """Plan ``namespace`` and execute the plan, re-planning after surprises.

        The kept Planner plans it when only batch Jobs and pods changed; otherwise (or
        when that fails) it is read from the store and planned in full. Whatever goes
        wrong here stays with this namespace (and, where it can be told, with the object
        that caused it): it is logged, the namespace backs off, and the loop goes on with
        the others.
        """
        result = ExecutionResult()
        self._settled.discard(namespace)
        for _ in range(MAX_REPLANS):
            now = self.clock()
            started = time.monotonic()
            journal = self.store.take_journal(namespace)
            planner: domain.Planner | None = None
            made = await self._plan_incrementally(namespace, journal, now)
            if made is not None:
                snap, plan, planner = made
                stalled: tuple[isolation.StalledWant, ...] = ()
            else:
                try:
                    snap = snapshot.build(
                        self.store,
                        namespace,
                        now,
                        settings=self.settings,
                        cache=self.cache,
                    )
                except Exception:
                    # Objects are confined one by one inside build(); this is a bug met on
                    # the way, and it must not end the loop for every other namespace.
                    log.exception("reading namespace %s failed", namespace)
                    self._back_off(namespace)
                    return ExecutionResult(errors=1)
                try:
                    # Off the event loop: /healthz, the Lease and the watches keep being
                    # served while a big namespace plans (the GIL is handed over every few
                    # milliseconds).
                    known = self._unplannable_wants(namespace)
                    (plan, stalled, planner), took = await asyncio.to_thread(
                        _timed, isolation.plan_keeping, snap.world, now, known
                    )
                    self.stats.planner_seconds.append(took)
                except Exception:
                    # Not attributable to one Want: the namespace waits and is tried again
                    # with backoff.
                    log.exception("planning namespace %s failed", namespace)
                    self._back_off(namespace)
                    return result
                self.stats.snapshots += 1
                self.stats.full_plans += 1
                self._remember_unplannable(namespace, stalled)
            planning = time.monotonic() - started
            if stalled:
                snap = isolation.with_stalled_wants(
                    snap, self.store.objects("Want", namespace), stalled
                )
            try:
                result = await self.executor.execute(snap, plan, now)
            except Exception:
                # A bug met on the way (bad input is handled, not raised): log it, and
                # try the namespace again later rather than stop orchestrating altogether.
                log.exception("executing the plan of namespace %s failed", namespace)
                self.planners.drop(namespace)
                self._back_off(namespace)
                return ExecutionResult(errors=1)
            exact = self._applied_exactly(result)
            if not exact:
                # The Planner counted on every action being applied: rebuild it.
                self.planners.drop(namespace)
            elif made is None and planner is not None:
                self.planners.keep(snap, planner)
            seconds = time.monotonic() - started
            self.stats.observe(seconds, len(plan), result, planning)
            if self.on_reconcile is not None:
                self.on_reconcile(seconds, not result.errors)
            if plan.actions:
                log.debug(
                    "namespace %s: %d actions, %d writes", namespace, len(plan), result.writes
                )
            retry = self.executor.wakeup(namespace, now)
            recheck = self._recheck_at(namespace, now)
            wakeups = [
                w for w in (plan.next_wakeup, *snap.wakeups, retry, recheck) if w is not None
            ]
            if wakeups:
                self._deadlines[namespace] = min(wakeups)
            else:
                self._deadlines.pop(namespace, None)
            # Failed writes back off object by object (the executor's retry queue, due
            # in the wakeups above); the namespace itself goes on.
            self._backoff.pop(namespace, None)
            if not result.replan:
                if exact:
                    self._settled.add(namespace)
                return result
        # Still surprised after several tries: wait for the next change (or a second).
        self._back_off(namespace, initial=1.0)
        return result

    async def _plan_incrementally(
        self, namespace: str, journal: Journal, now: datetime
    ) -> tuple[snapshot.Snapshot, domain.Plan, domain.Planner] | None:
        """The kept Planner's plan of ``journal``'s changes, or None: plan in full."""
        try:
            planner = self.planners.prepare(self.store, namespace, journal, now)
            if planner is None:
                return None
            before = planner.full_passes
            plan, took = await asyncio.to_thread(_timed, planner.plan, now)
            self.stats.planner_seconds.append(took)
            snap = self.planners.snapshot(self.store, namespace, plan, now)
        except Exception:
            # Never worse than before: the full path (and its isolation) takes over.
            log.exception("incremental planning of namespace %s failed", namespace)
            self.planners.drop(namespace)
            return None
        if planner.full_passes > before:
            self.stats.full_plans += 1
        else:
            self.stats.incremental_plans += 1
        return snap, plan, planner

    def _applied_exactly(self, result: ExecutionResult) -> bool:
        """Whether every action of the plan was applied as planned, still leading."""
        return (
            not (result.conflicts or result.errors or result.skipped or result.deferred)
            and not (result.replan or result.abandoned)
            and self.leadership.is_leading()
        )

    def _unplannable_wants(self, namespace: str) -> dict[str, str]:
        """Wants that made the planner raise, unchanged since (name -> the problem).

        Forgotten after :data:`RECHECK_UNPLANNABLE`, so a Want that failed because of
        another object (a JobDefinition since fixed) is tried again.
        """
        wants = self.store.objects("Want", namespace)
        fresh = time.monotonic() - RECHECK_UNPLANNABLE
        return {
            name: problem
            for name, (version, problem, since) in self._unplannable.get(namespace, {}).items()
            if since > fresh
            and str((wants.get(name) or {}).get("metadata", {}).get("resourceVersion")) == version
        }

    def _remember_unplannable(
        self, namespace: str, stalled: tuple[isolation.StalledWant, ...]
    ) -> None:
        wants = self.store.objects("Want", namespace)
        before = self._unplannable.get(namespace, {})
        remembered = {}
        for name, why in stalled:
            version = str((wants.get(name) or {}).get("metadata", {}).get("resourceVersion"))
            old = before.get(name)
            since = old[2] if old is not None and old[0] == version else time.monotonic()
            remembered[name] = (version, why, since)
        if remembered:
            self._unplannable[namespace] = remembered
        else:
            self._unplannable.pop(namespace, None)

    def _recheck_at(self, namespace: str, now: datetime) -> datetime | None:
        """When the oldest remembered unplannable Want of ``namespace`` is tried again."""
        entries = self._unplannable.get(namespace)
        if not entries:
            return None
        oldest = min(since for _, _, since in entries.values())
        left = max(0.0, oldest + RECHECK_UNPLANNABLE - time.monotonic())
        return now + timedelta(seconds=left + 0.01)

    def _back_off(self, namespace: str, initial: float = 0.5) -> None:
        delay, _ = self._backoff.get(namespace, (initial / 2, 0.0))
        delay = min(MAX_ERROR_BACKOFF, max(initial, delay * 2))
        self._backoff[namespace] = (delay, time.monotonic() + delay)
        log.info("namespace %s: trying again in %.1fs", namespace, delay)
