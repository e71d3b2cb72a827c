"""An in-memory API server behind the :class:`~databuild.adapters.gateway.Gateway` protocol.

For tests and the scale benchmark, never the product: it behaves like the API server where
the operator depends on it (names, ``resourceVersion`` conflicts, status subresources,
owner garbage collection, field selectors) and can be told to fail the next request.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, cast

from databuild.adapters.gateway import (
    AlreadyExists,
    Conflict,
    EventType,
    GatewayError,
    GatewayStats,
    Invalid,
    Keep,
    NotFound,
    ObjectReference,
    Verb,
    merge_patch,
)
from databuild.adapters.kinds import kind_info

__all__ = ["FakeGateway", "RecordedEvent", "wire_copy"]


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RecordedEvent:
    """An Event the :class:`FakeGateway` was asked to emit."""

    regarding: ObjectReference
    type: EventType
    reason: str
    message: str
    action: str


_T = TypeVar("_T")


def wire_copy(obj: _T) -> _T:
    """``obj`` as a client decodes it from the wire: a JSON round trip, so every answer
    is new objects with strings of its own (as a real client's are), never shared."""
    return cast(_T, json.loads(json.dumps(obj)))


def _fields_match(obj: Mapping[str, Any], selector: str) -> bool:
    for term in selector.split(","):
        path, _, value = term.partition("=")
        found: Any = obj
        for part in path.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        if str(found) != value:
            return False
    return True


class FakeGateway:
    """An in-memory gateway that behaves like the API server where it matters.

    Names are unique per (kind, namespace); ``resourceVersion`` increases on every
    write and stale writes raise :class:`Conflict`; ``status`` is ignored on create and
    only the status verbs change it; deleting an owner deletes its dependents (like the
    garbage collector). ``fail_next`` injects an error into the next matching request.
    """

    def __init__(self) -> None:
        self.stats = GatewayStats()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.events: list[RecordedEvent] = []
        self._versions = itertools.count(1)
        self._injected: list[tuple[str, str, GatewayError]] = []

    # -- test helpers ------------------------------------------------------------------

    def fail_next(self, verb: Verb, kind: str, error: GatewayError) -> None:
        """Make the next ``verb`` request on ``kind`` raise ``error``."""
        self._injected.append((verb, kind, error))

    def stored(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or ``None``."""
        return self.objects.get((kind, namespace, name))

    def bump(self, obj: dict[str, Any]) -> None:
        """Give a stored ``obj`` the next ``resourceVersion`` (a change another controller
        made to it, such as the job controller finishing a Job)."""
        self._bump(obj)

    def of_kind(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every stored object of ``kind`` (in ``namespace``, when given), by name."""
        return [
            obj
            for (k, ns, _), obj in sorted(self.objects.items())
            if k == kind and (namespace is None or ns == namespace)
        ]

    # -- internals ---------------------------------------------------------------------

    def _begin(self, verb: Verb, kind: str) -> None:
        for index, (v, k, error) in enumerate(self._injected):
            if v == verb and k == kind:
                del self._injected[index]
                self.stats.record(verb, kind, error)
                raise error

    def _fail(self, verb: Verb, kind: str, error: GatewayError) -> GatewayError:
        self.stats.record(verb, kind, error)
        return error

    def _existing(self, verb: Verb, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise self._fail(
                verb, kind, NotFound(f"{kind} {namespace}/{name} not found", status=404)
            )
        return obj

    def _check_version(
        self, verb: Verb, obj: Mapping[str, Any], resource_version: str | None
    ) -> None:
        if resource_version and obj["metadata"]["resourceVersion"] != resource_version:
            meta = obj["metadata"]
            raise self._fail(
                verb,
                str(obj["kind"]),
                Conflict(
                    f"{obj['kind']} {meta['namespace']}/{meta['name']}: the object has been "
                    f"modified (resourceVersion {resource_version} is stale)",
                    status=409,
                    reason="Conflict",
                ),
            )

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    # -- the protocol ------------------------------------------------------------------

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.create`."""
        kind = str(obj.get("kind"))
        info = kind_info(kind)
        self._begin("create", kind)
        stored = copy.deepcopy(dict(obj))
        meta = stored.setdefault("metadata", {})
        key = (kind, str(meta.get("namespace", "")), str(meta.get("name", "")))
        if not key[2]:
            raise self._fail("create", kind, Invalid("metadata.name is required", status=422))
        if key in self.objects:
            raise self._fail(
                "create",
                kind,
                AlreadyExists(
                    f"{kind} {key[1]}/{key[2]} already exists", status=409, reason="AlreadyExists"
                ),
            )
        if info.has_status:
            stored.pop("status", None)
        meta.update(
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=_timestamp(_now()),
        )
        self._bump(stored)
        self.objects[key] = stored
        self.stats.record("create", kind)
        return wire_copy(stored)

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """See :meth:`Gateway.get`."""
        self._begin("get", kind)
        obj = self._existing("get", kind, namespace, name)
        self.stats.record("get", kind)
        return wire_copy(obj)

    async def list(
        self,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        keep: Keep | None = None,
    ) -> list[dict[str, Any]]:
        """See :meth:`Gateway.list` (``label_selector``: ``key`` or ``key=value`` only;
        ``field_selector``: ``path=value`` terms joined by commas)."""
        self._begin("list", kind)
        kind_info(kind)
        out = []
        for obj in self.of_kind(kind, namespace):
            labels = obj["metadata"].get("labels") or {}
            if label_selector:
                key, _, value = label_selector.partition("=")
                if key not in labels or (value and labels[key] != value):
                    continue
            if field_selector and not _fields_match(obj, field_selector):
                continue
            item = wire_copy(obj)
            out.append(keep(item) if keep else item)
        self.stats.record("list", kind)
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
        self._begin("patch", kind)
        obj = self._existing("patch", kind, namespace, name)
        self._check_version("patch", obj, resource_version)
        patch = {k: v for k, v in patch.items() if k != "status"}
        updated = merge_patch(obj, patch)
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            updated["metadata"][immutable] = obj["metadata"][immutable]
        if updated.get("spec") != obj.get("spec"):
            updated["metadata"]["generation"] = obj["metadata"]["generation"] + 1
        self._bump(updated)
        self.objects[kind, namespace, name] = updated
        self.stats.record("patch", kind)
        return wire_copy(updated)

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
        self._begin("patch_status", kind)
        obj = self._existing("patch_status", kind, namespace, name)
        self._check_version("patch_status", obj, resource_version)
        obj["status"] = merge_patch(obj.get("status") or {}, status)
        self._bump(obj)
        self.stats.record("patch_status", kind)
        return wire_copy(obj)

    async def replace_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """See :meth:`Gateway.replace_status`."""
        kind = str(obj.get("kind"))
        meta = obj.get("metadata") or {}
        self._begin("replace_status", kind)
        stored = self._existing(
            "replace_status", kind, str(meta.get("namespace")), str(meta.get("name"))
        )
        self._check_version(
            "replace_status", stored, str(meta.get("resourceVersion") or "") or None
        )
        stored["status"] = copy.deepcopy(obj.get("status") or {})
        self._bump(stored)
        self.stats.record("replace_status", kind)
        return wire_copy(stored)

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
        self._begin("delete", kind)
        obj = self._existing("delete", kind, namespace, name)
        if uid and obj["metadata"]["uid"] != uid:
            raise self._fail(
                "delete",
                kind,
                Conflict(f"{kind} {namespace}/{name}: uid precondition failed", status=409),
            )
        del self.objects[kind, namespace, name]
        self.stats.record("delete", kind)
        if propagation != "Orphan":
            self._collect_garbage(obj["metadata"]["uid"])

    def _collect_garbage(self, owner_uid: str) -> None:
        # What the garbage collector does after an owner is gone; not counted as our writes.
        doomed = [
            key
            for key, obj in self.objects.items()
            if any(
                ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or []
            )
        ]
        for key in doomed:
            obj = self.objects.pop(key, None)
            if obj is not None:
                self._collect_garbage(obj["metadata"]["uid"])

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
        self._begin("event", "Event")
        self.events.append(RecordedEvent(regarding, type, reason, message, action))
        self.stats.record("event", "Event")
