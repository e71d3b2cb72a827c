"""The in-memory world store: the latest version of every object the operator watches.

Watch events (``databuild.operator.watches``) and the operator's own writes (their
responses) both land here; the newer ``resourceVersion`` wins, so a late watch event
never rolls back what the operator just wrote, and a tombstone keeps a deleted object
from coming back from a stale list.

Beside the objects, a change journal per namespace names every object that changed since
the loop last took it, and whether each change came from outside (a watch event, a
listing) or was only the echo of the operator's own write (the response the executor
puts). An outside change marks its namespace dirty and wakes the orchestration loop; an
echo does not, so a plan's own writes never cost a second, confirming pass. The loop
reads the journal to choose between the incremental planner (only batch Jobs and pods
changed) and a full snapshot (anything else).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from databuild.adapters.codec import attempt_of, job_run_of
from databuild.adapters.jobs import JOB_NAME_LABELS, true_conditions
from databuild.adapters.kinds import WATCHED_KINDS
from databuild.adapters.labels import (
    ATTEMPT_ANNOTATION,
    JOB_RUN_LABEL,
    OUTCOME_FINALIZER,
    TAINT_REQUESTED_AT_ANNOTATION,
)
from databuild.adapters.ownership import controlled_by, uid_of
from databuild.operator import finalizer, stalls

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


# Values that repeat across objects: kinds, states, condition types, reasons and
# messages, the namespace, JobDefinition names, label values, and times (one pass
# writes the same time into every object it changes).
_SHARED_VALUES = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "state",
        "type",
        "status",
        "reason",
        "message",
        "jobDefinition",
        "phase",
        "admission",
        "fieldsType",
        "manager",
        "operation",
    }
)
_TIME_SUFFIXES = ("Time", "Timestamp", "At", "Since")


def _compact(value: Any, key: str = "", labels: bool = False) -> Any:
    """``value`` with its dict keys and repeated values shared (``sys.intern``).

    Each watch event is decoded from JSON on its own, so every object would otherwise
    hold its own copy of every key (``metadata``, ``lastTransitionTime``, ...) and of
    every state name: about half of a small object's memory.
    """
    if isinstance(value, dict):
        inner = key in ("labels", "annotations")
        return {
            (sys.intern(k) if type(k) is str else k): _compact(v, k, inner)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_compact(v, key) for v in value]
    if type(value) is str and (labels or key in _SHARED_VALUES or key.endswith(_TIME_SUFFIXES)):
        return sys.intern(value)
    return value


def _compacted(stored: dict[str, Any]) -> dict[str, Any]:
    compacted: dict[str, Any] = _compact(stored)
    return compacted


def slim(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``obj`` the operator reads, compacted (new dicts; ``obj`` is left alone).

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
        return _compacted(stored)
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
    return _compacted(stored)


def _waits_for(run: Mapping[str, Any], attempt: int | None) -> bool:
    """Whether the JobRun ``run`` still waits for the outcome of ``attempt``."""
    status = run.get("status") or {}
    return status.get("state") == "Running" and status.get("attempt") == attempt


def _run_label(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(JOB_RUN_LABEL) or "")


def _newer(new: int | None, old: int | None) -> bool:
    return new is None or old is None or new > old


_UNEXPLAINED = ""
"""The version noted for an outside change no echo can explain (a delete, no version)."""


JOURNAL_ECHOES = 10_000
"""Echoes a namespace's journal names one by one; beyond, they are only counted (the loop
needs none of them but the operator's own batch Job deletes, which are always kept)."""
JOURNAL_CHANGES = 100_000
"""Outside changes a namespace's journal names before it only says "everything" (a full
pass), so a journal nobody takes (a standby replica's) stays bounded."""


@dataclass
class _Entries:
    """One namespace's journal (see :class:`Journal`), while it is being written."""

    # (kind, name) -> versions of outside changes no echo explained yet.
    outside: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    echoes: set[tuple[str, str]] = field(default_factory=set)
    deleted: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    overflowed: bool = False


