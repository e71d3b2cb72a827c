"""Following Wants as they build, on watches instead of repeated listings.

:class:`KubeFollower` keeps a :class:`~databuild.cli.kube.Snapshot` of just the followed
Wants, their Partitions and the JobRuns that build them. It reads them once (by name, so
the cost does not grow with the namespace), then applies the API server's watch events
from the collection's resourceVersion read first, so nothing that changes in between is
lost. A namespace of 10,000 partitions costs the same as an empty one, apart from the
watch events of unrelated objects, which are dropped unparsed.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from databuild.adapters.resources import GROUP, VERSION, JobRun, Partition, Want
from databuild.cli.errors import CliError, ExitCode
from databuild.domain import PartitionRef, partition_name

__all__ = ["Followed", "KubeFollower"]

_PLURALS = ("wants", "partitions", "jobruns")
#: A watch is re-opened this often (the API server ends long watches anyway).
_WATCH_SECONDS = 300


@dataclass(frozen=True)
class Followed:
    """What is followed at one moment: Wants by name, Partitions by ref, JobRuns by name."""

    wants: dict[str, Want]
    partitions: dict[str, Partition]
    job_runs: dict[str, JobRun]


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): read everything again."""


class KubeFollower:
    """What is followed of some Wants (or all, with ``wants=None``), as it changes."""

    def __init__(self, api: Any, namespace: str, wants: list[str] | None) -> None:
        self._custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self._names = wants
        self._wants: dict[str, Want] = {}
        self._parts: dict[str, Partition] = {}
        self._runs: dict[str, JobRun] = {}
        self._events: queue.Queue[tuple[str, str, dict[str, Any]] | BaseException] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._responses: set[Any] = set()
        self.requests = 0
        """API requests made so far (lists, gets, watches): for benchmarks."""

    # -- reading ---------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1
        try:
            return fn(GROUP, VERSION, self.namespace, *args, **kwargs)
        except ApiException as e:
            if e.status == 404:
                raise CliError(f"{what}: not found", ExitCode.NOT_FOUND) from None
            raise CliError(f"{what}: {e.status} {e.reason or ''}".strip()) from None

    def _version(self, plural: str) -> str:
        """The collection's current resourceVersion, from a one-item listing."""
        body = self._call(
            f"listing {plural}", self._custom.list_namespaced_custom_object, plural, limit=1
        )
        return str(body["metadata"]["resourceVersion"])

    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self._call(
                f"reading {plural} {name}",
                self._custom.get_namespaced_custom_object,
                plural,
                name,
            )
        except CliError as e:
            if e.code == ExitCode.NOT_FOUND:
                return None
            raise
        return body

    def _list(self, plural: str) -> tuple[list[dict[str, Any]], str]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": 500}
            if token:
                kwargs["_continue"] = token
            body = self._call(
                f"listing {plural}", self._custom.list_namespaced_custom_object, plural, **kwargs
            )
            items.extend(body.get("items", []))
            token = body["metadata"].get("continue")
            if not token:
                return items, str(body["metadata"]["resourceVersion"])

    def _load(self) -> dict[str, str]:
        """Read what is followed; returns the resourceVersion to watch each kind from."""
        self._wants.clear()
        self._parts.clear()
        self._runs.clear()
        if self._names is None:
            versions = {}
            for plural in _PLURALS:
                items, versions[plural] = self._list(plural)
                for item in items:
                    self._apply(plural, "ADDED", item, everything=True)
            return versions
        versions = {plural: self._version(plural) for plural in _PLURALS}
        for name in self._names:
            body = self._get("wants", name)
            if body is None:
                raise CliError(
                    f"Want {name!r} not found in namespace {self.namespace}", ExitCode.NOT_FOUND
                )
            self._apply("wants", "ADDED", body)
        for ref in self._refs():
            body = self._get("partitions", partition_name(PartitionRef(ref)))
            if body is not None:
                self._apply("partitions", "ADDED", body)
        for part in list(self._parts.values()):
            if part.status.job_run and part.status.job_run not in self._runs:
                body = self._get("jobruns", part.status.job_run)
                if body is not None:
                    self._apply("jobruns", "ADDED", body)
        return versions

    def _refs(self) -> set[str]:
        return {ref for w in self._wants.values() for ref in w.spec.partitions}

    # -- applying watch events -------------------------------------------------------

    def _apply(
        self, plural: str, kind: str, body: dict[str, Any], everything: bool = False
    ) -> bool:
        """Apply one event; whether it changed what is followed."""
        name = str((body.get("metadata") or {}).get("name", ""))
        spec = body.get("spec") or {}
        deleted = kind == "DELETED"
        try:
            if plural == "wants":
                if not everything and self._names is not None and name not in self._names:
                    return False
                if deleted:
                    return self._wants.pop(name, None) is not None
                self._wants[name] = Want.model_validate(body)
            elif plural == "partitions":
                ref = str(spec.get("ref", ""))
                if not everything and self._names is not None and ref not in self._refs():
                    return False
                if deleted:
                    return self._parts.pop(ref, None) is not None
                self._parts[ref] = Partition.model_validate(body)
            else:
                outputs = set(spec.get("partitions") or [])
                if not everything and self._names is not None and not outputs & self._refs():
                    return False
                if deleted:
                    return self._runs.pop(name, None) is not None
                self._runs[name] = JobRun.model_validate(body)
        except ValueError:
            return False  # one malformed object must not stop the follower
        return True

    def _watch(self, plural: str, version: str) -> None:
        try:
            while not self._stop.is_set():
                self.requests += 1
                response: Any = self._custom.list_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    self.namespace,
                    plural,
                    watch=True,
                    resource_version=version,
                    timeout_seconds=_WATCH_SECONDS,
                    allow_watch_bookmarks=True,
                    _preload_content=False,
                )
                with self._lock:
                    self._responses.add(response)
                try:
                    version = self._read_watch(plural, version, response)
                finally:
                    with self._lock:
                        self._responses.discard(response)
                    response.release_conn()
        except ApiException as e:
            self._events.put(_Expired() if e.status == 410 else CliError(f"watching {plural}: {e}"))
        except BaseException as e:  # handed to the reading thread, which raises it
            if not self._stop.is_set():  # after stop(), a shut-down read is expected
                self._events.put(e)

    def _read_watch(self, plural: str, version: str, response: Any) -> str:
        """Queue the events of one watch response; the resourceVersion to resume from."""
        pending = b""
        for chunk in response.stream(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if self._stop.is_set():
                    return version
                if not line.strip():
                    continue
                event = json.loads(line)
                obj, kind = event.get("object") or {}, event.get("type")
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired()
                    raise CliError(f"watching {plural}: {obj.get('message', obj)}")
                version = str((obj.get("metadata") or {}).get("resourceVersion", version))
                if kind != "BOOKMARK":
                    self._events.put((plural, str(kind), obj))
        return version

    def _stop_watches(self, threads: list[threading.Thread]) -> None:
        """End the watch threads now: a blocked read is shut down, not waited for."""
        self._stop.set()
        with self._lock:
            responses = list(self._responses)
        for response in responses:
            with contextlib.suppress(Exception):
                response.shutdown()
        for t in threads:
            t.join(timeout=2)

    def _snapshot(self) -> Followed:
        return Followed(dict(self._wants), dict(self._parts), dict(self._runs))

    def follow(self, tick: float) -> Generator[Followed, None, None]:
        """The followed objects now, then after each relevant change (at least every `tick` s)."""
        while True:
            self._stop.clear()
            versions = self._load()
            threads = [
                threading.Thread(target=self._watch, args=(p, versions[p]), daemon=True)
                for p in _PLURALS
            ]
            for t in threads:
                t.start()
            try:
                yield self._snapshot()
                while True:
                    try:
                        item = self._events.get(timeout=tick)
                    except queue.Empty:
                        yield self._snapshot()
                        continue
                    if isinstance(item, _Expired):
                        break
                    if isinstance(item, BaseException):
                        raise item
                    changed = self._apply(*item)
                    if changed and self._events.empty():
                        yield self._snapshot()
            finally:
                self._stop_watches(threads)
            self._events = queue.Queue()
