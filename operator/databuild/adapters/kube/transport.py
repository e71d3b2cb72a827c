"""The transport protocol: how the client's requests reach an API server.

A :class:`Transport` sends one request and returns the whole response, or opens a
streamed response for a watch. It knows nothing of Kubernetes beyond HTTP; the
:class:`~databuild.adapters.kube.client.ApiClient` on top of it builds paths, encodes
bodies and maps errors. :class:`~databuild.adapters.kube.network.HttpTransport` talks to
a real API server; ``databuild.testing.memory_transport`` is one held in memory, so
unit tests run the real client code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Request", "Response", "StreamedResponse", "Transport"]

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest response (and watch event) the client accepts: a page of 500 big pods
is a few MB, so this stops a runaway response, never a normal one."""


@dataclass(frozen=True)
class Request:
    """One HTTP request to the API server (``path`` starts with ``/``)."""

    method: str
    path: str
    query: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    """Seconds for the whole request (``None``: no limit, for watches)."""


@dataclass(frozen=True)
class Response:
    """A whole response."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass
class StreamedResponse:
    """A response whose body arrives in chunks (a watch)."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]


class Transport(Protocol):
    """Sends requests to one API server with one identity."""

    async def send(self, request: Request, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> Response:
        """Send ``request``; the response, whatever its status.

        Raises :class:`~databuild.adapters.kube.errors.TooLarge` when the body exceeds
        ``max_bytes`` and :class:`~databuild.adapters.kube.errors.KubeError` (status 0)
        when no response came.
        """
        ...

    def stream(self, request: Request) -> AbstractAsyncContextManager[StreamedResponse]:
        """Open ``request`` and stream its body; closed when the context ends."""
        ...

    async def close(self) -> None:
        """Close the connections (the transport may be used again: it reopens)."""
        ...
