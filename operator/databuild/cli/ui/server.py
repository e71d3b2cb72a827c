"""The web UI's HTTP server: static pages from the package and JSON from the cluster.

Read-only by construction: only ``GET`` is served, and the data comes from the same
reads as ``databuild status``/``explain`` (the kubeconfig's credentials) and the Build
Event Log (``--bel-url``, e.g. the in-cluster history API through the service proxy).
It listens on 127.0.0.1 only: it acts with the user's credentials.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from databuild.adapters.bel import BelStore, BelStoreError, EventQuery
from databuild.cli.errors import CliError
from databuild.cli.kube import Cluster, Snapshot
from databuild.cli.ui import data

__all__ = ["UiServer"]

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}
#: One snapshot serves the requests of one page load (the grid, the wants, ...).
_SNAPSHOT_SECONDS = 2.0


class UiServer(ThreadingHTTPServer):
    """``databuild ui``: pages and their JSON, for one namespace."""

    daemon_threads = True

    def __init__(
        self,
        port: int,
        cluster: Cluster,
        open_bel: Callable[[], BelStore] | None,
        host: str = "127.0.0.1",
    ) -> None:
        self.cluster = cluster
        self.open_bel = open_bel
        self._lock = threading.Lock()
        self._snap: tuple[float, bool, Snapshot] | None = None
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        """The port it listens on."""
        port: int = self.server_address[1]
        return port

    def snapshot(self, attempts: bool = False) -> Snapshot:
        """The namespace, read at most every two seconds."""
        with self._lock:
            now = time.monotonic()
            if self._snap is not None:
                at, had_attempts, snap = self._snap
                if now - at < _SNAPSHOT_SECONDS and (had_attempts or not attempts):
                    return snap
            snap = self.cluster.snapshot(attempts=attempts)
            self._snap = (now, attempts, snap)
            return snap

    def api(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        """Status and JSON of ``/api/...``."""
        match path:
            case "/api/wants":
                return 200, data.wants(self.snapshot())
            case "/api/grid":
                return 200, data.grid(self.snapshot())
            case "/api/lineage":
                ref = params.get("ref", "")
                snap = self.snapshot()
                if ref not in snap.partitions:
                    return 404, {"error": f"no partition {ref!r} in namespace {snap.namespace}"}
                return 200, data.lineage(snap, ref)
            case "/api/timeline":
                found = data.timeline(self.snapshot(attempts=True), params.get("want", ""))
                if found is None:
                    return 404, {"error": f"no Want {params.get('want', '')!r}"}
                return 200, found
            case "/api/events":
                return self._events(params)
        return 404, {"error": f"no such endpoint {path!r}"}

    def _events(self, params: Mapping[str, str]) -> tuple[int, Any]:
        if self.open_bel is None:
            return 200, {"events": [], "note": "no Build Event Log: start the UI with --bel-url"}
        try:
            store = self.open_bel()
            try:
                found = store.query(
                    EventQuery(
                        namespace=self.cluster.namespace,
                        kind=params.get("kind") or None,
                        name=params.get("name") or None,
                        ref_glob=params.get("ref") or None,
                    )
                )
            finally:
                store.close()
        except (BelStoreError, CliError) as e:
            return 503, {"error": str(e)}
        return 200, {"events": [e.to_dict() for e in found[-2000:]], "total": len(found)}


class _Handler(BaseHTTPRequestHandler):
    server: UiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/api/"):
            try:
                code, body = self.server.api(url.path, dict(parse_qsl(url.query)))
            except CliError as e:
                code, body = 503, {"error": str(e)}
            payload = json.dumps(body).encode()
            self._send(code, "application/json", payload)
            return
        name = "index.html" if url.path in ("/", "/index.html") else url.path.lstrip("/")
        static = resources.files("databuild.cli.ui").joinpath("static")
        if "/" in name or not static.joinpath(name).is_file():
            self._send(404, "text/plain", b"not found")
            return
        suffix = name[name.rfind(".") :]
        self._send(
            200, _TYPES.get(suffix, "application/octet-stream"), static.joinpath(name).read_bytes()
        )

    def _send(self, code: int, kind: str, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return None
