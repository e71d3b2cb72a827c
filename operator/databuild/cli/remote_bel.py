"""The Build Event Log of an in-cluster operator, read through its history API.

``--bel-url service://NAMESPACE/SERVICE:PORT`` (the chart's NOTES print the exact one)
makes ``events``, ``history`` and ``explain`` read the operator's history API through
the API server's service proxy, with the kubeconfig's credentials: Kubernetes RBAC
(``get`` on ``services/proxy``) decides who may read, and no database is exposed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from databuild.adapters.bel import (
    Baseline,
    BelEvent,
    BelStoreError,
    BelStoreUnavailable,
    EventQuery,
    StoredEvent,
)
from databuild.adapters.bel.wire import (
    MAX_PAGE,
    baseline_from_dict,
    query_to_params,
    stored_event_from_dict,
)

__all__ = ["SERVICE_SCHEME", "Fetch", "ServiceBelStore", "ServiceRef", "parse_service_url"]

SERVICE_SCHEME = "service://"

Fetch = Callable[[str, Mapping[str, str]], tuple[int, bytes]]
"""GET a path of the history API with query parameters: (HTTP status, body)."""

_SERVICE = re.compile(r"^service://([a-z0-9-]+)/([a-z0-9-]+)(?::([0-9]+|[a-z0-9-]+))?/?$")


class ServiceRef:
    """Where the history API is: a Service's namespace, name and port (number or name)."""

    def __init__(self, namespace: str, name: str, port: str) -> None:
        self.namespace, self.name, self.port = namespace, name, port

    def proxy_path(self, path: str) -> str:
        """`path` of the API, as a path of the API server's service proxy."""
        return (
            f"/api/v1/namespaces/{quote(self.namespace)}/services/"
            f"{quote(self.name)}:{quote(self.port)}/proxy{path}"
        )

    def __str__(self) -> str:
        return f"{SERVICE_SCHEME}{self.namespace}/{self.name}:{self.port}"


def parse_service_url(url: str) -> ServiceRef:
    """``service://NAMESPACE/NAME[:PORT]`` (port default ``history``), or ``ValueError``."""
    match = _SERVICE.match(url)
    if match is None:
        raise ValueError(
            f"{url!r} is not service://NAMESPACE/SERVICE[:PORT] (the operator's history "
            "Service, e.g. service://databuild-system/databuild-databuild-operator:history)"
        )
    return ServiceRef(match[1], match[2], match[3] or "history")


class ServiceBelStore:
    """A read-only :class:`~databuild.adapters.bel.BelStore` over the history API."""

    def __init__(self, service: ServiceRef, fetch: Fetch) -> None:
        self._service = service
        self._fetch = fetch

    @property
    def url(self) -> str:
        return str(self._service)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        status, body = self._fetch(path, params or {})
        if status == 200:
            return json.loads(body)
        try:
            message = json.loads(body).get("error") or body.decode(errors="replace")
        except (ValueError, AttributeError):
            message = body.decode(errors="replace")[:300]
        if status in (401, 403):
            raise BelStoreUnavailable(
                f"{self.url}: forbidden ({status}): reading history needs `get` on "
                f"services/proxy for Service {self._service.name} in namespace "
                f"{self._service.namespace}"
            )
        if status == 400:
            raise BelStoreError(f"{self.url}: {message}")
        raise BelStoreUnavailable(f"{self.url}: HTTP {status}: {message}")

    def schema_version(self) -> int:
        return int(self._get("/api/v1/status")["schemaVersion"])

    def last_seq(self) -> int:
        return int(self._get("/api/v1/status")["lastSeq"])

    def query(self, query: EventQuery | None = None) -> list[StoredEvent]:
        query = query or EventQuery()
        found: list[StoredEvent] = []
        after = query.after_seq
        while True:
            want = MAX_PAGE if query.limit is None else min(MAX_PAGE, query.limit - len(found))
            page_query = dataclasses.replace(query, after_seq=after, limit=want)
            events = self._get("/api/v1/events", query_to_params(page_query))["events"]
            found.extend(stored_event_from_dict(e) for e in events)
            if len(events) < want or (query.limit is not None and len(found) >= query.limit):
                return found
            after = found[-1].seq

    def baseline(self) -> Baseline:
        return baseline_from_dict(self._get("/api/v1/baseline"))

    def close(self) -> None:
        return None

    # -- a history API never writes ---------------------------------------------------

    def _read_only(self) -> BelStoreError:
        return BelStoreError(f"{self.url} is the operator's read-only history API")

    def migrate(self, target: int | None = None) -> int:
        raise self._read_only()

    def append(self, events: Sequence[BelEvent]) -> int:
        raise self._read_only()

    def delete_older_than(self, cutoff: datetime) -> int:
        raise self._read_only()
