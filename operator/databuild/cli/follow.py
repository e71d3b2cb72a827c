"""Following Wants as they build, on watches instead of repeated listings.

:class:`KubeFollower` keeps a :class:`~databuild.cli.kube.Snapshot` of just the followed
Wants, their Partitions and the JobRuns that build them. It reads them once (by name, so
the cost does not grow with the namespace), then applies the API server's watch events
from the collection's resourceVersion read first, so nothing that changes in between is
lost. A namespace of 10,000 partitions costs the same as an empty one, apart from the
watch events of unrelated objects, which are dropped unparsed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
from collections.abc import Coroutine, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from databuild.adapters.kube import BlockingClient, Gone, KubeError, NotFound
from databuild.adapters.resources import JobRun, Partition, Want
from databuild.cli.errors import CliError, ExitCode
from databuild.domain import PartitionRef, partition_name

__all__ = ["Followed", "KubeFollower"]

_PLURALS = ("wants", "partitions", "jobruns")
_KINDS = {"wants": "Want", "partitions": "Partition", "jobruns": "JobRun"}
_T = TypeVar("_T")
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

    def __init__(self, client: BlockingClient, namespace: str, wants: list[str] | None) -> None:
        self._client = client
        self.namespace = namespace
        self._names = wants
        self._wants: dict[str, Want] = {}
        self._parts: dict[str, Partition] = {}
        self._runs: dict[str, JobRun] = {}
        self._events: queue.Queue[tuple[str, str, dict[str, Any]] | BaseException] = queue.Queue()
        self.requests = 0
        """API requests made so far (lists, gets, watches): for benchmarks."""

    # -- reading ---------------------------------------------------------------------

    def _call(self, what: str, coro: Coroutine[Any, Any, _T]) -> _T:
        self.requests += 1
        try:
            return self._client.run(coro)
        except NotFound:
            raise CliError(f"{what}: not found", ExitCode.NOT_FOUND) from None
        except KubeError as e:
            raise CliError(f"{what}: {e}") from None

    def _version(self, plural: str) -> str:
        """The collection's current resourceVersion, from a one-item listing."""
        api = self._client.api
        body = self._call(
            f"listing {plural}",
            api.request("GET", api.path(_KINDS[plural], self.namespace), query=[("limit", "1")]),
        )
        return str(body["metadata"]["resourceVersion"])

    def _get(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call(
                f"reading {plural} {name}",
                self._client.api.get(_KINDS[plural], self.namespace, name),
            )
        except CliError as e:
            if e.code == ExitCode.NOT_FOUND:
                return None
            raise

    def _list(self, plural: str) -> tuple[list[dict[str, Any]], str]:
        listing = self._call(
            f"listing {plural}", self._client.api.list(_KINDS[plural], self.namespace)
        )
        self.requests += max(0, len(listing.items) - 1) // self._client.api.page_size
        return listing.items, listing.resource_version

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

    async def _watch(self, plural: str, version: str) -> None:
        """Queue the watch events of ``plural`` from ``version`` on, until cancelled."""
        try:
            while True:
                self.requests += 1
                async for event in self._client.api.watch(
                    _KINDS[plural],
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=_WATCH_SECONDS,
                ):
                    version = str(
                        (event.object.get("metadata") or {}).get("resourceVersion", version)
                    )
                    if event.type != "BOOKMARK":
                        self._events.put((plural, event.type, event.object))
        except Gone:
            self._events.put(_Expired())
        except KubeError as e:
            self._events.put(CliError(f"watching {plural}: {e}"))

    def _stop_watches(self, watches: list[concurrent.futures.Future[None]]) -> None:
        """End the watches now: a blocked read is cancelled, not waited for."""
        for watch in watches:
            watch.cancel()
        for watch in watches:
            with contextlib.suppress(concurrent.futures.CancelledError, Exception):
                watch.result(timeout=2)

    def _snapshot(self) -> Followed:
        return Followed(dict(self._wants), dict(self._parts), dict(self._runs))

    def follow(self, tick: float) -> Generator[Followed, None, None]:
        """The followed objects now, then after each relevant change (at least every `tick` s)."""
        while True:
            versions = self._load()
            watches = [self._client.submit(self._watch(p, versions[p])) for p in _PLURALS]
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
                self._stop_watches(watches)
            self._events = queue.Queue()
