"""The async API client, called from synchronous code (the CLI, tests, the demo).

:class:`BlockingClient` runs one event loop in a daemon thread for as long as it is open,
so every call (a CLI command's, every thread of ``databuild ui``'s, a test session's)
shares one connection pool. Its connections are closed when the process exits, or
earlier by :meth:`BlockingClient.close`.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from databuild.adapters.kube.client import ApiClient

__all__ = ["BlockingClient"]

_T = TypeVar("_T")


class BlockingClient:
    """``api`` (an :class:`~databuild.adapters.kube.ApiClient`) behind blocking calls."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="databuild-api", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Start ``coro`` on the client's loop; cancel the returned future to stop it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the client's loop and wait for its result."""
        return self.submit(coro).result()

    def iterate(self, items: AsyncIterator[_T]) -> Iterator[_T]:
        """The items of an async iterator, one blocking step at a time."""

        async def step() -> tuple[bool, _T | None]:
            try:
                return True, await anext(items)
            except StopAsyncIteration:
                return False, None

        while True:
            more, item = self.run(step())
            if not more:
                return
            yield item  # type: ignore[misc]  # an item when there is one

    def close(self) -> None:
        """Close the connections and stop the loop (at exit, or earlier)."""
        if self._loop.is_closed():
            return
        if self._loop.is_running():
            try:
                self.run(self.api.close())
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
        self._loop.close()
        atexit.unregister(self.close)
