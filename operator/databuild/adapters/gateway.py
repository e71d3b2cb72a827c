"""The API gateway: the one door every write to the API server goes through.

:class:`Gateway` is a small protocol (create, get, patch, status patch/replace, delete,
Event emission). :class:`KubernetesGateway` implements it on the async
:class:`~databuild.adapters.kube.ApiClient`; ``databuild.testing.fake_gateway`` holds one
in memory for unit tests. Both count requests and successful writes by verb and kind
(:class:`GatewayStats`), so tests and benchmarks can report API writes per built
partition.

Failures are the client's one error type, :class:`~databuild.adapters.kube.KubeError`
(``GatewayError`` here), with the subclasses the caller must tell apart:
:class:`AlreadyExists`, :class:`NotFound`, :class:`Conflict` (a stale resourceVersion
or uid), :class:`Invalid`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from databuild.adapters.kinds import KINDS, kind_info
from databuild.adapters.kube import AlreadyExists, ApiClient, Conflict, Invalid, NotFound
from databuild.adapters.kube import KubeError as GatewayError
from databuild.adapters.kube.client import DEFAULT_PAGE_SIZE
from databuild.adapters.resources import API_VERSION, GROUP, VERSION

EventType = Literal["Normal", "Warning"]
Verb = Literal[
    "create", "get", "list", "patch", "patch_status", "replace_status", "delete", "event"
]

REPORTING_COMPONENT = "databuild-operator"
LIST_PAGE_SIZE = DEFAULT_PAGE_SIZE
DEFAULT_MAX_IN_FLIGHT = 32
"""Requests :class:`KubernetesGateway` sends at once."""

Keep = Callable[[dict[str, Any]], dict[str, Any]]
"""What a listing keeps of each object (see :meth:`Gateway.list`)."""

_WRITE_VERBS = frozenset({"create", "patch", "patch_status", "replace_status", "delete", "event"})


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


class KubernetesGateway:
    """:class:`Gateway` over the async :class:`~databuild.adapters.kube.ApiClient`.

    At most ``max_in_flight`` requests are sent at once (a semaphore; give the client's
    transport one connection more than that). Lease requests have a lane of their own:
    a renewal never waits behind a plan's writes.
    """

    def __init__(
        self,
        client: ApiClient,
        *,
        request_timeout: float = 30.0,
        write_budget: Callable[[], float | None] | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.client = client
        self._timeout = request_timeout
        self.max_in_flight = max_in_flight
        # Made on first use, inside the event loop that runs the operator.
        self._lanes: tuple[asyncio.Semaphore, asyncio.Semaphore] | None = None
        # Seconds a write may still take (the leader's remaining term), None: no limit.
        # Lease writes are exempt: they are how a term is won.
        self.write_budget = write_budget
        self.stats = GatewayStats()

    def _lane(self, kind: str) -> asyncio.Semaphore:
        if self._lanes is None:
            self._lanes = (asyncio.Semaphore(self.max_in_flight), asyncio.Semaphore(1))
        return self._lanes[1] if kind == "Lease" else self._lanes[0]

    async def _request(
        self,
        verb: Verb,
        kind: str,
        send: Callable[[float], Awaitable[dict[str, Any]]],
        *,
        what: str,
    ) -> dict[str, Any]:
        budgeted = verb not in ("get", "list") and kind != "Lease"
        try:
            async with self._lane(kind):
                timeout = self._timeout
                budget = self.write_budget() if budgeted and self.write_budget else None
                if budget is not None:
                    # Checked after the wait for a lane, just before sending: a write
                    # that waited past the term must not go out.
                    if budget <= 0:
                        raise GatewayError(f"{what}: not sent, leadership has lapsed")
                    timeout = min(timeout, budget)
                result = await send(timeout)
        except GatewayError as error:
            self.stats.record(verb, kind, error)
            raise
        self.stats.record(verb, kind)
        return result

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.create`."""
        info = kind_info(str(obj.get("kind")))
        return await self._request(
            "create",
            info.kind,
            lambda timeout: self.client.create(obj, kind=info, timeout=timeout),
            what=f"POST {info.kind}",
        )

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """See :meth:`Gateway.get`."""
        return await self._request(
            "get",
            kind,
            lambda timeout: self.client.get(kind, namespace, name, timeout=timeout),
            what=f"GET {kind}",
        )

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
        # One lane slot for the whole listing: its pages follow one another anyway.
        items: list[dict[str, Any]] = []

        async def listing(_timeout: float) -> dict[str, Any]:
            result = await self.client.list(
                kind,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                keep=keep,
            )
            items.extend(result.items)
            return {}

        await self._request("list", kind, listing, what=f"LIST {kind}")
        return items

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
        return await self._request(
            "patch",
            kind,
            lambda timeout: self.client.patch(
                kind, namespace, name, patch, resource_version=resource_version, timeout=timeout
            ),
            what=f"PATCH {kind}",
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
        # With a resourceVersion the API server rejects the patch if it is stale (409).
        return await self._request(
            "patch_status",
            kind,
            lambda timeout: self.client.patch_status(
                kind, namespace, name, status, resource_version=resource_version, timeout=timeout
            ),
            what=f"PATCH {kind} status",
        )

    async def replace_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.replace_status`."""
        info = kind_info(str(obj.get("kind")))
        return await self._request(
            "replace_status",
            info.kind,
            lambda timeout: self.client.replace(
                obj, subresource="status", kind=info, timeout=timeout
            ),
            what=f"PUT {info.kind} status",
        )

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
        await self._request(
            "delete",
            kind,
            lambda timeout: self.client.delete(
                kind, namespace, name, uid=uid, propagation=propagation, timeout=timeout
            ),
            what=f"DELETE {kind}",
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
            lambda timeout: self.client.create(manifest, kind=KINDS["Event"], timeout=timeout),
            what="POST Event",
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
