"""A minimal asyncio Kubernetes API client (aiohttp): requests and watches.

The baseline orchestrator and the scenario observers use it. It is deliberately small
(what a hand-written, zero-overhead orchestrator would use): JSON in and out, one
connection pool, client-certificate or bearer-token authentication from a kubeconfig.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml

__all__ = ["ApiError", "Kube", "Watcher", "kubeconfig_with_token"]


class ApiError(RuntimeError):
    """An API request failed; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = dict(body or {})


def _current(doc: Mapping[str, Any], context: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (cluster, user) sections of a kubeconfig's current (or given) context."""
    name = context or doc.get("current-context")
    ctx = next((c["context"] for c in doc.get("contexts") or [] if c.get("name") == name), None)
    if ctx is None:
        raise ValueError(f"kubeconfig has no context {name!r}")
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user: dict[str, Any] = next(
        (u["user"] for u in doc.get("users") or [] if u["name"] == ctx.get("user")), {}
    )
    return dict(cluster), dict(user or {})


def _data(section: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    """Inline ``<key>-data`` (base64) or the file named by ``<key>``."""
    if section.get(f"{key}-data"):
        return base64.b64decode(section[f"{key}-data"])
    if section.get(key):
        path = Path(section[key])
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def kubeconfig_with_token(admin_kubeconfig: Path, token: str, user: str) -> dict[str, Any]:
    """A kubeconfig for the admin kubeconfig's cluster that authenticates with ``token``."""
    doc = yaml.safe_load(admin_kubeconfig.read_text())
    cluster, _ = _current(doc, None)
    base = admin_kubeconfig.parent
    ca = _data(cluster, "certificate-authority", base)
    cluster_out: dict[str, Any] = {"server": cluster["server"]}
    if ca is not None:
        cluster_out["certificate-authority-data"] = base64.b64encode(ca).decode()
    if cluster.get("insecure-skip-tls-verify"):
        cluster_out["insecure-skip-tls-verify"] = True
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": cluster_out}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": user}}],
        "current-context": "bench",
    }


class Kube:
    """An authenticated API client; use ``async with Kube.from_kubeconfig(...) as kube``."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | bool,
        headers: Mapping[str, str],
        *,
        connections: int = 64,
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._headers = dict(headers)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0
        """Requests sent (watches included)."""

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
        doc = yaml.safe_load(path.read_text())
        cluster, user = _current(doc, context)
        base = path.parent
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        ssl_context: ssl.SSLContext | bool
        if cluster.get("insecure-skip-tls-verify"):
            ssl_context = False
        else:
            ca = _data(cluster, "certificate-authority", base)
            ssl_context = ssl.create_default_context(cadata=ca.decode() if ca else None)
        cert = _data(user, "client-certificate", base)
        key = _data(user, "client-key", base)
        if cert is not None and key is not None:
            if ssl_context is False:
                ssl_context = ssl.create_default_context()
                ssl_context.check_hostname = False
                ssl_context.verify_mode = ssl.CERT_NONE
            assert isinstance(ssl_context, ssl.SSLContext)
            # The ssl module loads certificates from files only: a private temporary
            # directory holds them just long enough.
            with tempfile.TemporaryDirectory() as tmp:
                cert_path, key_path = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert_path.write_bytes(cert)
                key_path.touch(mode=0o600)
                key_path.write_bytes(key)
                ssl_context.load_cert_chain(str(cert_path), str(key_path))
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        return cls(cluster["server"], ssl_context, headers, connections=connections)

    async def __aenter__(self) -> Kube:
        connector = aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector, headers=self._headers, timeout=aiohttp.ClientTimeout(total=None)
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session (``async with`` the client first)."""
        if self._session is None:
            raise RuntimeError("the client is not open: use `async with kube:`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        """One request; the decoded JSON response, or :class:`ApiError` for >= 300."""
        self.requests += 1
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.server + path,
            data=data,
            params=dict(query or {}),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            raw = await response.read()
            decoded = json.loads(raw) if raw else {}
            if response.status >= 300:
                message = decoded.get("message") if isinstance(decoded, dict) else None
                raise ApiError(
                    f"{method} {path}: HTTP {response.status}: {message or raw[:300]!r}",
                    response.status,
                    decoded if isinstance(decoded, dict) else None,
                )
            return decoded if isinstance(decoded, dict) else {}

    async def list(
        self, path: str, *, label_selector: str | None = None, limit: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """Every item of a collection (paged) and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        query: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            query["labelSelector"] = label_selector
        while True:
            page = await self.request("GET", path, query=query)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            query["continue"] = meta["continue"]

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The events of one watch request: ``(type, object)`` until the server ends it."""
        self.requests += 1
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        async with self.session.get(
            self.server + path,
            params=query,
            timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
        ) as response:
            if response.status >= 300:
                raw = await response.read()
                raise ApiError(f"WATCH {path}: HTTP {response.status}: {raw[:300]!r}", 0)
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        yield str(event.get("type")), dict(event.get("object") or {})


Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class Watcher:
    """List, then watch, a collection forever, calling ``handler(type, object)``.

    ``ready`` is set once the initial list has been handled. Watches that end are
    resumed from the last resourceVersion; an expired one (410 Gone) lists again.
    """

    def __init__(
        self,
        kube: Kube,
        path: str,
        handler: Handler,
        *,
        label_selector: str | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self.label_selector = label_selector
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _call(self, kind: str, obj: dict[str, Any]) -> None:
        result = self.handler(kind, obj)
        if result is not None:
            await result

    async def _run(self) -> None:
        while True:
            items, version = await self.kube.list(self.path, label_selector=self.label_selector)
            for item in items:
                await self._call("ADDED", item)
            self.ready.set()
            expired = False
            while not expired:
                try:
                    async for kind, obj in self.kube.watch(
                        self.path, version, label_selector=self.label_selector
                    ):
                        if kind == "ERROR":
                            expired = True  # 410 Gone, typically: list again
                            break
                        version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                        if kind != "BOOKMARK":
                            await self._call(kind, obj)
                except (TimeoutError, aiohttp.ClientError):
                    await asyncio.sleep(0.1)

    def start(self) -> Watcher:
        """Start watching in a task."""
        self._task = asyncio.create_task(self._run(), name=f"watch {self.path}")
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