@dataclass(frozen=True)
class Journal:
    """What changed in one namespace since the loop last took its journal.

    ``changes`` maps every changed object, as (kind, name), to whether any of its
    changes came from outside; False means only echoes of the operator's own writes.
    A watch event that brings one of the operator's own writes before the write's
    response does counts as an echo once the response is stored.
    """

    changes: Mapping[tuple[str, str], bool] = field(default_factory=dict)
    deleted: Mapping[tuple[str, str], Mapping[str, Any]] = field(default_factory=dict)
    """The last copy of every changed batch Job and pod that is now gone (it can no
    longer be read from the store, e.g. which batch Job a deleted pod belonged to)."""
    overflowed: bool = False
    """More changed than the journal names (see :data:`JOURNAL_CHANGES`): assume anything."""

    @property
    def external(self) -> bool:
        """Whether anything changed from outside."""
        return self.overflowed or any(self.changes.values())

    def external_kinds(self) -> set[str]:
        """The kinds with an outside change."""
        return {kind for (kind, _), outside in self.changes.items() if outside}

    def names(self, kind: str) -> list[str]:
        """The changed objects of ``kind`` (echoes included), by name."""
        return sorted(name for k, name in self.changes if k == kind)


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
    # The few objects the executor's sweeps after every plan look at (see _SWEPT), so a
    # pass in a big namespace does not read every Job and JobRun of it.
    swept: dict[str, set[str]] = field(default_factory=dict)
    # Batch Jobs and pods whose outcome is recorded (see WorldStore._settled): only their
    # resourceVersion, by kind and name, so a stale copy cannot come back.
    settled: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # JobRuns counted by (spec.jobDefinition, status.state, status.admission), kept as
    # they change, so counting a pool's runs does not read every JobRun on every pass.
    run_keys: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    run_tally: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def tally_run(self, name: str, run: Mapping[str, Any] | None) -> None:
        """Count the JobRun ``name`` under its key now (``None``: it is gone)."""
        old = self.run_keys.pop(name, None)
        if old is not None:
            left = self.run_tally[old] - 1
            if left:
                self.run_tally[old] = left
            else:
                del self.run_tally[old]
        if run is None:
            return
        status = run.get("status") or {}
        key = (
            str((run.get("spec") or {}).get("jobDefinition", "")),
            str(status.get("state") or "Queued"),
            str(status.get("admission") or ""),
        )
        self.run_keys[name] = key
        self.run_tally[key] = self.run_tally.get(key, 0) + 1


# Per kind, which stored objects the executor's sweeps read: batch Jobs whose outcome
# finalizer may be due, JobRuns that may have a build that cannot start.
_SWEPT: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "Job": finalizer.holds_outcome,
    "JobRun": stalls.under_review,
}


