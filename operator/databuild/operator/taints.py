"""The TaintRequest controller: reports what each request did, then retires it.

One asyncio task beside the orchestration loop, only while holding the Lease. The
taint itself is the planner's decision (a pending request reaches it through the world
snapshot, and each transition is in the Build Event Log); this controller waits until
the planner has acted on every ref of a request (none is still Live since before it),
then writes the request's status once. From then on the request is applied: it never
reaches the planner again, so an operator restart or a later rebuild never taints twice.
Applied requests are deleted after the JobRun retention time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from databuild import domain
from databuild.adapters import codec, taint_requests
from databuild.adapters.gateway import Gateway, GatewayError, NotFound
from databuild.operator.store import WorldStore

log = logging.getLogger("databuild.operator.taints")


def _now() -> datetime:
    return datetime.now(UTC)


class TaintRequestController:
    """Writes the status of applied TaintRequests and deletes old ones."""

    def __init__(
        self,
        gateway: Gateway,
        store: WorldStore,
        *,
        is_leading: Callable[[], bool],
        retention_seconds: float,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.is_leading = is_leading
        self.retention = timedelta(seconds=retention_seconds)
        self.clock = clock
        self._next_retirement: datetime | None = None

    async def run(self, ready: asyncio.Event | None = None, poll_seconds: float = 0.5) -> None:
        """Look again whenever the store changed, or a retirement is due."""
        if ready is not None:
            await ready.wait()
        seen = -1
        while True:
            now = self.clock()
            due = self._next_retirement is not None and self._next_retirement <= now
            if self.is_leading() and (self.store.version != seen or due):
                seen = self.store.version
                await self.reconcile_all(now)
            await asyncio.sleep(poll_seconds)

    async def reconcile_all(self, now: datetime) -> int:
        """One pass over every namespace; the number of API writes."""
        writes = 0
        self._next_retirement = None
        for namespace in self.store.namespaces():
            bodies = self.store.objects("TaintRequest", namespace)
            if not bodies:
                continue
            partitions: dict[str, domain.Partition] | None = None
            for name, body in list(bodies.items()):
                if not self.is_leading():
                    return writes
                try:
                    request = taint_requests.read(body)
                except codec.BadObject as error:
                    log.warning("left alone: %s", error)
                    continue
                if request.deleting:
                    continue
                try:
                    if request.applied_at is not None:
                        writes += await self._retire(namespace, request, now)
                        continue
                    if partitions is None:
                        partitions = self._partitions(namespace)
                    writes += await self._report(namespace, request, partitions, now)
                except GatewayError as error:
                    # A Conflict means something else wrote first: the next pass sees it.
                    log.info("TaintRequest %s/%s not written: %s", namespace, name, error)
        return writes

    def _partitions(self, namespace: str) -> dict[str, domain.Partition]:
        found: dict[str, domain.Partition] = {}
        for body in self.store.objects("Partition", namespace).values():
            with contextlib.suppress(codec.BadObject):
                part = codec.partition_from(body)
                found[part.ref] = part
        return found

    async def _report(
        self,
        namespace: str,
        request: taint_requests.Request,
        partitions: dict[str, domain.Partition],
        now: datetime,
    ) -> int:
        outcome = domain.request_outcome(request.refs, request.taint.requested_at, partitions)
        if not outcome.applied:
            return 0  # the planner has not tainted every Live ref yet
        written = await self.gateway.patch_status(
            "TaintRequest",
            namespace,
            request.name,
            taint_requests.status_patch(outcome, request.generation, now),
            resource_version=request.resource_version or None,
        )
        self.store.put("TaintRequest", written)
        log.info(
            "TaintRequest %s/%s applied: tainted %s, not Live %s, unknown %s",
            namespace,
            request.name,
            list(outcome.tainted),
            list(outcome.not_live),
            list(outcome.unknown),
        )
        return 1

    async def _retire(self, namespace: str, request: taint_requests.Request, now: datetime) -> int:
        assert request.applied_at is not None
        expires = request.applied_at + self.retention
        if expires > now:
            if self._next_retirement is None or expires < self._next_retirement:
                self._next_retirement = expires
            return 0
        with contextlib.suppress(NotFound):
            await self.gateway.delete(
                "TaintRequest", namespace, request.name, uid=request.uid or None
            )
        return 1
