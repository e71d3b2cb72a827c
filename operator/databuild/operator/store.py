"""The in-memory world store: the latest version of every object the operator watches.

Watch events (from kopf) and the operator's own writes (their responses) both land
here; the newer ``resourceVersion`` wins, so a late watch event never rolls back what
the operator just wrote, and a tombstone keeps a deleted object from coming back from
a stale list. Every real change marks its namespace dirty and wakes the orchestration
loop; echoes of the operator's own writes do not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from databuild.adapters.jobs import JOB_NAME_LABELS, true_conditions
from databuild.adapters.kinds import WATCHED_KINDS
from databuild.adapters.labels import (
    ATTEMPT_ANNOTATION,
    JOB_RUN_LABEL,
    TAINT_REQUESTED_AT_ANNOTATION,
)

_TOMBSTONE_SECONDS = 300.0


def _version(obj: Mapping[str, Any]) -> int | None:
    raw = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None  # opaque versions: treat every event as new


def _finished_job(job: Mapping[str, Any]) -> bool:
    return not true_conditions(job).keys().isdisjoint(("Complete", "Failed"))


def _finished_pod(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# What the operator reads of the objects it does not own (batch Jobs and their pods):
# names, our labels and annotations, the controller owner and the few status fields
# an outcome is read from. The rest (the pod template with every DATABUILD_* variable,
# the standard labels, timestamps) is never read; keeping it cost most of the store's
# memory (about 15 and 21 KB per Job and pod, against 2 KB kept).
_METADATA_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "finalizers",
)
_LABELS_KEPT = (JOB_RUN_LABEL, *JOB_NAME_LABELS)
_ANNOTATIONS_KEPT = (ATTEMPT_ANNOTATION,)
_OWNER_KEPT = ("kind", "name", "uid", "controller")
_CONDITION_KEPT = ("type", "status", "reason", "message", "lastTransitionTime")
_TERMINATED_KEPT = ("exitCode", "reason", "message")


def _pick(obj: Any, keys: Iterable[str]) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        return {}
    return {k: obj[k] for k in keys if k in obj}


def _terminated_only(status: Mapping[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {"name": status.get("name")}
    for key in ("state", "lastState"):
        terminated = (status.get(key) or {}).get("terminated")
        if terminated:
            kept[key] = {"terminated": _pick(terminated, _TERMINATED_KEPT)}
    return kept


def _taint_time_entries(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The managedFields entries that wrote a Partition's taint time, reduced to that.

    Their server-set ``time`` clamps an annotated taint request (see
    :func:`databuild.adapters.codec.annotation_written_at`).
    """
    key = f"f:{TAINT_REQUESTED_AT_ANNOTATION}"
    kept: list[dict[str, Any]] = []
    for entry in meta.get("managedFields") or ():
        if not isinstance(entry, Mapping):
            continue
        fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:annotations")
        if isinstance(fields, Mapping) and key in fields:
            reduced: dict[str, Any] = {"f:metadata": {"f:annotations": {key: {}}}}
            kept.append({"time": entry.get("time"), "fieldsV1": reduced})
    return kept


