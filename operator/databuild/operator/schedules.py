"""The Schedule controller: creates each due tick's Want, prunes history, writes status.

One asyncio task, beside the orchestration loop and only while holding the Lease. It
looks at every Schedule when the world store changes or when a Schedule's next tick
(or a catch-up's next batch) is due, asks the domain what to do
(:func:`databuild.domain.schedule.decide`) and writes it through the gateway:

1. create the due Wants under their deterministic names (``AlreadyExists`` is success,
   so a crash between a create and the status write never yields a second Want);
2. delete terminal Wants beyond ``spec.historyLimit``;
3. patch the status (last/next tick, what is handled, counts, ``Ready``) only when it
   changed. The status is written *after* the creates, so a restart re-derives from it
   and at worst meets its own Wants again.

The Wants it creates are ordinary Wants: the orchestration loop builds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters import schedules as wire
from databuild.adapters.gateway import (
    AlreadyExists,
    Gateway,
    GatewayError,
    Invalid,
    NotFound,
    ObjectReference,
)
from databuild.adapters.resources import Schedule
from databuild.domain.schedule import ScheduleDecision, decide
from databuild.operator.store import WorldStore

log = logging.getLogger("databuild.operator.schedules")

#: How long a Schedule whose writes failed waits before it is tried again.
ERROR_BACKOFF = timedelta(seconds=5)


def _now() -> datetime:
    return datetime.now(UTC)


class ScheduleController:
    """Turns due ticks of every Schedule in the store into Wants."""

    def __init__(
        self,
        gateway: Gateway,
        store: WorldStore,
        *,
        is_leading: Callable[[], bool],
        clock: Callable[[], datetime] = _now,
        poll_seconds: float = 0.5,
        on_created: Callable[[str], None] | None = None,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.is_leading = is_leading
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.on_created = on_created
        """Called with the namespace of every Want this controller created (metrics)."""
        self._wake: dict[tuple[str, str], datetime] = {}
        self._invalid: set[tuple[str, str]] = set()
        self.wants_created = 0
        """Wants created since start (tests and metrics read it)."""

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Reconcile forever: on store changes and at the earliest wake-up time."""
        if ready is not None:
            await ready.wait()
        seen = -1
        while True:
            now = self.clock()
            due = any(at <= now for at in self._wake.values())
            if self.is_leading() and (self.store.version != seen or due):
                seen = self.store.version
                await self.reconcile_all(now)
            await asyncio.sleep(self.poll_seconds)

    async def reconcile_all(self, now: datetime) -> None:
        """One pass over every Schedule of every namespace."""
        alive: set[tuple[str, str]] = set()
        for namespace in self.store.namespaces():
            schedules = self.store.objects("Schedule", namespace)
            if not schedules:
                continue
            wants = list(self.store.objects("Want", namespace).values())
            for name, body in list(schedules.items()):
                alive.add((namespace, name))
                if not self.is_leading():
                    return
                try:
                    wake = await self.reconcile(body, wants, now)
                except GatewayError as error:
                    log.warning("Schedule %s/%s: %s; trying again", namespace, name, error)
                    wake = now + ERROR_BACKOFF
                except Exception:
                    # One Schedule's problem never stops the others (nor the operator).
                    log.exception("Schedule %s/%s: unexpected error", namespace, name)
                    wake = now + ERROR_BACKOFF
                if wake is None:
                    self._wake.pop((namespace, name), None)
                else:
                    self._wake[namespace, name] = wake
        for key in set(self._wake) - alive:
            del self._wake[key]

    async def reconcile(
        self, body: Mapping[str, Any], wants: list[dict[str, Any]], now: datetime
    ) -> datetime | None:
        """Carry out one Schedule's decision; when to look at it again."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if meta.get("deletionTimestamp"):
            return None
        try:
            schedule = wire.parse(body)
        except wire.BadSchedule as error:
            log.warning("Schedule %s/%s cannot be read: %s", *key, error)
            return None
        decision = decide(
            wire.spec_of(schedule),
            wire.progress_of(schedule),
            wire.owned_wants(schedule, wants),
            now,
        )
        try:
            for due in decision.create:
                await self._create(wire.want_manifest(schedule, due))
        except Invalid as error:
            # The API server refused a Want (e.g. a rendered ref it does not accept):
            # nothing is handled, the Schedule says why, and it is tried again later.
            decision = ScheduleDecision(
                progress=wire.progress_of(schedule),
                counts=decision.counts,
                reason="WantRejected",
                message=f"the API server rejected a Want of this Schedule: {error}",
                wake_at=now + ERROR_BACKOFF * 6,
            )
        for name in decision.delete:
            with contextlib.suppress(NotFound):
                await self.gateway.delete("Want", key[0], name)
        status = wire.status_of(schedule, decision, now)
        if wire.status_changed(schedule, status):
            written = await self.gateway.patch_status(
                "Schedule",
                key[0],
                key[1],
                wire.status_patch(status),
                resource_version=schedule.metadata.resource_version or None,
            )
            self.store.put("Schedule", written)
        await self._announce(schedule, decision, key)
        return decision.wake_at

    async def _create(self, manifest: dict[str, Any]) -> None:
        try:
            created = await self.gateway.create(manifest)
        except AlreadyExists:
            return  # a restart met its own Want: exactly one per tick
        self.wants_created += 1
        self.store.put("Want", created)
        if self.on_created is not None:
            self.on_created(str(manifest["metadata"].get("namespace", "")))

    async def _announce(
        self, schedule: Schedule, decision: ScheduleDecision, key: tuple[str, str]
    ) -> None:
        """One Warning Event when a Schedule becomes unusable (not on every pass)."""
        bad = not decision.ready and decision.reason in ("InvalidSpec", "WantRejected")
        if not bad:
            self._invalid.discard(key)
            return
        if key in self._invalid:
            return
        self._invalid.add(key)
        try:
            await self.gateway.emit_event(
                ObjectReference.of(schedule.model_dump(mode="json", by_alias=True)),
                type="Warning",
                reason=decision.reason,
                message=decision.message[:1024],
            )
        except GatewayError as error:
            log.warning("could not post an Event about Schedule %s/%s: %s", *key, error)
