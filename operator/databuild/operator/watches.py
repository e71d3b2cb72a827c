"""The watches that fill the world store: one list-then-watch stream per kind and scope.

Each stream lists its kind (every namespace served, or the whole cluster), reconciles
the store with the listing (so what was deleted while no watch ran is dropped), then
watches from the listing's ``resourceVersion`` and puts every event into the store.
A watch the server ends is resumed where it was; one whose position expired (410 Gone)
lists again; any other error is logged and retried with a growing delay, so one kind
the operator may not read never stops the others. Handling an event only touches
memory: the orchestration loop does all the thinking.

Batch Jobs and pods are watched only with the ``databuild.dev/job-run`` label, selected
on the server, so other workloads never reach the operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from databuild.adapters.kinds import KINDS, WATCHED_KINDS
from databuild.adapters.kube import ApiClient, KubeError
from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.operator.store import WorldStore, slim

__all__ = ["Watches", "observe"]

log = logging.getLogger(__name__)

_FIRST_DELAY = 0.5
_MAX_DELAY = 30.0


def observe(store: WorldStore, kind: str, event_type: str, obj: Mapping[str, Any]) -> None:
    """Apply one watch event to the store."""
    if event_type == "DELETED":
        store.delete(kind, obj)
    elif event_type in ("ADDED", "MODIFIED"):
        store.put(kind, obj)


class Watches:
    """The streams of every watched kind in ``scopes`` (``None``: the whole cluster)."""

    def __init__(
        self,
        api: ApiClient,
        store: WorldStore,
        scopes: Sequence[str | None],
        *,
        timeout_seconds: int = 70,
    ) -> None:
        self.api = api
        self.store = store
        self.scopes = tuple(scopes)
        self.timeout_seconds = timeout_seconds
        self.synced = asyncio.Event()
        """Set once every stream has listed its kind: a plan before would re-create."""
        self._unlisted = {(kind, scope) for kind in WATCHED_KINDS for scope in self.scopes}
        self.events = 0
        """Watch events applied (listings not counted)."""

    async def run(self) -> None:
        """Run every stream until cancelled."""
        async with asyncio.TaskGroup() as group:
            for kind in WATCHED_KINDS:
                for scope in self.scopes:
                    group.create_task(self.follow(kind, scope), name=f"watch-{kind}-{scope}")

    async def follow(self, kind: str, scope: str | None) -> None:
        """List ``kind`` in ``scope``, then watch it, for ever (see :meth:`ApiClient.follow`)."""
        selector = JOB_RUN_LABEL if KINDS[kind].labelled else None
        what = f"{kind} in {scope or 'every namespace'}"
        delay = _FIRST_DELAY
        while True:
            listed: list[dict[str, Any]] | None = None
            before: dict[tuple[str, str], str] = {}
            try:
                async for event in self.api.follow(
                    kind,
                    scope,
                    label_selector=selector,
                    timeout_seconds=self.timeout_seconds,
                    keep=partial(slim, kind),
                ):
                    if event.type == "LISTING":
                        # Taken before the listing: what the executor records meanwhile
                        # is newer than the listing, and never dropped by it.
                        before, listed = self.store.versions(kind, scope), []
                    elif listed is not None and event.type == "ADDED":
                        listed.append(event.object)
                    elif event.type == "SYNCED":
                        self._synced(kind, scope, listed or [], before)
                        listed, delay = None, _FIRST_DELAY
                    else:
                        observe(self.store, kind, event.type, event.object)
                        self.events += 1
            except KubeError as error:
                log.warning("watching %s failed, retrying in %.1fs: %s", what, delay, error)
                await asyncio.sleep(delay)
                delay = min(_MAX_DELAY, delay * 2)

    def _synced(
        self,
        kind: str,
        scope: str | None,
        items: list[dict[str, Any]],
        before: Mapping[tuple[str, str], str],
    ) -> None:
        """Reconcile the store with a whole listing of ``kind`` in ``scope``."""
        dropped = self.store.resync(kind, items, before)
        if dropped:
            log.info("dropped %d %s objects deleted while no watch ran", dropped, kind)
        self._unlisted.discard((kind, scope))
        if not self._unlisted and not self.synced.is_set():
            self.synced.set()
            log.info("initial listing done: %d namespaces", len(self.store.namespaces()))
