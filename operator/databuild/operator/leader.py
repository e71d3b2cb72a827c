"""Leader election with a coordination.k8s.io Lease: one orchestrator per cluster.

Every operator process watches and keeps its world store warm, but only the holder of
the Lease plans and writes. The holder renews the Lease every third of its duration; a
Lease not renewed for its duration is taken over. A leader that cannot renew in time
stops orchestrating before another process can take over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.gateway import AlreadyExists, Conflict, Gateway, GatewayError, NotFound

log = logging.getLogger(__name__)


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElection:
    """Holds (or waits for) one Lease; :meth:`is_leading` says whether we may write."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: float = 15.0,
    ) -> None:
        self.gateway = gateway
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration_seconds
        self._leading_until = 0.0  # monotonic deadline of our current term
        self._became_leader = asyncio.Event()
        self.transitions = 0

    def is_leading(self) -> bool:
        """Whether this process holds an unexpired Lease right now."""
        leading = time.monotonic() < self._leading_until
        if not leading:
            self._became_leader.clear()
        return leading

    async def wait_until_leading(self) -> None:
        """Return once this process leads."""
        while not self.is_leading():
            await self._became_leader.wait()

    def _manifest(self, now: datetime, transitions: int) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.duration)),
                "acquireTime": _micro(now),
                "renewTime": _micro(now),
                "leaseTransitions": transitions,
            },
        }

    async def try_acquire(self) -> bool:
        """One attempt to acquire or renew the Lease; whether we lead afterwards."""
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            lease = await self.gateway.get("Lease", self.namespace, self.name)
        except NotFound:
            try:
                await self.gateway.create(self._manifest(now, 0))
            except AlreadyExists:
                return False
            return self._won(started, first=True)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or now > renewed + timedelta(seconds=duration)
        if holder != self.identity and not expired and holder:
            return False
        patch: dict[str, Any] = {
            "spec": {
                "holderIdentity": self.identity,
                "renewTime": _micro(now),
                "leaseDurationSeconds": max(1, round(self.duration)),
            }
        }
        if holder != self.identity:
            transitions = int(spec.get("leaseTransitions") or 0) + 1
            patch["spec"].update(acquireTime=_micro(now), leaseTransitions=transitions)
        try:
            await self.gateway.patch(
                "Lease",
                self.namespace,
                self.name,
                patch,
                resource_version=str(lease["metadata"].get("resourceVersion") or "") or None,
            )
        except (Conflict, NotFound):
            return False
        return self._won(started, first=holder != self.identity)

    def _won(self, started: float, *, first: bool) -> bool:
        # Count the term from before the request: the server may have seen it that early.
        self._leading_until = started + self.duration * 0.9
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
                leading = await self.try_acquire()
            except GatewayError as error:
                log.warning("leader election: %s", error)
                leading = self.is_leading()
            if was_leading and not leading and not self.is_leading():
                log.warning("lost the Lease %s/%s", self.namespace, self.name)
            was_leading = leading
            await asyncio.sleep(self.duration / 3 if leading else max(1.0, self.duration / 5))

    async def release(self) -> None:
        """Give the Lease up (on a clean shutdown), so a successor need not wait."""
        if not self.is_leading():
            return
        self._leading_until = 0.0
        try:
            lease = await self.gateway.get("Lease", self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
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

    async def wait_until_leading(self) -> None:
        """Returns at once."""

    async def run(self) -> None:
        """Nothing to renew: waits until cancelled, like a renewal loop would, since
        the operator treats an ended lease task as a crash."""
        await asyncio.Event().wait()

    async def release(self) -> None:
        """Nothing to release."""
