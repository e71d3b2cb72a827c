"""Leader election with a coordination.k8s.io Lease: one orchestrator per cluster.

Every operator process watches and keeps its world store warm, but only the holder of
the Lease plans and writes. The semantics are client-go's, so clock skew between
machines cannot make two leaders:

- A contender never compares its wall clock with the holder's ``renewTime``. It notes,
  on its own monotonic clock, when it last saw the Lease record change, and takes over
  only once the record has stayed the same for a whole ``leaseDurationSeconds``.
- The holder counts its term from the moment it *sent* a renewal that succeeded, and
  stops leading ``renew_deadline`` after that (below the lease duration), so it has
  stopped before any contender could have seen the record stand still long enough.
- Writes made while leading carry a timeout no longer than what is left of the term
  (:meth:`LeaderElection.remaining`): a slow write cannot land after the term lapsed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from databuild.adapters.gateway import AlreadyExists, Conflict, Gateway, GatewayError, NotFound

log = logging.getLogger(__name__)

Clock = Callable[[], float]
WallClock = Callable[[], datetime]


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _wall() -> datetime:
    return datetime.now(UTC)


def _record(lease: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one version of the Lease's record (client-go compares the same)."""
    spec = lease.get("spec") or {}
    return (
        spec.get("holderIdentity"),
        spec.get("leaseDurationSeconds"),
        spec.get("acquireTime"),
        spec.get("renewTime"),
        spec.get("leaseTransitions"),
    )


class LeaderElection:
    """Holds (or waits for) one Lease; :meth:`is_leading` says whether we may write.

    ``renew_deadline_seconds`` (default two thirds of the duration) must be below
    ``duration_seconds``; the gap is the margin for a slow or paused process.
    ``retry_period_seconds`` (default 2 s for 15 s, as client-go) is how often the holder
    renews and a contender looks. ``clock`` is a monotonic clock and ``wall`` the time
    written into the Lease for people to read; tests pass fakes of both.
    """

    def __init__(
        self,
        gateway: Gateway,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: float = 15.0,
        renew_deadline_seconds: float | None = None,
        retry_period_seconds: float | None = None,
        clock: Clock = time.monotonic,
        wall: WallClock = _wall,
    ) -> None:
        renew = (
            duration_seconds * 2 / 3 if renew_deadline_seconds is None else renew_deadline_seconds
        )
        retry = duration_seconds / 7.5 if retry_period_seconds is None else retry_period_seconds
        if not 0 < renew < duration_seconds:
            raise ValueError(
                f"the renew deadline ({renew}s) must be positive and below the lease duration"
                f" ({duration_seconds}s), or two leaders could overlap"
            )
        if not 0 < retry < renew:
            raise ValueError(
                f"the retry period ({retry}s) must be positive and below the renew deadline"
                f" ({renew}s), or the holder could not renew in time"
            )
        self.gateway = gateway
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self.renew_deadline = renew
        self.retry_period = retry
        self._clock = clock
        self._wall = wall
        self._renewed_at: float | None = None  # monotonic send time of our last renewal
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0  # monotonic time the observed record last changed
        self._became_leader = asyncio.Event()
        self.transitions = 0

    def remaining(self) -> float:
        """Seconds left of our term (0 when not leading): the most a write may take."""
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.renew_deadline - self._clock())

    def is_leading(self) -> bool:
        """Whether this process holds the Lease right now."""
        leading = self.remaining() > 0
        if not leading:
            self._became_leader.clear()
        return leading

    async def wait_until_leading(self) -> None:
        """Return once this process leads."""
        while not self.is_leading():
            await self._became_leader.wait()

    def _spec(self, now: datetime, transitions: int, acquired: str) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "acquireTime": acquired,
            "renewTime": _micro(now),
            "leaseTransitions": transitions,
        }

    def _observe(self, lease: dict[str, Any], at: float) -> None:
        record = _record(lease)
        if record != self._observed:
            self._observed = record
            self._observed_at = at

    async def try_acquire(self) -> bool:
        """One attempt to acquire or renew the Lease; whether we lead afterwards."""
        started = self._clock()
        now = self._wall()
        try:
            lease = await self.gateway.get("Lease", self.namespace, self.name)
        except NotFound:
            manifest = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, 0, _micro(now)),
            }
            try:
                created = await self.gateway.create(manifest)
            except AlreadyExists:
                return self._lost()
            return self._won(created, started, first=True)
        self._observe(lease, started)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        ours = holder == self.identity
        if holder and not ours:
            self._renewed_at = None  # somebody else holds it: whatever we thought, stop
        if holder and not ours and started < self._observed_at + duration:
            return self._lost()  # held, and seen to change within its duration
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if ours else 1)
        acquired = str(spec.get("acquireTime")) if ours and spec.get("acquireTime") else _micro(now)
        try:
            # At the resourceVersion read: whoever wrote in between wins.
            updated = await self.gateway.patch(
                "Lease",
                self.namespace,
                self.name,
                {"spec": self._spec(now, transitions, acquired)},
                resource_version=str(lease["metadata"].get("resourceVersion") or "") or None,
            )
        except (Conflict, NotFound):
            return self._lost()
        return self._won(updated, started, first=not ours)

    def _lost(self) -> bool:
        # A renewal that did not go through ends nothing by itself: the term runs out at
        # its deadline, unless another holder was seen (then is_leading is already False).
        return self.is_leading()

    def _won(self, lease: dict[str, Any], started: float, *, first: bool) -> bool:
        # Count the term from before the request: the server may have written it that early.
        self._renewed_at = started
        self._observe(lease, started)
        if first:
            self.transitions += 1
            log.info(
                "leading: acquired Lease %s/%s as %s", self.namespace, self.name, self.identity
            )
        self._became_leader.set()
        return True

    async def run(self) -> None:
        """Acquire and renew forever (cancel to stop; the Lease then expires)."""
        was_leading = False
        while True:
            try:
                # A renewal must not outlive the term it extends (client-go bounds it by
                # the renew deadline the same way); a contender waits one retry period.
                budget = self.remaining() if self.is_leading() else self.retry_period
                leading = await asyncio.wait_for(self.try_acquire(), max(budget, 0.1))
            except (GatewayError, TimeoutError) as error:
                log.warning("leader election: %s", error or "request timed out")
                leading = self.is_leading()
            if was_leading and not leading:
                log.warning("lost the Lease %s/%s", self.namespace, self.name)
            was_leading = leading
            await asyncio.sleep(self.retry_period)

    async def release(self) -> None:
        """Give the Lease up (on a clean shutdown), so a successor need not wait."""
        if not self.is_leading():
            return
        self._renewed_at = None
        self._became_leader.clear()
        try:
            lease = await self.gateway.get("Lease", self.namespace, self.name)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") == self.identity:
                await self.gateway.patch(
                    "Lease",
                    self.namespace,
                    self.name,
                    {"spec": {"holderIdentity": None, "renewTime": None}},
                    resource_version=str(lease["metadata"].get("resourceVersion") or "") or None,
                )
        except GatewayError as error:
            log.info("could not release the Lease: %s", error)


class AlwaysLeader:
    """Leader election switched off: this process always orchestrates."""

    def is_leading(self) -> bool:
        """Always True."""
        return True

    def remaining(self) -> float | None:
        """No term: writes keep their usual timeout."""
        return None

    async def wait_until_leading(self) -> None:
        """Returns at once."""

    async def run(self) -> None:
        """Nothing to renew: waits until cancelled, like a renewal loop would, since
        the operator treats an ended lease task as a crash."""
        await asyncio.Event().wait()

    async def release(self) -> None:
        """Nothing to release."""
