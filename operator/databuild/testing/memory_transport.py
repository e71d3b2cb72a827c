"""An API server held in memory, behind the client's transport protocol.

:class:`MemoryTransport` answers the HTTP requests :class:`databuild.adapters.kube.ApiClient`
sends, the way httpx's ``MockTransport`` stands in for a network: the real client code
(paths, bodies, paging, error mapping, watches) runs in unit tests. It behaves like the
API server where the operator depends on it: ``resourceVersion`` on every write and 409
Conflict for a stale one, 404 NotFound, 409 AlreadyExists, paging with
``limit``/``continue`` (and 410 Gone for an expired token), status subresources of the
kinds in :data:`~databuild.adapters.kinds.KINDS`, merge and JSON patches, delete
preconditions and finalizers, label and field selectors, watches (bookmarks, 410
Gone for a compacted resourceVersion) and pod logs (``logs``). Answers are ``Status``
bodies like the real one.

``reject(plural, check)`` plays schema/CEL validation (422 Invalid), ``fail_next`` any
other failure; ``compact()`` expires every ``continue`` token and watch position issued
so far (open watches end with 410 Gone); ``requests`` records what was sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from databuild.adapters.gateway import merge_patch
from databuild.adapters.kinds import KINDS
from databuild.adapters.kube import Request, Response, StreamedResponse

__all__ = ["MemoryTransport", "status_body"]

_STATUS_PLURALS = frozenset(info.plural for info in KINDS.values() if info.has_status)
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


def status_body(code: int, message: str, reason: str = "", **details: str) -> bytes:
    """A ``v1`` ``Status`` failure body, as the API server sends it."""
    return json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason or _REASONS.get(code, ""),
            "details": details,
            "code": code,
        }
    ).encode()


class _Answer(Exception):
    """A failure answer, raised anywhere in request handling."""

    def __init__(self, code: int, message: str, reason: str = "", **details: str) -> None:
        super().__init__(message)
        self.response = Response(
            code,
            {"Content-Type": "application/json"},
            status_body(code, message, reason, **details),
        )


@dataclass(frozen=True)
class _Route:
    api: str  # "v1" or "group/version"
    plural: str
    namespace: str | None
    name: str
    subresource: str

    @property
    def key(self) -> tuple[str, str]:
        return self.api, self.plural


def _route(path: str) -> _Route:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        api, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        api, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise _Answer(404, f"the server could not find the requested resource ({path})")
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise _Answer(404, f"the server could not find the requested resource ({path})")
    return _Route(api, rest[0], namespace, *[*rest[1:], "", ""][:2])


def _labels_match(labels: Mapping[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key.rstrip("=")) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _fields_match(obj: Mapping[str, Any], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        negate = "!=" in term
        path, value = term.split("!=" if negate else "=", 1)
        found: Any = obj
        for part in path.lstrip("=").split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        if (str(found) == value.lstrip("=")) == negate:
            return False
    return True


def _json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 ``add``/``remove``/``replace``/``test`` (what the client sends)."""
    if not isinstance(operations, list):
        raise _Answer(400, "a JSON patch must be a list of operations")
    result = copy.deepcopy(target)
    for op in operations:
        pointer = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = result
        for part in pointer[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = pointer[-1]
        kind = op["op"]
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op["value"]:
                raise _Answer(422, f"the test of {op['path']} failed")
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            elif parent.pop(last, None) is None:
                raise _Answer(422, f"cannot remove {op['path']}: no such path")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, op["value"])
                else:
                    parent[index] = op["value"]
            else:
                parent[last] = op["value"]
        else:
            raise _Answer(422, f"unsupported JSON patch operation {kind!r}")
    return result


@dataclass
class _Change:
    version: int
    type: str
    key: tuple[str, str]
    obj: dict[str, Any]


@dataclass
class _Injected:
    code: int
    message: str
    reason: str
    method: str | None
    plural: str | None


