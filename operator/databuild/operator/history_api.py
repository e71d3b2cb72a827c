"""A read-only HTTP API over the Build Event Log: events, the state at time T, lineage.

The operator serves it (``--history-port``) next to the store it writes, so history is
readable from a laptop without a database client or credentials: the CLI and the web
UI reach it through the API server's service proxy
(``/api/v1/namespaces/NS/services/NAME:PORT/proxy/...``), and Kubernetes RBAC decides
who may (``get`` on ``services/proxy`` for that Service). Nothing here writes.

Endpoints (all ``GET``, JSON):

* ``/api/v1/status``: schema version and last sequence number of the log;
* ``/api/v1/events``: events, filtered like ``databuild events`` (``namespace``, ``kind``,
  ``name``, ``ref`` glob, ``jobDefinition``, ``state``, ``reason``, ``since``, ``until``,
  ``afterSeq``, ``limit``; at most 5,000 per page);
* ``/api/v1/baseline``: what retention left of deleted events (for replay);
* ``/api/v1/history?at=T[&namespace=NS]``: every entity's state at ``T``;
* ``/api/v1/lineage?namespace=NS&ref=REF``: the events of a partition and of the JobRuns
  that built it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from databuild.adapters.bel import (
    BelStore,
    BelStoreError,
    EventQuery,
    HistoryTruncated,
    open_store,
    replay_at,
)
from databuild.adapters.bel.wire import baseline_to_dict, query_from_params

__all__ = ["HistoryServer", "serve_history"]

log = logging.getLogger("databuild.history")

Handler = Callable[[BelStore, Mapping[str, str]], Any]


class BadRequest(ValueError):
    """A parameter is missing or malformed (HTTP 400)."""


def _status(store: BelStore, params: Mapping[str, str]) -> Any:
    return {"schemaVersion": store.schema_version(), "lastSeq": store.last_seq()}


def _events(store: BelStore, params: Mapping[str, str]) -> Any:
    try:
        query = query_from_params(params)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    found = store.query(query)
    return {"events": [e.to_dict() for e in found], "lastSeq": store.last_seq()}


def _baseline(store: BelStore, params: Mapping[str, str]) -> Any:
    return baseline_to_dict(store.baseline())


def _history(store: BelStore, params: Mapping[str, str]) -> Any:
    if "at" not in params:
        raise BadRequest("history needs at=<RFC 3339 time>")
    try:
        at = datetime.fromisoformat(params["at"].replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"at={params['at']!r} is not an RFC 3339 time") from None
    try:
        states = replay_at(store, at, namespace=params.get("namespace"))
    except HistoryTruncated as e:
        raise BadRequest(str(e)) from None
    kind = params.get("kind")
    entities = [
        {"namespace": k.namespace, "kind": k.kind, "name": k.name, "state": state}
        for k, state in sorted(states.items(), key=lambda kv: str(kv[0]))
        if kind is None or k.kind == kind
    ]
    return {"at": params["at"], "entities": entities}


def _lineage(store: BelStore, params: Mapping[str, str]) -> Any:
    ref, ns = params.get("ref"), params.get("namespace")
    if not ref or not ns:
        raise BadRequest("lineage needs namespace=<namespace> and ref=<partition ref>")
    found = {
        e.seq: e
        for e in store.query(EventQuery(namespace=ns, kind="Partition", ref_glob=ref))
        if ref in e.event.refs  # a ref may contain glob characters: exact matches only
    }
    runs = {
        e.event.name
        for e in store.query(EventQuery(namespace=ns, kind="JobRun", ref_glob=ref))
        if ref in e.event.refs
    }
    for run in sorted(runs):
        for e in store.query(EventQuery(namespace=ns, kind="JobRun", name=run)):
            found[e.seq] = e
    return {
        "namespace": ns,
        "ref": ref,
        "jobRuns": sorted(runs),
        "events": [found[k].to_dict() for k in sorted(found)],
    }


ROUTES: Mapping[str, Handler] = {
    "/api/v1/status": _status,
    "/api/v1/events": _events,
    "/api/v1/baseline": _baseline,
    "/api/v1/history": _history,
    "/api/v1/lineage": _lineage,
}


class HistoryServer(ThreadingHTTPServer):
    """The history API on one port; each request opens the store read-only."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], bel_url: str) -> None:
        self.bel_url = bel_url
        super().__init__(address, _RequestHandler)

    @property
    def port(self) -> int:
        """The port it listens on (useful when started on port 0)."""
        port: int = self.server_address[1]
        return port

    def answer(self, path: str, params: Mapping[str, str]) -> tuple[int, Any]:
        """The HTTP status and JSON body for a GET of `path`."""
        if path in ("/healthz", "/readyz"):
            return 200, {"status": "ok"}
        handler = ROUTES.get(path.rstrip("/") or "/")
        if handler is None:
            return 404, {"error": f"no such endpoint {path!r}", "endpoints": sorted(ROUTES)}
        try:
            store = open_store(self.bel_url, migrate=False)
        except BelStoreError as e:
            return 503, {"error": f"the Build Event Log store is unavailable: {e}"}
        try:
            return 200, handler(store, params)
        except BadRequest as e:
            return 400, {"error": str(e)}
        except BelStoreError as e:
            return 503, {"error": f"reading the Build Event Log failed: {e}"}
        finally:
            store.close()

    def stop(self) -> None:
        """Stop serving."""
        self.shutdown()
        self.server_close()


class _RequestHandler(BaseHTTPRequestHandler):
    server: HistoryServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=False))
        code, body = self.server.answer(url.path, params)
        self._send(code, body)

    def _refuse(self) -> None:
        self._send(405, {"error": "the history API is read-only: GET only"})

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def serve_history(bel_url: str, port: int, addr: str = "0.0.0.0") -> HistoryServer:
    """Start the history API on ``addr:port`` in a daemon thread."""
    server = HistoryServer((addr, port), bel_url)
    threading.Thread(target=server.serve_forever, name="databuild-history", daemon=True).start()
    log.info("history API on http://%s:%d/api/v1/ (read-only)", addr, server.port)
    return server
