"""The benchmark's API access: the product's async client, opened from a kubeconfig.

The baseline orchestrator and the scenario observers use :class:`Kube` (the
:class:`~databuild.adapters.kube.ApiClient` as an ``async with`` context) and
:class:`Watcher` (list, then watch a collection, calling a handler per event).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from databuild.adapters.kube import (
    ApiClient,
    HttpTransport,
    KubeError,
    from_kubeconfig,
    kubeconfig_with_token,
)

__all__ = ["ApiError", "Kube", "Watcher", "job_finished", "kubeconfig_with_token", "names"]

ApiError = KubeError
"""Every failed request (the client's one error type)."""


class Kube(ApiClient):
    """An authenticated API client; use ``async with Kube.from_kubeconfig(...) as kube``."""

    @classmethod
    def from_kubeconfig(
        cls,
        path: Path,
        *,
        context: str | None = None,
        user_agent: str = "databuild-bench",
        connections: int = 64,
    ) -> Kube:
        """A client for the kubeconfig's current (or given) context."""
        transport = HttpTransport(
            from_kubeconfig(path, context), connections=connections, user_agent=user_agent
        )
        return cls(transport, timeout=60.0)

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class Watcher:
    """List, then watch, a collection forever, calling ``handler(type, object)``.

    ``ready`` is set once the initial list has been handled. Watches that end are
    resumed from the last resourceVersion; an expired one (410 Gone) lists again.
    """

    def __init__(
        self,
        kube: ApiClient,
        kind: str,
        namespace: str | None,
        handler: Handler,
        *,
        label_selector: str | None = None,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.namespace = namespace
        self.handler = handler
        self.label_selector = label_selector
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for event in self.kube.follow(
            self.kind, self.namespace, label_selector=self.label_selector
        ):
            if event.type == "SYNCED":
                self.ready.set()
                continue
            if event.type == "LISTING":
                continue
            result = self.handler(event.type, event.object)
            if result is not None:
                await result

    def start(self) -> Watcher:
        """Start watching in a task."""
        self._task = asyncio.create_task(
            self._run(), name=f"watch {self.kind} {self.namespace or '*'}"
        )
        return self

    def check(self) -> None:
        """Raise the watch task's exception, if it died."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()

    async def stop(self) -> None:
        """Cancel the watch task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def job_finished(job: Mapping[str, Any]) -> str | None:
    """``"Complete"`` or ``"Failed"`` once a batch Job has finished, else ``None``."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return str(condition["type"])
    return None


def names(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ``metadata.name`` of each object."""
    return [str((o.get("metadata") or {}).get("name")) for o in objects]