def slim(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``obj`` the operator reads (a new dict; ``obj`` is left alone).

    Our own kinds keep spec, status and metadata whole (the planner, the executor and
    the BEL read them) except server-side apply's managedFields; batch Jobs and pods
    keep only what :func:`databuild.adapters.jobs.read_outcome` and the store read.
    """
    meta = obj.get("metadata") or {}
    if kind not in ("Job", "Pod"):
        stored = {k: v for k, v in obj.items() if k != "metadata"}
        stored["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
        if kind == "Partition" and (written := _taint_time_entries(meta)):
            stored["metadata"]["managedFields"] = written
        return stored
    kept_meta = _pick(meta, _METADATA_KEPT)
    for key, keys in (("labels", _LABELS_KEPT), ("annotations", _ANNOTATIONS_KEPT)):
        if picked := _pick(meta.get(key), keys):
            kept_meta[key] = picked
    owners = [_pick(o, _OWNER_KEPT) for o in meta.get("ownerReferences") or [] if o]
    if owners:
        kept_meta["ownerReferences"] = owners
    stored = {k: obj[k] for k in ("apiVersion", "kind") if k in obj}
    stored["metadata"] = kept_meta
    status = obj.get("status") or {}
    if kind == "Pod":
        stored["status"] = {
            "phase": status.get("phase"),
            "containerStatuses": [
                _terminated_only(c)
                for c in status.get("containerStatuses") or []
                if isinstance(c, Mapping)
            ],
        }
        # Why a pod is not placed (the scheduler's PodScheduled=False): a stalled build.
        unscheduled = [
            _pick(c, _CONDITION_KEPT)
            for c in status.get("conditions") or []
            if isinstance(c, Mapping)
            and c.get("type") == "PodScheduled"
            and c.get("status") == "False"
        ]
        if unscheduled:
            stored["status"]["conditions"] = unscheduled
    elif status:
        stored["status"] = {
            "conditions": [_pick(c, _CONDITION_KEPT) for c in status.get("conditions") or []]
        }
    return stored


def _newer(new: int | None, old: int | None) -> bool:
    return new is None or old is None or new > old


@dataclass
class _Namespace:
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in WATCHED_KINDS}
    )
    # Pods by JobRun name, so outcomes read only the pods of one run.
    pods_by_run: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # Finished batch Jobs (and their pods) deleted before the loop saw them end, e.g. by a
    # short ttlSecondsAfterFinished: kept until their JobRun moved on.
    finished_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_pods: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


class WorldStore:
    """Latest objects by namespace, kind and name, plus change notification."""

    def __init__(self) -> None:
        self._namespaces: dict[str, _Namespace] = {}
        self._tombstones: dict[tuple[str, str, str], tuple[int | None, float]] = {}
        self._dirty: set[str] = set()
        self._changed = asyncio.Event()
        self.version = 0
        """Increments on every change (tests wait on it)."""

    # -- writing -----------------------------------------------------------------------

    def put(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Record ``obj`` unless the store has a newer version; whether it changed."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if not name:
            return False
        ns = self._namespaces.setdefault(namespace, _Namespace())
        bucket = ns.objects.setdefault(kind, {})
        version = _version(obj)
        tomb = self._tombstones.get((kind, namespace, name))
        if tomb is not None and not _newer(version, tomb[0]):
            return False  # a stale copy of something already deleted
        current = bucket.get(name)
        if current is not None and not _newer(version, _version(current)):
            return False
        stored = slim(kind, obj)
        stored.setdefault("kind", kind)
        bucket[name] = stored
        if kind == "Pod":
            self._index_pod(ns, name, stored, current)
        self._touch(namespace)
        return True

    def delete(self, kind: str, obj: Mapping[str, Any]) -> bool:
        """Forget ``obj`` (a DELETED event, or a delete the operator made)."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        self._tombstones[kind, namespace, name] = (_version(obj), time.monotonic())
        self._expire_tombstones()
        ns = self._namespaces.get(namespace)
        if ns is None:
            return False
        current = ns.objects.get(kind, {}).pop(name, None)
        if current is None:
            return False
        if kind == "Pod":
            self._index_pod(ns, name, None, current)
            if _finished_pod(current):
                run = ((current.get("metadata") or {}).get("labels") or {}).get(JOB_RUN_LABEL)
                if run:
                    ns.finished_pods.setdefault(str(run), {})[name] = current
        elif kind == "Job" and _finished_job(current):
            ns.finished_jobs[name] = current
        self._touch(namespace)
        return True

    def finished_jobs(self, namespace: str) -> Mapping[str, dict[str, Any]]:
        """Finished batch Jobs deleted since (kept until :meth:`release_finished`)."""
        ns = self._namespaces.get(namespace)
        return {} if ns is None else ns.finished_jobs

    def release_finished(self, namespace: str, job: str, job_run: str) -> None:
        """Forget a deleted finished Job (and its run's deleted pods): its outcome is used."""
        ns = self._namespaces.get(namespace)
        if ns is not None:
            ns.finished_jobs.pop(job, None)
            ns.finished_pods.pop(job_run, None)

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Forget an object by name (it turned out not to exist)."""
        self.delete(kind, {"metadata": {"namespace": namespace, "name": name}})

    def _index_pod(
        self,
        ns: _Namespace,
        name: str,
        new: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
    ) -> None:
        for pod, add in ((old, False), (new, True)):
            if pod is None:
                continue
            run = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_RUN_LABEL)
            if not run:
                continue
            pods = ns.pods_by_run.setdefault(str(run), {})
            if add:
                pods[name] = dict(pod)
            else:
                pods.pop(name, None)
                if not pods:
                    del ns.pods_by_run[str(run)]

    def _expire_tombstones(self) -> None:
        if len(self._tombstones) < 10_000:
            return
        cutoff = time.monotonic() - _TOMBSTONE_SECONDS
        for key in [k for k, (_, at) in self._tombstones.items() if at < cutoff]:
            del self._tombstones[key]

    def _touch(self, namespace: str) -> None:
        self.version += 1
        self._dirty.add(namespace)
        self._changed.set()

    def mark_dirty(self, namespace: str) -> None:
        """Ask the loop to plan ``namespace`` again."""
        self._touch(namespace)

    def wake(self) -> None:
        """Wake the loop without marking anything dirty (it re-reads its deadlines)."""
        self._changed.set()

    # -- reading -----------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The latest copy of one object, or None."""
        ns = self._namespaces.get(namespace)
        return None if ns is None else ns.objects.get(kind, {}).get(name)

    def objects(self, kind: str, namespace: str) -> Mapping[str, dict[str, Any]]:
        """Every object of ``kind`` in ``namespace``, by name (do not mutate)."""
        ns = self._namespaces.get(namespace)
        return {} if ns is None else ns.objects.get(kind, {})

    def pods_of(self, namespace: str, job_run: str) -> list[dict[str, Any]]:
        """The pods labelled as belonging to ``job_run``."""
        ns = self._namespaces.get(namespace)
        if ns is None:
            return []
        pods = dict(ns.finished_pods.get(job_run, {}))
        pods.update(ns.pods_by_run.get(job_run, {}))
        return list(pods.values())

    def namespaces(self) -> list[str]:
        """Every namespace the store has seen objects in."""
        return sorted(self._namespaces)

    # -- change notification -----------------------------------------------------------

    def take_dirty(self) -> set[str]:
        """The namespaces changed since the last call (and clear them)."""
        dirty, self._dirty = self._dirty, set()
        self._changed.clear()
        return dirty

    async def wait_for_change(self, timeout: float | None) -> bool:
        """Wait until something changes (True) or ``timeout`` seconds pass (False)."""
        if self._dirty:
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def load(self, kind: str, items: Iterable[Mapping[str, Any]]) -> None:
        """Record a full listing of ``kind`` (newer versions win, as always)."""
        for item in items:
            self.put(kind, item)

    def versions(self, kind: str, namespace: str | None) -> dict[tuple[str, str], str]:
        """``(namespace, name) -> resourceVersion`` of ``kind`` (``None``: every namespace)."""
        out: dict[tuple[str, str], str] = {}
        for ns_name, ns in self._namespaces.items():
            if namespace is not None and ns_name != namespace:
                continue
            for name, obj in ns.objects.get(kind, {}).items():
                out[ns_name, name] = str((obj.get("metadata") or {}).get("resourceVersion"))
        return out

    def resync(
        self,
        kind: str,
        items: Iterable[Mapping[str, Any]],
        before: Mapping[tuple[str, str], str],
    ) -> int:
        """Reconcile the store with a fresh listing; the number of objects dropped.

        A watch that restarts re-lists but never reports what was deleted meanwhile;
        this does. ``before`` is :meth:`versions` taken just before the listing: an
        object then known, absent from the listing and not changed since is gone.
        """
        listed: set[tuple[str, str]] = set()
        for item in items:
            meta = item.get("metadata") or {}
            listed.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
            self.put(kind, item)
        dropped = 0
        for (ns, name), version in before.items():
            if (ns, name) in listed:
                continue
            current = self.get(kind, ns, name)
            if current is None:
                continue
            if str((current.get("metadata") or {}).get("resourceVersion")) != version:
                continue  # changed after the listing started: the watch knows better
            if self.delete(kind, current):
                dropped += 1
        return dropped
