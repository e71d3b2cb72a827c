"""The API gateway: the one door every write to the API server goes through.

:class:`Gateway` is a small protocol (create, get, patch, status patch/replace, delete,
Event emission). :class:`KubernetesGateway` implements it with the kubernetes client,
off the event loop; :class:`FakeGateway` implements it in memory for unit tests. Both
count requests and successful writes by verb and kind (:class:`GatewayStats`), so tests
and benchmarks can report API writes per built partition.

Failures the caller must tell apart are typed: :class:`AlreadyExists`,
:class:`NotFound`, :class:`Conflict` (a stale resourceVersion), :class:`Invalid`.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import json
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from databuild.adapters.kinds import KINDS, kind_info
from databuild.adapters.resources import API_VERSION, GROUP, VERSION

EventType = Literal["Normal", "Warning"]
Verb = Literal[
    "create", "get", "list", "patch", "patch_status", "replace_status", "delete", "event"
]

REPORTING_COMPONENT = "databuild-operator"
#: Objects per page of a listing: a namespace of 10,000 pods is read in 20 requests of a
#: few MB each instead of one response of hundreds of MB, decoded all at once.
LIST_PAGE_SIZE = 500
DEFAULT_MAX_IN_FLIGHT = 32
"""Requests :class:`KubernetesGateway` sends at once (its worker threads)."""

Keep = Callable[[dict[str, Any]], dict[str, Any]]
"""What a listing keeps of each object (see :meth:`Gateway.list`)."""

_WRITE_VERBS = frozenset({"create", "patch", "patch_status", "replace_status", "delete", "event"})


class GatewayError(Exception):
    """An API request failed. ``status`` is the HTTP status (0: no response)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class AlreadyExists(GatewayError):
    """Create found an object of that name (harmless for deterministic names)."""


class NotFound(GatewayError):
    """The object does not exist (harmless for deletes)."""


class Conflict(GatewayError):
    """The object changed since the resourceVersion the write was based on: re-plan."""


class Invalid(GatewayError):
    """The API server rejected the object (schema or CEL validation)."""


@dataclass(frozen=True)
class ObjectReference:
    """The object an Event is about."""

    kind: str
    name: str
    namespace: str
    uid: str = ""
    api_version: str = API_VERSION

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectReference:
        """The reference to an object as the API server returned it."""
        meta = obj.get("metadata") or {}
        return cls(
            kind=str(obj.get("kind", "")),
            name=str(meta.get("name", "")),
            namespace=str(meta.get("namespace", "")),
            uid=str(meta.get("uid", "")),
            api_version=str(obj.get("apiVersion", API_VERSION)),
        )


@dataclass
class GatewayStats:
    """Requests and successful writes, by (verb, kind)."""

    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    writes: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    codes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """By (verb, kind, HTTP code): ``2xx`` for successes, ``0`` when no response came."""

    def record(self, verb: str, kind: str, error: GatewayError | None = None) -> None:
        """Count one request, and one write if it was a successful write."""
        self.requests[verb, kind] += 1
        code = "2xx" if error is None else str(error.status or 0)
        self.codes[verb, kind, code] += 1
        if error is not None:
            self.errors[verb, kind, type(error).__name__] += 1
        elif verb in _WRITE_VERBS:
            self.writes[verb, kind] += 1

    @property
    def total_writes(self) -> int:
        """All successful writes, Events included."""
        return sum(self.writes.values())

    @property
    def total_requests(self) -> int:
        """All requests, failed ones included."""
        return sum(self.requests.values())

    def writes_of(self, *, verb: str | None = None, kind: str | None = None) -> int:
        """Successful writes matching ``verb`` and/or ``kind``."""
        return sum(
            n
            for (v, k), n in self.writes.items()
            if (verb is None or v == verb) and (kind is None or k == kind)
        )

    def summary(self) -> dict[str, int]:
        """``"verb kind" -> writes``, for logs and docs."""
        return {f"{v} {k}": n for (v, k), n in sorted(self.writes.items())}