class WorldStore:
    """Latest objects by namespace, kind and name, plus change notification."""

    def __init__(self) -> None:
        self._namespaces: dict[str, _Namespace] = {}
        self._tombstones: dict[tuple[str, str, str], tuple[int | None, float]] = {}
        self._dirty: set[str] = set()
        self._journals: dict[str, _Entries] = {}
        self._changed = asyncio.Event()
        self.version = 0
        """Increments on every change (tests wait on it)."""

    # -- writing -----------------------------------------------------------------------

    def put(self, kind: str, obj: Mapping[str, Any], *, echo: bool = False) -> bool:
        """Record ``obj`` unless the store has a newer version; whether it changed.

        ``echo``: ``obj`` is the API server's answer to the operator's own write (the
        planner already counts on it), journaled without waking the loop.
        """
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if not name:
            return False
        ns = self._namespaces.setdefault(namespace, _Namespace())
        bucket = ns.objects.setdefault(kind, {})
        version = _version(obj)
        if echo and version is not None:
            self._explain(namespace, kind, name, str(version))
        tomb = self._tombstones.get((kind, namespace, name))
        if tomb is not None and not _newer(version, tomb[0]):
            return False  # a stale copy of something already deleted
        current = bucket.get(name)
        if current is not None and not _newer(version, _version(current)):
            return False
        settled = ns.settled.get(kind)
        if settled is not None and name in settled and not _newer(version, settled[name]):
            return False  # a stale copy of something settled
        stored = slim(kind, obj)
        stored.setdefault("kind", kind)
        if self._settled(ns, kind, stored):
            # Nobody reads it any more: keep only its version (and forget an older copy).
            ns.settled.setdefault(kind, {})[name] = version
            if current is None:
                return False
            del bucket[name]
            ns.swept.get(kind, set()).discard(name)
            if kind == "Pod":
                self._index_pod(ns, name, None, current)
            outside = None if echo else (_UNEXPLAINED if version is None else str(version))
            self._note(namespace, kind, name, outside, None)
            return True
        bucket[name] = stored
        if kind == "Pod":
            self._index_pod(ns, name, stored, current)
        elif kind == "JobRun":
            ns.tally_run(name, stored)
            self._settle_pods_of(ns, name)
        if (swept := _SWEPT.get(kind)) is not None:
            names = ns.swept.setdefault(kind, set())
            if swept(stored):
                names.add(name)
            else:
                names.discard(name)
        outside = None if echo else (_UNEXPLAINED if version is None else str(version))
        self._note(namespace, kind, name, outside, None)
        return True

    def _settled(self, ns: _Namespace, kind: str, obj: Mapping[str, Any]) -> bool:
        """Whether ``obj`` is a batch Job or pod of a finished attempt whose outcome is
        recorded: its JobRun (as the API server accepted it) no longer waits for that
        attempt. The planner reads outcomes only of the attempt a Running JobRun waits
        for, and a Job is settled only once its outcome finalizer is released (the
        executor reads the Jobs that still carry it), so such objects are never read
        again: with batch Jobs kept for a day, they would otherwise be most of memory.
        """
        if kind == "Job":
            meta = obj.get("metadata") or {}
            if not _finished_job(obj) or OUTCOME_FINALIZER in (meta.get("finalizers") or ()):
                return False
            run = ns.objects.get("JobRun", {}).get(job_run_of(obj) or "")
            return (
                run is not None
                and controlled_by(obj, "JobRun", uid_of(run))
                and not _waits_for(run, attempt_of(obj))
            )
        if kind == "Pod":
            attempt = attempt_of(obj)
            run = ns.objects.get("JobRun", {}).get(_run_label(obj))
            return (
                attempt is not None
                and _finished_pod(obj)
                and run is not None
                and not _waits_for(run, attempt)
            )
        return False

    def _settle_pods_of(self, ns: _Namespace, run_name: str) -> None:
        """Forget the finished pods of ``run``'s attempts it no longer waits for."""
        pods = ns.pods_by_run.get(run_name)
        if not pods:
            return
        for name, pod in list(pods.items()):
            if self._settled(ns, "Pod", pod):
                ns.settled.setdefault("Pod", {})[name] = _version(pod)
                ns.objects["Pod"].pop(name, None)
                self._index_pod(ns, name, None, pod)

    def delete(self, kind: str, obj: Mapping[str, Any], *, echo: bool = False) -> bool:
        """Forget ``obj`` (a DELETED event, or a delete the operator made: ``echo``)."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        self._tombstones[kind, namespace, name] = (_version(obj), time.monotonic())
        self._expire_tombstones()
        ns = self._namespaces.get(namespace)
        if ns is None:
            return False
        ns.settled.get(kind, {}).pop(name, None)
        current = ns.objects.get(kind, {}).pop(name, None)
        if current is None:
            return False
        ns.swept.get(kind, set()).discard(name)
        if kind == "Pod":
            self._index_pod(ns, name, None, current)
            if _finished_pod(current):
                run = ((current.get("metadata") or {}).get("labels") or {}).get(JOB_RUN_LABEL)
                if run:
                    ns.finished_pods.setdefault(str(run), {})[name] = current
        elif kind == "Job" and _finished_job(current):
            ns.finished_jobs[name] = current
        elif kind == "JobRun":
            ns.tally_run(name, None)
        self._note(namespace, kind, name, None if echo else _UNEXPLAINED, current)
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

    def forget(self, kind: str, namespace: str, name: str, *, echo: bool = False) -> None:
        """Forget an object by name (it turned out not to exist, or the operator
        deleted it: ``echo``)."""
        self.delete(kind, {"metadata": {"namespace": namespace, "name": name}}, echo=echo)

    def _index_pod(
        self,
        ns: _Namespace,
        name: str,
        new: dict[str, Any] | None,
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
                pods[name] = pod  # type: ignore[assignment]
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

    def _note(
        self,
        namespace: str,
        kind: str,
        name: str,
        outside: str | None,
        deleted: dict[str, Any] | None,
    ) -> None:
        """Journal a change: ``outside`` is its version (None: an echo); ``deleted``, the
        last copy of an object that is gone."""
        entries = self._journals.setdefault(namespace, _Entries())
        key = (kind, name)
        if deleted is not None and kind in ("Job", "Pod") and not entries.overflowed:
            entries.deleted[key] = deleted  # what the incremental planner reads of them
        else:
            entries.deleted.pop(key, None)
        if outside is None:
            if key not in entries.outside and (
                len(entries.echoes) < JOURNAL_ECHOES or (kind == "Job" and deleted is not None)
            ):
                entries.echoes.add(key)
            self.version += 1  # tests and the helpers wait on it; the loop is not woken
            return
        entries.outside.setdefault(key, set()).add(outside)
        entries.echoes.discard(key)
        if len(entries.outside) > JOURNAL_CHANGES:
            self._journals[namespace] = _Entries(overflowed=True)
        self._touch(namespace)

    def _explain(self, namespace: str, kind: str, name: str, version: str) -> None:
        """The operator's write ``version`` was seen by the watch first: an echo after all."""
        entries = self._journals.get(namespace)
        versions = None if entries is None else entries.outside.get((kind, name))
        if entries is not None and versions is not None:
            versions.discard(version)
            if not versions:
                del entries.outside[kind, name]
                entries.echoes.add((kind, name))

    def take_journal(self, namespace: str) -> Journal:
        """What changed in ``namespace`` since the last call (and start a new journal)."""
        entries = self._journals.pop(namespace, None)
        if entries is None:
            return Journal()
        changes = dict.fromkeys(entries.echoes, False)
        changes.update(dict.fromkeys(entries.outside, True))
        return Journal(changes, entries.deleted, entries.overflowed)

    def changed_outside(self, namespace: str) -> bool:
        """Whether ``namespace``'s journal holds a change from outside (not only echoes)."""
        entries = self._journals.get(namespace)
        return entries is not None and (entries.overflowed or bool(entries.outside))

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

    def swept(self, kind: str, namespace: str) -> dict[str, dict[str, Any]]:
        """The Jobs holding the outcome finalizer, or the JobRuns Running or Stalled, by
        name: all the executor's sweeps after a plan need to read of those kinds."""
        ns = self._namespaces.get(namespace)
        if ns is None:
            return {}
        objects = ns.objects.get(kind, {})
        return {n: objects[n] for n in ns.swept.get(kind, ()) if n in objects}

    def job_run_tally(self, namespace: str) -> Mapping[tuple[str, str, str], int]:
        """How many JobRuns of ``namespace`` have each ``(spec.jobDefinition,
        status.state, status.admission)`` (a missing state counts as Queued, a missing
        admission as ``""``); do not mutate."""
        ns = self._namespaces.get(namespace)
        return {} if ns is None else ns.run_tally

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