@dataclass
class MemoryTransport:
    """An in-memory API server answering the :class:`~databuild.adapters.kube.Transport`
    protocol; see the module docstring."""

    objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=dict
    )
    """``(api, plural) -> (namespace, name) -> object``."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    """``(method, path)`` of every request, in order."""
    _versions: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _version: int = 0
    _compacted: int = 0
    _epoch: int = 0
    _history: list[_Change] = field(default_factory=list)
    _injected: list[_Injected] = field(default_factory=list)
    _checks: dict[str, list[Callable[[Mapping[str, Any]], str | None]]] = field(
        default_factory=dict
    )
    _changed: asyncio.Event | None = None
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(namespace, pod) -> log text`` served at the pod's ``log`` subresource."""

    # -- test controls ------------------------------------------------------------------

    def reject(self, plural: str, check: Callable[[Mapping[str, Any]], str | None]) -> None:
        """Validate every written ``plural`` object: ``check`` returns why it is invalid."""
        self._checks.setdefault(plural, []).append(check)

    def fail_next(
        self,
        code: int,
        message: str = "injected failure",
        *,
        reason: str = "",
        method: str | None = None,
        plural: str | None = None,
    ) -> None:
        """Answer the next request (of ``method`` on ``plural``, if given) with ``code``."""
        self._injected.append(_Injected(code, message, reason, method, plural))

    def compact(self) -> None:
        """Forget the history so far: older ``continue`` tokens and watches get 410 Gone."""
        self._compacted = self._version
        self._epoch += 1
        self._history.clear()
        if self._changed is not None:
            self._changed.set()

    def bookmark(self) -> None:
        """Send a BOOKMARK at the current resourceVersion to every watch."""
        self._record("BOOKMARK", ("", ""), {"metadata": {"resourceVersion": str(self._version)}})

    # -- the protocol ---------------------------------------------------------------------

    async def send(self, request: Request, *, max_bytes: int = 0) -> Response:
        """Answer one request (``max_bytes`` is the client's to check)."""
        self.requests.append((request.method, request.path))
        try:
            route = _route(request.path)
            self._inject(request.method, route.plural)
            return self._answer(request, route)
        except _Answer as answer:
            return answer.response

    @contextlib.asynccontextmanager
    async def stream(self, request: Request) -> AsyncIterator[StreamedResponse]:
        """A watch: the changes after its resourceVersion, then new ones as they happen,
        until its ``timeoutSeconds``."""
        self.requests.append((request.method, request.path))
        query = dict(request.query)
        try:
            route = _route(request.path)
            self._inject(request.method, route.plural)
            if route.plural == "pods" and route.subresource == "log":
                self._existing(_Route(route.api, "pods", route.namespace, route.name, ""))
                text = self.logs.get((route.namespace or "", route.name))
                if text is None:
                    raise _Answer(400, f'container in pod "{route.name}" is waiting to start')
                lines = text.splitlines(keepends=True)
                if query.get("tailLines"):
                    lines = lines[-int(query["tailLines"]) :]
                # Chunks that cut lines in two, as a network does.
                body = "".join(lines).encode()
                chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
                yield StreamedResponse(200, {}, _each(chunks))
                return
            if query.get("watch") not in ("true", "1"):
                raise _Answer(400, "only watches and pod logs are streamed")
        except _Answer as answer:
            yield StreamedResponse(answer.response.status, {}, _once(answer.response.body))
            return
        yield StreamedResponse(200, {}, self._watch(route, query))

    async def close(self) -> None:
        """Nothing to close."""

    # -- requests -------------------------------------------------------------------------

    def _inject(self, method: str, plural: str) -> None:
        for i, injected in enumerate(self._injected):
            if injected.method in (None, method) and injected.plural in (None, plural):
                del self._injected[i]
                raise _Answer(injected.code, injected.message, injected.reason)

    def _answer(self, request: Request, route: _Route) -> Response:
        body: Any = None
        if request.body:
            try:
                body = json.loads(request.body)
            except ValueError:
                raise _Answer(400, "the request body is not JSON") from None
        method = request.method
        if method == "GET" and not route.name:
            return _ok(self._list(route, dict(request.query)))
        if method == "GET":
            return _ok(self._get(route))
        if method == "POST" and not route.name:
            return _ok(self._create(route, body), 201)
        if method == "PATCH" and route.name:
            content_type = request.headers.get("Content-Type", "")
            return _ok(self._patch(route, body, content_type))
        if method == "PUT" and route.name:
            return _ok(self._replace(route, body))
        if method == "DELETE" and route.name:
            return _ok(self._delete(route, body or {}))
        raise _Answer(405, f"{method} is not allowed on {request.path}", "MethodNotAllowed")

    def _store(self, route: _Route) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects.setdefault(route.key, {})

    def _existing(self, route: _Route) -> dict[str, Any]:
        obj = self._store(route).get((route.namespace or "", route.name))
        if obj is None:
            raise _Answer(
                404, f'{route.plural} "{route.name}" not found', name=route.name, kind=route.plural
            )
        return obj

    def _get(self, route: _Route) -> dict[str, Any]:
        return self._existing(route)

    def _bump(self) -> str:
        self._version = next(self._versions)
        return str(self._version)

    def _validate(self, route: _Route, obj: Mapping[str, Any]) -> None:
        for check in self._checks.get(route.plural, []):
            problem = check(obj)
            if problem:
                name = str((obj.get("metadata") or {}).get("name", ""))
                raise _Answer(
                    422,
                    f'{route.plural} "{name}" is invalid: {problem}',
                    name=name,
                    kind=route.plural,
                )

    def _create(self, route: _Route, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Answer(400, "create needs an object")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{uuid.uuid4().hex[:5]}"
        name = str(meta.get("name") or "")
        if not name:
            raise _Answer(422, "metadata.name: Required value", name="", kind=route.plural)
        namespace = route.namespace or ""
        meta["namespace"] = namespace or meta.get("namespace", "")
        if not route.namespace:
            meta.pop("namespace", None)
        key = (namespace, name)
        if key in self._store(route):
            raise _Answer(
                409,
                f'{route.plural} "{name}" already exists',
                "AlreadyExists",
                name=name,
                kind=route.plural,
            )
        if route.plural in _STATUS_PLURALS:
            obj.pop("status", None)  # set through the status subresource only
        self._validate(route, obj)
        meta.update(
            uid=str(uuid.uuid4()),
            generation=1,
            creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resourceVersion=self._bump(),
        )
        self._store(route)[key] = obj
        self._record("ADDED", route.key, obj)
        return obj

    def _write(self, route: _Route, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store ``new`` in place of ``old``: subresource rules, generation, version."""
        if route.plural in _STATUS_PLURALS:
            if route.subresource == "status":
                new = {**old, "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in old:
                    new["status"] = old["status"]
        new["metadata"] = {
            **new.get("metadata", {}),
            **{k: old["metadata"][k] for k in ("uid", "creationTimestamp", "generation")},
        }
        changed = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }
        if changed:
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        self._validate(route, new)
        if new == old:
            return old  # a no-op write leaves the resourceVersion as it was
        new["metadata"]["resourceVersion"] = self._bump()
        if "deletionTimestamp" in new["metadata"] and not new["metadata"].get("finalizers"):
            del self._store(route)[(route.namespace or "", route.name)]
            self._record("DELETED", route.key, new)
            return new
        self._store(route)[(route.namespace or "", route.name)] = new
        self._record("MODIFIED", route.key, new)
        return new

    @staticmethod
    def _precondition(old: Mapping[str, Any], wanted: Any, what: str) -> None:
        current = old["metadata"]["resourceVersion"]
        if wanted not in (None, current):
            raise _Answer(
                409,
                f"Operation cannot be fulfilled on {what}: the object has been modified; "
                "please apply your changes to the latest version and try again",
                name=str(old["metadata"].get("name", "")),
            )

    def _patch(self, route: _Route, body: Any, content_type: str) -> dict[str, Any]:
        old = self._existing(route)
        what = f'{route.plural} "{route.name}"'
        if content_type.startswith("application/merge-patch+json"):
            if not isinstance(body, dict):
                raise _Answer(400, "a merge patch must be an object")
            self._precondition(old, (body.get("metadata") or {}).get("resourceVersion"), what)
            new = merge_patch(old, body)
        elif content_type.startswith("application/json-patch+json"):
            new = _json_patch(old, body)
            self._precondition(old, (new.get("metadata") or {}).get("resourceVersion"), what)
        else:
            raise _Answer(415, f"the patch type {content_type!r} is not supported")
        return self._write(route, old, copy.deepcopy(new))

    def _replace(self, route: _Route, body: Any) -> dict[str, Any]:
        old = self._existing(route)
        if not isinstance(body, dict):
            raise _Answer(400, "replace needs an object")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        self._precondition(old, wanted, f'{route.plural} "{route.name}"')
        return self._write(route, old, copy.deepcopy(body))

    def _delete(self, route: _Route, options: Mapping[str, Any]) -> dict[str, Any]:
        old = self._existing(route)
        preconditions = options.get("preconditions") or {}
        meta = old["metadata"]
        for key in ("uid", "resourceVersion"):
            if preconditions.get(key) not in (None, meta.get(key)):
                raise _Answer(
                    409,
                    f"Precondition failed: {key} in precondition: {preconditions[key]}, "
                    f"{key} in object meta: {meta.get(key)}",
                    name=route.name,
                    kind=route.plural,
                )
        if meta.get("finalizers"):
            if "deletionTimestamp" not in meta:
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
                new["metadata"]["resourceVersion"] = self._bump()
                self._store(route)[(route.namespace or "", route.name)] = new
                self._record("MODIFIED", route.key, new)
                return new
            return old
        del self._store(route)[(route.namespace or "", route.name)]
        self._bump()
        self._record("DELETED", route.key, old)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _matching(self, route: _Route, query: Mapping[str, str]) -> list[dict[str, Any]]:
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        return [
            obj
            for (namespace, _), obj in sorted(self._store(route).items())
            if (route.namespace is None or namespace == route.namespace)
            and (not labels or _labels_match(obj["metadata"].get("labels") or {}, labels))
            and (not fields or _fields_match(obj, fields))
        ]

    def _list(self, route: _Route, query: Mapping[str, str]) -> dict[str, Any]:
        items = self._matching(route, query)
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                epoch, after = int(token["epoch"]), tuple(token["after"])
            except (ValueError, KeyError, TypeError):
                raise _Answer(400, "invalid continue token") from None
            if epoch != self._epoch:
                raise _Answer(
                    410,
                    "The provided continue parameter is too old to display a consistent "
                    "list result. You can start a new list without the continue parameter.",
                    "Expired",
                )
            keys = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items]
            start = next((i for i, k in enumerate(keys) if k > after), len(items))
        limit = int(query.get("limit") or 0)
        page = items[start : start + limit] if limit else items[start:]
        meta: dict[str, Any] = {"resourceVersion": str(self._version)}
        if limit and start + limit < len(items):
            last = page[-1]["metadata"]
            token = {"epoch": self._epoch, "after": [last.get("namespace", ""), last["name"]]}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        return {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page}

    # -- watches --------------------------------------------------------------------------

    def _record(self, type_: str, key: tuple[str, str], obj: dict[str, Any]) -> None:
        self._history.append(_Change(self._version, type_, key, copy.deepcopy(obj)))
        if self._changed is not None:
            self._changed.set()

    async def _watch(self, route: _Route, query: Mapping[str, str]) -> AsyncIterator[bytes]:
        since = int(query.get("resourceVersion") or self._version)
        if since < self._compacted:
            yield _event(
                "ERROR",
                json.loads(status_body(410, f"too old resource version: {since}", "Expired")),
            )
            return
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or 60)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        seen, epoch = 0, self._epoch
        while True:
            if self._epoch != epoch:
                # Compacted while open: the API server ends such a watch with 410 Gone.
                gone = status_body(410, "the watch's position was compacted", "Expired")
                yield _event("ERROR", json.loads(gone))
                return
            # By index: changes made while this generator waits at a yield still count.
            while seen < len(self._history) and self._epoch == epoch:
                change = self._history[seen]
                seen += 1
                if self._delivers(change, route, query, since, bookmarks):
                    yield _event(change.type, change.obj)
            if self._epoch != epoch:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def _delivers(
        self,
        change: _Change,
        route: _Route,
        query: Mapping[str, str],
        since: int,
        bookmarks: bool,
    ) -> bool:
        if change.type == "BOOKMARK":
            return bookmarks and change.version > since
        if change.key != route.key or change.version <= since:
            return False
        if route.namespace not in (None, change.obj["metadata"].get("namespace", "")):
            return False
        return self._selected(change.obj, query)

    @staticmethod
    def _selected(obj: Mapping[str, Any], query: Mapping[str, str]) -> bool:
        labels, fields = query.get("labelSelector", ""), query.get("fieldSelector", "")
        return (not labels or _labels_match(obj["metadata"].get("labels") or {}, labels)) and (
            not fields or _fields_match(obj, fields)
        )


def _ok(obj: Mapping[str, Any], code: int = 200) -> Response:
    return Response(code, {"Content-Type": "application/json"}, json.dumps(obj).encode())


def _event(type_: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode() + b"\n"


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