class Gateway(Protocol):
    """Every write the operator makes, and the few reads it needs outside its watches."""

    stats: GatewayStats

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (``apiVersion``/``kind`` select the API); the created object.

        Raises :class:`AlreadyExists` when the name is taken. The API server ignores
        ``status`` on create for kinds with a status subresource; write it afterwards.
        """
        ...

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """Read one object; :class:`NotFound` when it does not exist."""
        ...

    async def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        keep: Keep | None = None,
    ) -> list[dict[str, Any]]:
        """Every object of ``kind`` in ``namespace`` (``None``: all), each with its ``kind``.

        ``field_selector`` is the API server's (``involvedObject.name=x,reason=y``).

        Each object goes through ``keep`` (if given) as soon as its page of the listing
        arrives, so a big listing never holds every whole object at once.
        """
        ...

    async def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge-patch the object (not its status); a ``None`` value removes a key."""
        ...

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """JSON merge-patch ``status``; with ``resource_version``, :class:`Conflict` if stale."""
        ...

    async def replace_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Replace the status of ``obj`` as a whole, based on its ``metadata.resourceVersion``."""
        ...

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
    ) -> None:
        """Delete the object (only if its uid is ``uid``, when given); dependents follow."""
        ...

    async def emit_event(
        self,
        regarding: ObjectReference,
        *,
        type: EventType,
        reason: str,
        message: str,
        action: str = "Transition",
    ) -> None:
        """Record a Kubernetes Event about ``regarding`` (so ``kubectl describe`` shows it)."""
        ...


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_event_sequence = itertools.count()


def event_manifest(
    regarding: ObjectReference,
    *,
    type: EventType,
    reason: str,
    message: str,
    action: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A ``v1`` Event about ``regarding`` with a unique name."""
    moment = now or _now()
    # Names must be unique; the clock plus a process-wide sequence is, without a read.
    suffix = f"{int(moment.timestamp() * 1e6):x}{next(_event_sequence):x}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{regarding.name[:200]}.{suffix}",
            "namespace": regarding.namespace,
            "labels": {"app.kubernetes.io/managed-by": REPORTING_COMPONENT},
        },
        "involvedObject": {
            "apiVersion": regarding.api_version,
            "kind": regarding.kind,
            "name": regarding.name,
            "namespace": regarding.namespace,
            **({"uid": regarding.uid} if regarding.uid else {}),
        },
        "type": type,
        "reason": reason,
        "message": message[:1024],
        "action": action,
        "count": 1,
        "firstTimestamp": _timestamp(moment),
        "lastTimestamp": _timestamp(moment),
        "eventTime": _micro_timestamp(moment),
        "reportingComponent": REPORTING_COMPONENT,
        "reportingInstance": REPORTING_COMPONENT,
        "source": {"component": REPORTING_COMPONENT},
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch of ``patch`` onto ``target`` (a new value)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# ---------------------------------------------------------------------------------------
# The real gateway
# ---------------------------------------------------------------------------------------


def _error_for(status: int, body: bytes, what: str) -> GatewayError:
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    reason = str(data.get("reason", "")) if isinstance(data, dict) else ""
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    text = f"{what}: HTTP {status} {reason}: {message or body[:300]!r}"
    if status == 404:
        return NotFound(text, status=status, reason=reason)
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(text, status=status, reason=reason)
    if status == 409:
        return Conflict(text, status=status, reason=reason)
    if status == 422:
        return Invalid(text, status=status, reason=reason)
    return GatewayError(text, status=status, reason=reason)


