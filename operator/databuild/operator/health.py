"""The liveness endpoint: ``GET /healthz`` answered on the operator's own event loop.

Answering on the event loop (not from a thread) is the point: a loop that is stuck
answers nothing, the probe times out and the kubelet restarts the pod. The body says
whether the world store is synced and whether this replica leads; both are
informational (a replica that waits for the Lease is alive and healthy).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

__all__ = ["HealthServer"]

_MAX_REQUEST_BYTES = 8192
_READ_TIMEOUT = 5.0


class HealthServer:
    """Serves ``/healthz`` on ``port`` (0: any free port) while started."""

    def __init__(
        self,
        port: int,
        *,
        address: str = "0.0.0.0",
        synced: Callable[[], bool] = lambda: True,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self.port = port
        self.address = address
        self._synced = synced
        self._leading = leading
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; :attr:`port` is the bound port afterwards."""
        self._server = await asyncio.start_server(self._answer, self.address, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        request_line = head[:_MAX_REQUEST_BYTES].split(b"\r\n", 1)[0].split(b" ")
        path = request_line[1].split(b"?", 1)[0] if len(request_line) > 1 else b""
        if request_line[0] in (b"GET", b"HEAD") and path == b"/healthz":
            status = "200 OK"
            body = json.dumps({"synced": self._synced(), "leading": self._leading()}).encode()
        else:
            status, body = "404 Not Found", b'{"error": "not found"}'
        payload = b"" if request_line[0] == b"HEAD" else body
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
