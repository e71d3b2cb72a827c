"""The real transport: HTTP/1.1 over aiohttp.

One connection pool per transport (``connections`` at most, kept alive), TLS with the
cluster's CA and client certificate, bearer tokens re-read when they come from a file.
The pool belongs to the event loop that opened it; a transport used from another loop
(``asyncio.run`` per CLI command) opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from databuild.adapters.kube.config import ClusterConfig
from databuild.adapters.kube.errors import KubeError, TooLarge
from databuild.adapters.kube.transport import (
    DEFAULT_MAX_BODY_BYTES,
    Request,
    Response,
    StreamedResponse,
)

__all__ = ["HttpTransport"]


class HttpTransport:
    """:class:`~databuild.adapters.kube.transport.Transport` to a real API server."""

    def __init__(
        self,
        config: ClusterConfig,
        *,
        connections: int = 64,
        user_agent: str = "databuild",
    ) -> None:
        self.config = config
        self.connections = connections
        self.user_agent = user_agent
        self._ssl: Any = config.ssl_context() or False
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=self.connections, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent},
                timeout=aiohttp.ClientTimeout(total=None),
                # No proxy from the environment: the API server is reached directly.
                trust_env=False,
            )
            self._loop = loop
        return self._session

    def _headers(self, request: Request) -> dict[str, str]:
        return {**self.config.headers(), **request.headers}

    async def send(self, request: Request, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Response:
        """See :meth:`Transport.send <databuild.adapters.kube.transport.Transport.send>`."""
        session = self._open()
        what = f"{request.method} {request.path}"
        try:
            async with session.request(
                request.method,
                self.config.server + request.path,
                params=list(request.query),
                data=request.body,
                headers=self._headers(request),
                timeout=aiohttp.ClientTimeout(total=request.timeout),
            ) as response:
                length = response.content_length
                if length is not None and length > max_bytes:
                    raise TooLarge(
                        f"{what}: response of {length} bytes, more than {max_bytes}",
                        status=response.status,
                    )
                parts: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(
                            f"{what}: response longer than {max_bytes} bytes",
                            status=response.status,
                        )
                    parts.append(chunk)
                return Response(response.status, dict(response.headers), b"".join(parts))
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeError(f"{what}: no response: {error!r}") from error

    @contextlib.asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[StreamedResponse]:
        """See :meth:`Transport.stream <databuild.adapters.kube.transport.Transport.stream>`."""
        session = self._open()
        what = f"{request.method} {request.path}"
        # A watch has no total deadline; ``timeout`` bounds the silence between chunks.
        timeout = aiohttp.ClientTimeout(total=None, sock_read=request.timeout)
        try:
            async with session.request(
                request.method,
                self.config.server + request.path,
                params=list(request.query),
                data=request.body,
                headers=self._headers(request),
                timeout=timeout,
            ) as response:

                async def chunks() -> AsyncIterator[bytes]:
                    try:
                        async for chunk in response.content.iter_any():
                            yield chunk
                    except (aiohttp.ClientError, TimeoutError, OSError) as error:
                        raise KubeError(f"{what}: stream broke: {error!r}") from error

                yield StreamedResponse(response.status, dict(response.headers), chunks())
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeError(f"{what}: no response: {error!r}") from error

    async def close(self) -> None:
        """Close the connection pool (it reopens on the next request)."""
        if self._session is not None:
            session, self._session = self._session, None
            if not session.closed and self._loop is asyncio.get_running_loop():
                await session.close()