class KubernetesGateway:
    """:class:`Gateway` over a kubernetes ``ApiClient``.

    The client is synchronous, so every request runs in a worker thread of the
    gateway's own pool and never blocks the event loop. The pool, not asyncio's default
    executor (``cores + 4`` threads: 6 on two cores), bounds the requests in flight, so
    ``max_in_flight`` concurrent writes really are concurrent; give the client's
    connection pool as many connections (``connection_pool_maxsize``). Lease requests
    have a thread of their own.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        request_timeout: float = 30.0,
        write_budget: Callable[[], float | None] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._api = api_client
        self._timeout = request_timeout
        self.max_in_flight = max_in_flight
        self._pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="databuild-api")
        # The Lease never waits for a thread behind a plan's writes: a renewal stuck in
        # that queue ends the term and abandons the very plan that held it up.
        self._lease_pool = ThreadPoolExecutor(1, thread_name_prefix="databuild-lease")
        # Seconds a write may still take (the leader's remaining term), None: no limit.
        # Lease writes are exempt: they are how a term is won.
        self.write_budget = write_budget
        self.stats = GatewayStats()

    def _request_sync(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        budgeted: bool = False,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        method_, url, header_params, body_, post_params = params
        timeout = self._timeout
        budget = self.write_budget() if budgeted and self.write_budget is not None else None
        if budget is not None:
            # Checked here, in the worker thread just before sending: a write that waited
            # for a thread past the term must not go out.
            if budget <= 0:
                raise GatewayError(f"{method} {path}: not sent, leadership has lapsed")
            timeout = min(timeout, budget)
        try:
            response = self._api.call_api(
                method_,
                url,
                header_params,
                body_,
                post_params,
                _request_timeout=timeout,
            )
            data = response.read()
        except Exception as error:  # urllib3 and ApiException: no response to classify
            raise GatewayError(f"{method} {path}: {error}") from error
        status = int(response.status)
        if status >= 300:
            raise _error_for(status, data, f"{method} {path}")
        if not data:
            return {}
        result = json.loads(data)
        return result if isinstance(result, dict) else {}

    async def _request(
        self,
        verb: Verb,
        kind: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        budgeted = method != "GET" and kind != "Lease"
        send = functools.partial(
            self._request_sync,
            method,
            path,
            body,
            content_type=content_type,
            query=query,
            budgeted=budgeted,
        )
        try:
            pool = self._lease_pool if kind == "Lease" else self._pool
            result = await asyncio.get_running_loop().run_in_executor(pool, send)
        except GatewayError as error:
            self.stats.record(verb, kind, error)
            raise
        self.stats.record(verb, kind)
        return result

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.create`."""
        info = kind_info(str(obj.get("kind")))
        namespace = str((obj.get("metadata") or {}).get("namespace", ""))
        return await self._request(
            "create", info.kind, "POST", info.collection(namespace), body=obj
        )

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """See :meth:`Gateway.get`."""
        info = kind_info(kind)
        return await self._request("get", kind, "GET", f"{info.collection(namespace)}/{name}")

    async def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        keep: Keep | None = None,
    ) -> list[dict[str, Any]]:
        """See :meth:`Gateway.list`: read in pages of :data:`LIST_PAGE_SIZE`."""
        info = kind_info(kind)
        query = [("limit", str(LIST_PAGE_SIZE))]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            page = [*query, ("continue", token)] if token else query
            result = await self._request(
                "list", kind, "GET", info.collection(namespace), query=page
            )
            for item in result.get("items") or []:
                item.setdefault("kind", kind)
                item.setdefault("apiVersion", info.api_version)
                out.append(keep(item) if keep else item)
            token = str((result.get("metadata") or {}).get("continue") or "")
            if not token:
                return out

    async def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Gateway.patch`."""
        info = kind_info(kind)
        body = dict(patch)
        if resource_version:
            body = merge_patch(body, {"metadata": {"resourceVersion": resource_version}})
        return await self._request(
            "patch",
            kind,
            "PATCH",
            f"{info.collection(namespace)}/{name}",
            body=body,
            content_type="application/merge-patch+json",
        )

    async def patch_status(
        self,
        kind: str,
        namespace: str,
        name: str,
        status: Mapping[str, Any],
        *,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """See :meth:`Gateway.patch_status`."""
        info = kind_info(kind)
        body: dict[str, Any] = {"status": dict(status)}
        if resource_version:
            # The API server rejects a merge patch whose resourceVersion is stale (409).
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._request(
            "patch_status",
            kind,
            "PATCH",
            f"{info.collection(namespace)}/{name}/status",
            body=body,
            content_type="application/merge-patch+json",
        )

    async def replace_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.replace_status`."""
        info = kind_info(str(obj.get("kind")))
        meta = obj.get("metadata") or {}
        path = f"{info.collection(str(meta.get('namespace', '')))}/{meta.get('name')}/status"
        return await self._request("replace_status", info.kind, "PUT", path, body=dict(obj))

    async def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        uid: str | None = None,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
    ) -> None:
        """See :meth:`Gateway.delete`."""
        info = kind_info(kind)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        await self._request(
            "delete", kind, "DELETE", f"{info.collection(namespace)}/{name}", body=body
        )

    async def emit_event(
        self,
        regarding: ObjectReference,
        *,
        type: EventType,
        reason: str,
        message: str,
        action: str = "Transition",
    ) -> None:
        """See :meth:`Gateway.emit_event`."""
        manifest = event_manifest(
            regarding, type=type, reason=reason, message=message, action=action
        )
        await self._request(
            "event",
            "Event",
            "POST",
            KINDS["Event"].collection(regarding.namespace),
            body=manifest,
        )


# ---------------------------------------------------------------------------------------
# The in-memory gateway for unit tests
# ---------------------------------------------------------------------------------------


__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "GROUP",
    "VERSION",
    "AlreadyExists",
    "Conflict",
    "EventType",
    "Gateway",
    "GatewayError",
    "GatewayStats",
    "Invalid",
    "Keep",
    "KubernetesGateway",
    "NotFound",
    "ObjectReference",
    "Verb",
    "event_manifest",
    "merge_patch",
]
