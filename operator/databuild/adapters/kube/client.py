"""The asynchronous Kubernetes API client, on any :class:`Transport`.

Resources are named by kind (a name in :data:`~databuild.adapters.kinds.KINDS`, or a
:class:`~databuild.adapters.kinds.KindInfo` for kinds the operator does not handle),
namespace and name. Bodies are JSON; a response bigger than ``max_body_bytes`` is
refused before it is decoded. Every failure is a
:class:`~databuild.adapters.kube.errors.KubeError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from databuild.adapters.kinds import KindInfo, kind_info
from databuild.adapters.kube.errors import Gone, KubeError, TooLarge, error_from_response
from databuild.adapters.kube.transport import (
    DEFAULT_MAX_BODY_BYTES,
    Request,
    Response,
    Transport,
)

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ApiClient",
    "Kind",
    "ObjectList",
    "PatchType",
    "Propagation",
    "WatchEvent",
]

log = logging.getLogger(__name__)

Kind = str | KindInfo
PatchType = Literal["merge", "json"]
Propagation = Literal["Background", "Foreground", "Orphan"]

#: Objects per page of a listing: a namespace of 10,000 pods is read in 20 requests of a
#: few MB each instead of one response of hundreds of MB, decoded all at once.
DEFAULT_PAGE_SIZE = 500
#: Times a listing starts again when its ``continue`` token expired (410 Gone) between
#: pages; each start is a consistent snapshot, so a partial one is thrown away.
LIST_RESTARTS = 3

_CONTENT_TYPES: Mapping[PatchType, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
}


@dataclass(frozen=True)
class ObjectList:
    """Every object of one listing, and the resourceVersion to watch from."""

    items: list[dict[str, Any]]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    """One event of a watch: ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``.

    :meth:`ApiClient.follow` also yields ``LISTING`` (no object) as a listing starts and
    ``SYNCED`` (no object) once it has been yielded in full.
    """

    type: str
    object: dict[str, Any]


def _info(kind: Kind) -> KindInfo:
    return kind if isinstance(kind, KindInfo) else kind_info(kind)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class ApiClient:
    """Requests to one API server through ``transport``; see the module docstring."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = 30.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.page_size = page_size
        self.requests = 0
        """Requests sent (watches included)."""

    async def close(self) -> None:
        """Close the transport's connections."""
        await self.transport.close()

    # -- raw requests ----------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Response:
        """One request as is: the response whatever its status (no error mapping)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        self.requests += 1
        response = await self.transport.send(
            Request(
                method,
                path,
                tuple(query),
                body,
                headers,
                self.timeout if timeout is None else timeout,
            ),
            max_bytes=self.max_body_bytes,
        )
        if len(response.body) > self.max_body_bytes:
            raise TooLarge(
                f"{method} {path}: response longer than {self.max_body_bytes} bytes",
                status=response.status,
            )
        return response

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
        timeout: float | None = None,
        about: tuple[str, str, str] = ("", "", ""),
    ) -> dict[str, Any]:
        """One JSON request: the decoded response object, or :class:`KubeError`.

        ``about`` (kind, namespace, name) goes into the error, so callers can tell
        which object a failure belongs to.
        """
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        response = await self.send(
            method, path, query=query, body=data, content_type=content_type, timeout=timeout
        )
        kind, namespace, name = about
        if response.status >= 300:
            what = f"{method} {kind} {namespace}/{name}" if kind else f"{method} {path}"
            raise error_from_response(
                response.status,
                response.body,
                what.replace(" /", " "),
                kind=kind,
                name=name,
                namespace=namespace,
            )
        if not response.body:
            return {}
        try:
            decoded = json.loads(response.body)
        except ValueError as error:
            raise KubeError(
                f"{method} {path}: the response is not JSON: {error}", status=response.status
            ) from None
        return decoded if isinstance(decoded, dict) else {}

    # -- objects ----------------------------------------------------------------------

    @staticmethod
    def path(kind: Kind, namespace: str | None, name: str = "", subresource: str = "") -> str:
        """The URL path of a collection, an object, or an object's subresource."""
        path = _info(kind).collection(namespace or None)
        if name:
            path = f"{path}/{name}"
        if subresource:
            path = f"{path}/{subresource}"
        return path

    async def get(
        self, kind: Kind, namespace: str | None, name: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """One object; :class:`~databuild.adapters.kube.errors.NotFound` if absent."""
        info = _info(kind)
        return await self.request(
            "GET",
            self.path(info, namespace, name),
            timeout=timeout,
            about=(info.kind, namespace or "", name),
        )

    async def create(
        self, obj: Mapping[str, Any], *, kind: KindInfo | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Create ``obj`` (its ``kind`` selects the API unless ``kind`` is given)."""
        info = kind or kind_info(str(obj.get("kind")))
        meta = _meta(obj)
        namespace = str(meta.get("namespace") or "")
        return await self.request(
            "POST",
            self.path(info, namespace),
            body=obj,
            timeout=timeout,
            about=(info.kind, namespace, str(meta.get("name") or meta.get("generateName") or "")),
        )

    async def patch(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        patch_type: PatchType = "merge",
        subresource: str = "",
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Patch an object (or its ``subresource``): a JSON merge patch or a JSON patch.

        With ``resource_version`` the patch applies only to that version of the object
        (:class:`~databuild.adapters.kube.errors.Conflict` if it changed since).
        """
        info = _info(kind)
        body: Any = patch
        if resource_version is not None and patch_type == "merge":
            body = {**dict(patch), "metadata": {**dict(patch.get("metadata") or {})}}
            body["metadata"]["resourceVersion"] = resource_version
        elif resource_version is not None:
            # A JSON patch that sets resourceVersion makes it a precondition (409 if stale).
            op = {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
            body = [op, *patch]
        return await self.request(
            "PATCH",
            self.path(info, namespace, name, subresource),
            body=body,
            content_type=_CONTENT_TYPES[patch_type],
            timeout=timeout,
            about=(info.kind, namespace or "", name),
        )

    async def patch_status(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Merge-patch the status subresource with ``status``."""
        return await self.patch(
            kind,
            namespace,
            name,
            {"status": dict(status)},
            subresource="status",
            resource_version=resource_version,
            timeout=timeout,
        )

    async def replace(
        self,
        obj: Mapping[str, Any],
        *,
        subresource: str = "",
        kind: KindInfo | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Replace ``obj`` (or its ``subresource``) as a whole, at its resourceVersion."""
        info = kind or kind_info(str(obj.get("kind")))
        meta = _meta(obj)
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        return await self.request(
            "PUT",
            self.path(info, namespace, name, subresource),
            body=obj,
            timeout=timeout,
            about=(info.kind, namespace, name),
        )

    async def delete(
        self,
        kind: Kind,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation: Propagation = "Background",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Delete an object; with ``uid``/``resource_version``, only that incarnation.

        A precondition that does not hold is a
        :class:`~databuild.adapters.kube.errors.Conflict`.
        """
        info = _info(kind)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        preconditions = {
            k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v
        }
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request(
            "DELETE",
            self.path(info, namespace, name),
            body=body,
            timeout=timeout,
            about=(info.kind, namespace or "", name),
        )

    # -- listings -----------------------------------------------------------------------

    async def list(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> ObjectList:
        """Every object of ``kind`` in ``namespace`` (``None``: all), read page by page.

        Each object gets its ``kind`` and ``apiVersion`` (a listing leaves them out) and
        goes through ``keep`` as soon as its page arrives, so a big listing never holds
        every whole object at once. A ``continue`` token that expires between pages
        (410 Gone) starts the listing again.
        """
        info = _info(kind)
        for attempt in range(LIST_RESTARTS + 1):
            try:
                return await self._list_once(info, namespace, label_selector, field_selector, keep)
            except _ContinueExpired as expired:
                if attempt == LIST_RESTARTS:
                    raise expired.error from None
                log.info("listing %s again: %s", info.plural, expired.error)
        raise AssertionError("unreachable")

    async def _list_once(
        self,
        info: KindInfo,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None,
    ) -> ObjectList:
        query = [("limit", str(self.page_size))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            try:
                page = await self.request(
                    "GET",
                    self.path(info, namespace),
                    query=[*query, ("continue", token)] if token else query,
                    about=(info.kind, namespace or "", ""),
                )
            except Gone as error:
                if token:
                    raise _ContinueExpired(error) from None
                raise
            for item in page.get("items") or []:
                item.setdefault("kind", info.kind)
                item.setdefault("apiVersion", info.api_version)
                items.append(keep(item) if keep else item)
            meta = _meta(page)
            token = str(meta.get("continue") or "")
            if not token:
                return ObjectList(items, str(meta.get("resourceVersion") or ""))

    # -- streams ------------------------------------------------------------------------

    async def stream(
        self,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        timeout: float | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The body of a GET as it arrives (a pod's log); ``timeout``: the longest silence."""
        self.requests += 1
        request = Request("GET", path, tuple(query), None, {"Accept": "*/*"}, timeout)
        async with self.transport.stream(request) as response:
            if response.status >= 300:
                body = b""
                async for chunk in response.chunks:
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        break
                raise error_from_response(response.status, body, f"GET {path}")
            async for chunk in response.chunks:
                yield chunk

    # -- watches ------------------------------------------------------------------------

    async def watch(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[WatchEvent]:
        """The events of one watch request (bookmarks included) until the server ends it.

        A resourceVersion too old to watch from raises
        :class:`~databuild.adapters.kube.errors.Gone`: list again.
        """
        info = _info(kind)
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        path = self.path(info, namespace)
        what = f"WATCH {info.kind} {namespace or '*'}"
        self.requests += 1
        request = Request(
            "GET", path, tuple(query), None, {"Accept": "application/json"}, timeout_seconds + 30
        )
        async with self.transport.stream(request) as response:
            if response.status >= 300:
                body = b""
                async for chunk in response.chunks:
                    body += chunk
                    if len(body) > self.max_body_bytes:
                        break
                raise error_from_response(response.status, body, what, kind=info.kind)
            buffer = b""
            async for chunk in response.chunks:
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line, what, info)
                if len(buffer) > self.max_body_bytes:
                    raise TooLarge(f"{what}: one event longer than {self.max_body_bytes} bytes")
            if buffer.strip():
                yield self._event(buffer, what, info)

    @staticmethod
    def _event(line: bytes, what: str, info: KindInfo) -> WatchEvent:
        try:
            event = json.loads(line)
        except ValueError as error:
            raise KubeError(f"{what}: an event is not JSON: {error}") from None
        kind = str(event.get("type") or "")
        obj = event.get("object")
        obj = dict(obj) if isinstance(obj, Mapping) else {}
        if kind == "ERROR":
            # A Status object: 410 Gone when the resourceVersion is too old.
            raise error_from_response(
                int(obj.get("code") or 0), json.dumps(obj).encode(), what, kind=info.kind
            )
        obj.setdefault("kind", info.kind)
        obj.setdefault("apiVersion", info.api_version)
        return WatchEvent(kind, obj)

    async def follow(
        self,
        kind: Kind,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
        retry_seconds: float = 0.5,
        keep: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """List, then watch, forever: ``LISTING`` (no object) as a listing starts, ``ADDED``
        for every listed object (through ``keep``, as :meth:`list`), ``SYNCED``, then the
        watch's events (bookmarks only move the resourceVersion on).

        A watch that ends or breaks without a response resumes where it was; one whose
        resourceVersion expired (410 Gone) lists again (``LISTING``, ``ADDED`` for
        everything, ``SYNCED``). Any other error is raised: the caller decides how long
        to wait before following again.
        """
        while True:
            yield WatchEvent("LISTING", {})
            listing = await self.list(kind, namespace, label_selector=label_selector, keep=keep)
            for item in listing.items:
                yield WatchEvent("ADDED", item)
            yield WatchEvent("SYNCED", {})
            version = listing.resource_version
            while True:
                try:
                    async for event in self.watch(
                        kind,
                        namespace,
                        resource_version=version,
                        label_selector=label_selector,
                        timeout_seconds=timeout_seconds,
                    ):
                        version = str(_meta(event.object).get("resourceVersion") or version)
                        if event.type != "BOOKMARK":
                            yield event
                except Gone as error:
                    log.info("%s: relisting", error)
                    break
                except KubeError as error:
                    if error.status:
                        raise
                    await asyncio.sleep(retry_seconds)  # no response: try again


class _ContinueExpired(Exception):
    def __init__(self, error: Gone) -> None:
        super().__init__(str(error))
        self.error = error
