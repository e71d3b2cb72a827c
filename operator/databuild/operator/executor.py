"""Executing a plan: the planner's actions become API writes through the gateway.

Actions run in the planner's order. Status changes of one object within a plan are
merged into one status patch (written where the object's first change was), so a Want
that goes Pending -> Building and gets new counts costs one write, not three; every
transition still appends its own BEL event (and, where it deserves one, a Kubernetes Event).

Creates use deterministic names, so AlreadyExists is success; deletes treat NotFound
as success. A status patch carries the resourceVersion the plan was based on and
checks the from-state first: a Conflict, or an object no longer in the expected
state, stops the plan and asks for a re-plan from fresh data. Each write's response
goes straight into the world store as an echo (see :class:`~databuild.operator.store.Journal`),
so the next plan sees it without waiting for the watch, and it wakes nobody. An object
deleted as a retired JobRun counts as a change from outside: the incremental planner does
not follow deletions of runs, the next full pass does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from databuild import domain
from databuild.adapters import codec
from databuild.adapters.gateway import (
    AlreadyExists,
    Conflict,
    EventType,
    Gateway,
    GatewayError,
    NotFound,
    ObjectReference,
)
from databuild.adapters.jobs import JobRunIdentity, render_job
from databuild.adapters.ownership import controlled_by, foreign_job, uid_of
from databuild.adapters.resources import API_VERSION, JobDefinitionSpec
from databuild.domain.states import WAITING_FOR_EXTERNAL_DATA
from databuild.operator import finalizer, retention, stalls
from databuild.operator.eventlog import BuildEventLog
from databuild.operator.retries import RetryQueue, permanent
from databuild.operator.snapshot import Snapshot, pool_usage
from databuild.operator.store import WorldStore

log = logging.getLogger(__name__)

_INITIAL_STATE = {"Partition": "Missing", "JobRun": "Queued", "Want": "Pending"}
EVENT_CONCURRENCY = 8
"""Kubernetes Events sent at once after a plan (they are for people, so they go last)."""

WRITE_REFUSED = "WriteRefused"
"""The Stalled reason (and Warning Event) of an object whose write the API server refused."""
INVALID_POD_TEMPLATE = "InvalidPodTemplate"
"""The reason of an attempt whose batch Job the API server refused (or could not be rendered)."""
FOREIGN_JOB = "ForeignJob"
"""The reason of an attempt whose batch Job name is taken by somebody else's Job."""


@dataclass
class ExecutionResult:
    """What executing one plan did."""

    writes: int = 0
    skipped: int = 0
    conflicts: int = 0
    errors: int = 0
    deferred: int = 0
    """Operations not tried because their object is backing off after a failed write."""
    abandoned: bool = False
    """The leader Lease was lost during the plan: the rest of it was not tried."""
    replan: bool = False
    """Something did not go as planned; plan again from fresh data right away."""


@dataclass
class _StatusOp:
    kind: str
    name: str
    expect_state: str | None
    patch: dict[str, Any] = field(default_factory=dict)
    events: list[domain.Event] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    job_run_reason: str = ""
    job_run_exit_code: int | None = None
    job_run_state: domain.JobRunState | None = None
    lane: domain.WriteLane | None = None


@dataclass
class _Create:
    kind: str
    manifest: dict[str, Any]
    event: domain.Event | None
    lane: domain.WriteLane | None = None


@dataclass
class _CreateWant:
    action: domain.CreateWant
    lane: domain.WriteLane | None = None


@dataclass
class _CreateBatchJob:
    action: domain.CreateBatchJob
    lane: domain.WriteLane | None = None


@dataclass
class _DeleteBatchJob:
    action: domain.DeleteBatchJob
    lane: domain.WriteLane | None = None


_Op = _StatusOp | _Create | _CreateWant | _CreateBatchJob | _DeleteBatchJob


def _already(status: Mapping[str, Any], patch: Mapping[str, Any]) -> bool:
    """Whether merge-patching ``patch`` onto ``status`` would change nothing."""
    for key, value in patch.items():
        if value is None:
            if key in status:
                return False
        elif status.get(key) != value:
            return False
    return True


def _lane(op: _Op) -> tuple[str, str]:
    """The object an operation concerns: operations on one object run in order."""
    match op:
        case _Create():
            return (op.kind, str(op.manifest["metadata"]["name"]))
        case _CreateWant():
            return ("Want", op.action.name)
        case _CreateBatchJob() | _DeleteBatchJob():
            return ("JobRun", op.action.job_run)
        case _StatusOp():
            return (op.kind, op.name)


_WARNING_STATES = frozenset({"Failed", "Expired", "Cancelled", "Tainted"})
# JobRun edges that are failures although the run goes on: a failed attempt that will
# be retried, and a dependency miss.
_WARNING_EDGES = frozenset({("Running", "Queued"), ("Running", "WaitingForUpstream")})
_WANT_STARTS = frozenset({"Building", "UpstreamBuilding"})


def event_type(event: domain.Event) -> EventType | None:
    """The Kubernetes Event a transition deserves, or None when the BEL alone keeps it.

    Every Event is an API write, so they are few (DESIGN §5): a Warning for every
    failure, expiry, cancellation, taint, failed attempt and dependency miss; a Normal
    Event only at the milestones a person follows (a Want starts building, a Want is
    Successful, a JobRun Succeeded after a failed attempt), so at most one Normal Event
    per JobRun. A first attempt's success says nothing its status and its Want's
    milestone do not, and would be the ninth write of every built partition.
    """
    if event.to_state in _WARNING_STATES:
        return "Warning"
    if event.kind is domain.EntityKind.JOB_RUN:
        if event.reason == WAITING_FOR_EXTERNAL_DATA:
            return None  # a probe's "not yet" is no failure: its status says it waits
        if (event.from_state, event.to_state) in _WARNING_EDGES:
            return "Warning"
        if event.to_state == "Succeeded" and event.details.get("attempt", "1") != "1":
            return "Normal"  # it recovered: the Warnings of its failed attempts need an end
        return None
    if event.kind is domain.EntityKind.WANT:
        if event.to_state == "Successful":
            return "Normal"
        if event.from_state == "Pending" and event.to_state in _WANT_STARTS:
            return "Normal"
    return None


def event_message(event: domain.Event) -> str:
    """The Kubernetes Event message of a transition: the edge, then the details."""
    edge = (
        f"{event.from_state} -> {event.to_state}"
        if event.from_state
        else (f"created in state {event.to_state}")
    )
    details = "; ".join(f"{k}={v}" for k, v in sorted(event.details.items()) if v)
    return f"{edge}: {details}" if details else edge


class Executor:
    """Carries out plans for the orchestration loop (never concurrently with itself)."""

    def __init__(
        self,
        gateway: Gateway,
        store: WorldStore,
        bel: BuildEventLog,
        *,
        job_ttl_seconds: int = 86400,
        is_leading: Callable[[], bool] = lambda: True,
        write_concurrency: int = 1,
        job_run_retention_seconds: float = 0.0,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.bel = bel
        self.job_ttl_seconds = job_ttl_seconds
        self.is_leading = is_leading
        self.write_concurrency = write_concurrency
        self.retries = RetryQueue()
        """Objects whose last write failed, backing off one by one."""
        self._stall_looks: dict[str, datetime] = {}
        self.job_run_retention = timedelta(seconds=job_run_retention_seconds)
        """Finished JobRuns are deleted this long after they finished (0: never)."""
        self._retire_at: dict[str, datetime] = {}

    # -- grouping ----------------------------------------------------------------------

    def _operations(self, snapshot: Snapshot, plan: domain.Plan) -> list[_Op]:
        ns = snapshot.namespace
        ops: list[_Op] = []
        status_ops: dict[tuple[str, str], _StatusOp] = {}

        lanes = domain.write_lanes(plan.actions, snapshot.world)
        lane: domain.WriteLane | None = None

        def status_op(kind: str, name: str, expect: str | None) -> _StatusOp:
            op = status_ops.get((kind, name))
            if op is None:
                op = status_ops[kind, name] = _StatusOp(kind, name, expect, lane=lane)
                ops.append(op)
            return op

        for action, lane in zip(plan.actions, lanes, strict=True):
            match action:
                case domain.CreatePartition():
                    ops.append(
                        _Create(
                            "Partition", codec.partition_manifest(action, ns), action.event, lane
                        )
                    )
                case domain.CreateJobRun():
                    ops.append(
                        _Create("JobRun", codec.job_run_manifest(action, ns), action.event, lane)
                    )
                case domain.CreateWant():
                    ops.append(_CreateWant(action, lane))
                case domain.CreateBatchJob():
                    ops.append(_CreateBatchJob(action, lane))
                case domain.DeleteBatchJob():
                    ops.append(_DeleteBatchJob(action, lane))
                case domain.TransitionPartition():
                    op = status_op("Partition", action.name, action.from_state)
                    op.patch.update(codec.partition_status(action.state, action.event.time))
                    op.events.append(action.event)
                case domain.TransitionJobRun():
                    op = status_op("JobRun", action.name, action.from_state)
                    op.job_run_state = action.state
                    op.job_run_reason = action.event.reason
                    op.job_run_exit_code = None
                    run = snapshot.world.job_runs.get(action.name)
                    if action.from_state == "Running" and run is not None:
                        outcome = snapshot.world.outcomes.get((action.name, run.state.attempt))
                        if outcome is not None:
                            op.job_run_exit_code = outcome.exit_code
                    op.events.append(action.event)
                case domain.TransitionWant():
                    op = status_op("Want", action.name, action.from_state)
                    op.patch.update(codec.want_state_status(action.state, action.event.time))
                    op.events.append(action.event)
                case domain.UpdateWantStatus():
                    op = status_op("Want", action.name, None)
                    op.patch.update(codec.want_derived_status(action))
                case domain.FlagSlaBreach():
                    op = status_op("Want", action.name, None)
                    op.patch["slaBreached"] = True
                    op.warnings.append(("SLABreached", action.message or "SLA breached"))
                case domain.HoldJobRun():
                    op = status_op("JobRun", action.name, "Queued")
                    reason, message = action.hold or (None, None)
                    op.patch.update({"reason": reason, "message": message})
                case domain.UpdateJobDefinitionStatus():
                    op = status_op("JobDefinition", action.name, None)
                    op.patch.update(codec.job_definition_status(action))
                    if action.warning is not None:
                        op.warnings.append(action.warning)
                case domain.RecordWant():
                    # A user's Want seen for the first time: its creation event, and a
                    # status (observedGeneration) so it is not recorded again.
                    op = status_op("Want", action.name, None)
                    op.patch.setdefault("state", "Pending")
                    op.events.insert(0, action.event)
                case _:
                    log.error("the planner asked for an unknown action: %r", action)
        return ops

    # -- execution ---------------------------------------------------------------------

    async def execute(
        self, snapshot: Snapshot, plan: domain.Plan, now: datetime
    ) -> ExecutionResult:
        """Apply ``plan`` (planned from ``snapshot``), object by object.

        Operations are grouped by the object they concern (a JobRun's group also holds
        its batch Jobs). By default (``write_concurrency`` 1) they run in the planner's
        order; above 1, that many objects are written at once, each in the planner's
        order (on two cores concurrent writes measured no faster). A surprise (a
        conflict, an object not in the expected state) stops that object's operations
        and asks for a re-plan; a failed write stops them too and backs that object
        off (see :class:`RetryQueue`). Every other object of the plan goes on.
        """
        result = ExecutionResult()
        pending_events: list[tuple[ObjectReference, EventType, str, str]] = []
        ns = snapshot.namespace
        operations = self._operations(snapshot, plan)
        if self.write_concurrency <= 1:
            # The plan's own order; a stopped object skips its rest.
            phases = [[operations]]
        else:
            # One lane per build (see domain.write_lanes), then the Wants' status.
            by_lane: dict[domain.WriteLane, list[_Op]] = {}
            by_want: dict[tuple[str, str], list[_Op]] = {}
            for op in operations:
                if op.lane is None:
                    by_want.setdefault(_lane(op), []).append(op)
                else:
                    by_lane.setdefault(op.lane, []).append(op)
            phases = [list(by_lane.values()), list(by_want.values())]
        whole_lane = self.write_concurrency > 1
        limit = asyncio.Semaphore(self.write_concurrency)
        stopped: set[tuple[str, str]] = set()

        async def run_lane(ops: list[_Op]) -> None:
            async with limit:
                for op in ops:
                    if not self.is_leading():
                        log.warning("lost the leader Lease: abandoning the rest of the plan")
                        result.abandoned = True
                        return
                    key = _lane(op)
                    if key in stopped:
                        continue
                    if self.retries.waiting(ns, key, now):
                        stopped.add(key)  # backing off: its turn comes at its deadline
                        result.deferred += 1
                        if whole_lane:
                            return
                        continue
                    outcome = await self._run(ns, op, now, result, pending_events)
                    if outcome == "ok":
                        self.retries.forget(ns, key)
                        continue
                    stopped.add(key)
                    if outcome == "surprise":
                        result.replan = True
                    if whole_lane:
                        return  # the rest of a build waits for this write (crash safety)

        try:
            for lanes in phases:
                await asyncio.gather(*(run_lane(ops) for ops in lanes))
            await self._bad_wants(snapshot, now, result)
            await self._concurrency_pools(snapshot, now, result)
            await self._release_jobs(snapshot, now, result)
            await self._review_stalls(snapshot, now, result, pending_events)
            await self._retire_job_runs(snapshot, plan, now, result)
        finally:
            await self._emit_events(pending_events)
        return result

    def wakeup(self, namespace: str, now: datetime) -> datetime | None:
        """When ``namespace`` should be planned again for the executor's sake: an object
        backing off may be written, or a batch Job without a pod is looked into."""
        times = [
            self.retries.next_due(namespace, now),
            self._stall_looks.get(namespace),
            self._retire_at.get(namespace),
        ]
        due = [t for t in times if t is not None and t > now]
        return min(due) if due else None

    async def _run(
        self,
        ns: str,
        op: _Op,
        now: datetime,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> Literal["ok", "surprise", "error"]:
        try:
            match op:
                case _Create():
                    done = await self._create(ns, op, result, events)
                case _CreateWant():
                    done = await self._create_want(ns, op.action, result, events)
                case _CreateBatchJob():
                    done = await self._create_batch_job(ns, op.action, result, events)
                case _DeleteBatchJob():
                    done = await self._delete_batch_job(ns, op.action, result)
                case _StatusOp():
                    done = await self._status(ns, op, now, result, events)
        except GatewayError as error:
            result.errors += 1
            key = _lane(op)
            if permanent(error):
                # The same request would be refused again: say so on the object, and
                # try again only rarely (the schema or the object may be fixed).
                delay = self.retries.give_up(ns, key, now)
                log.error(
                    "%s %s/%s: the API server refused the write, trying again in %.0fs: %s",
                    key[0],
                    ns,
                    key[1],
                    delay,
                    error,
                )
                await self._mark_refused(ns, key, error, now, events)
            else:
                delay = self.retries.failed(ns, key, now)
                log.warning(
                    "%s %s/%s: API request failed, trying again in %.1fs: %s",
                    key[0],
                    ns,
                    key[1],
                    delay,
                    error,
                )
            return "error"
        return "ok" if done else "surprise"

    async def _mark_refused(
        self,
        ns: str,
        key: tuple[str, str],
        error: GatewayError,
        now: datetime,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> None:
        """A ``Stalled`` condition and a Warning Event on the object a write was refused for.

        Only the condition is written (the refused status is what failed); an object
        that does not exist yet (a refused create) is only logged.
        """
        kind, name = key
        current = self.store.get(kind, ns, name)
        if current is None:
            return
        message = f"the API server refused the operator's write: {error}"[:1024]
        if self.retries.marked(ns, key, message):
            return  # said once; saying it on every retry would only add writes
        conditions = [
            c
            for c in (current.get("status") or {}).get("conditions") or []
            if c.get("type") != "Stalled"
        ]
        conditions.append(
            {
                "type": "Stalled",
                "status": "True",
                "reason": WRITE_REFUSED,
                "message": message,
                "lastTransitionTime": codec.iso(now),
                "observedGeneration": int(current["metadata"].get("generation") or 1),
            }
        )
        try:
            updated = await self.gateway.patch_status(kind, ns, name, {"conditions": conditions})
        except GatewayError as second:
            log.warning("cannot flag %s %s/%s as stalled: %s", kind, ns, name, second)
            updated = current
        else:
            self.store.put(kind, updated, echo=True)
        events.append((ObjectReference.of(updated), "Warning", WRITE_REFUSED, message))

    async def _current(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.store.get(kind, ns, name)
        if obj is not None:
            return obj
        try:
            fetched = await self.gateway.get(kind, ns, name)
        except NotFound:
            return None
        self.store.put(kind, fetched)
        return self.store.get(kind, ns, name)

    def _record(
        self,
        ns: str,
        obj: Mapping[str, Any],
        event: domain.Event,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> None:
        self.bel.append(ns, event)
        type_ = event_type(event)
        if type_ is not None:
            events.append((ObjectReference.of(obj), type_, event.reason, event_message(event)))

    async def _create(
        self,
        ns: str,
        op: _Create,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> bool:
        name = op.manifest["metadata"]["name"]
        try:
            created = await self.gateway.create(op.manifest)
        except AlreadyExists:
            # Made before a restart (or the watch is behind): the plan goes on with it.
            result.skipped += 1
            return await self._current(op.kind, ns, name) is not None
        except GatewayError as error:
            if permanent(error) or error.status == 409:
                raise
            # No answer, or a 5xx: the object may exist all the same. JobRun names come
            # from the time of the decision, so the next plan would pick another name
            # and build twice; look before letting the failure stand.
            made = await self._made_anyway(op.kind, ns, name)
            if made is None:
                raise
            created = made
        result.writes += 1
        self.store.put(op.kind, created, echo=True)
        if op.event is not None:
            self._record(ns, created, op.event, events)
        return True

    async def _made_anyway(self, kind: str, ns: str, name: str) -> dict[str, Any] | None:
        """The object a create that failed without a clear answer made after all, if any."""
        try:
            found = await self.gateway.get(kind, ns, name)
        except GatewayError:
            return None
        return dict(found)

    async def _create_want(
        self,
        ns: str,
        action: domain.CreateWant,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> bool:
        owner = await self._current("JobRun", ns, action.source_job_run)
        uid = str((owner or {}).get("metadata", {}).get("uid", "")) or None
        return await self._create(
            ns,
            _Create("Want", codec.want_manifest(action, ns, uid), action.event),
            result,
            events,
        )

    async def _create_batch_job(
        self,
        ns: str,
        action: domain.CreateBatchJob,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> bool:
        run = await self._current("JobRun", ns, action.job_run)
        jd = self.store.get("JobDefinition", ns, action.job_definition)
        if run is None or jd is None:
            log.warning(
                "cannot create %s: JobRun or JobDefinition %s is gone",
                action.name,
                action.job_definition,
            )
            return False
        identity = JobRunIdentity(
            name=action.job_run,
            namespace=ns,
            uid=str(run["metadata"].get("uid", "")),
            job_definition=action.job_definition,
        )
        try:
            spec = JobDefinitionSpec.model_validate(jd.get("spec") or {})
            manifest = render_job(
                run=identity,
                definition=spec,
                partitions=[str(r) for r in action.partitions],
                inputs=[str(r) for r in action.inputs],
                captures=action.captures,
                attempt=action.attempt,
                ttl_seconds_after_finished=self.job_ttl_seconds,
                name=action.name,
            )
            if action.active_deadline_seconds is not None:
                manifest["spec"]["activeDeadlineSeconds"] = action.active_deadline_seconds
            created = await self.gateway.create(manifest)
        except AlreadyExists:
            # Created before a restart (never a duplicate), unless somebody else put a Job
            # of their own under this name: then this attempt fails, visibly.
            reason = await self._foreign_job(ns, manifest)
            if reason is None:
                result.skipped += 1
                return True
            message = (
                f"a batch Job named {action.name} already exists and {reason};"
                " the operator reads no outcome from it. Delete it to let the build go on."
            )
            refused = domain.RefusedAttempt(action.attempt, FOREIGN_JOB, message)
            await self._record_refusal(ns, run, refused, result, events)
            return False
        except (GatewayError, ValidationError, ValueError) as error:
            if isinstance(error, GatewayError) and not permanent(error):
                raise  # may go through later: the JobRun backs off (see _run)
            # A pod template the API server refuses (422, or 413 for one too large)
            # would be refused on every retry of the plan; count it as a failed attempt
            # so retries and failure follow.
            message = f"the batch Job was rejected: {error}"[: 1024 - len(INVALID_POD_TEMPLATE) - 2]
            refused = domain.RefusedAttempt(action.attempt, INVALID_POD_TEMPLATE, message)
            await self._record_refusal(ns, run, refused, result, events)
            return False
        result.writes += 1
        self.store.put("Job", created, echo=True)
        return True

    async def _record_refusal(
        self,
        ns: str,
        run: Mapping[str, Any],
        refused: domain.RefusedAttempt,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> None:
        """Record on the JobRun's status that an attempt's batch Job was not created.

        The planner reads it back as that attempt's failure and decides retry or
        failure; being in the status, it survives a restart, so the refused Job is
        never tried again. If the write fails, the error backs the JobRun off and the
        next plan meets the same refusal and records it then.
        """
        name = str(run["metadata"]["name"])
        text = refused.outcome(name).message
        log.warning("%s/%s attempt %d: %s", ns, name, refused.attempt, text)
        updated = await self.gateway.patch_status(
            "JobRun", ns, name, codec.refused_attempt_status(refused)
        )
        result.writes += 1
        # Not an echo: the planner did not decide it, and reads it back in full.
        self.store.put("JobRun", updated)
        events.append((ObjectReference.of(updated), "Warning", refused.reason, text))

    async def _foreign_job(self, ns: str, manifest: Mapping[str, Any]) -> str | None:
        """Why the Job already under ``manifest``'s name is not this attempt's, or None."""
        try:
            existing = await self.gateway.get("Job", ns, manifest["metadata"]["name"])
        except NotFound:
            return None  # gone again (TTL): nothing of anybody else's to read
        return foreign_job(existing, manifest)

    async def _delete_batch_job(
        self, ns: str, action: domain.DeleteBatchJob, result: ExecutionResult
    ) -> bool:
        # Only the Job this JobRun controls, and only that object: a uid precondition, so
        # a Job somebody made under the same name since is never deleted by the operator.
        job = self.store.get("Job", ns, action.name)
        if job is None:  # the watch may be behind
            try:
                job = await self.gateway.get("Job", ns, action.name)
            except NotFound:
                job = None
        run = self.store.get("JobRun", ns, action.job_run)
        if job is None or run is None or not controlled_by(job, "JobRun", uid_of(run)):
            result.skipped += 1
            return True
        try:
            await self.gateway.delete(
                "Job", ns, action.name, uid=uid_of(job) or None, propagation="Background"
            )
        except (NotFound, Conflict):
            result.skipped += 1  # gone, or replaced by another object of that name
            self.store.forget("Job", ns, action.name, echo=True)
            return True
        result.writes += 1
        self.store.forget("Job", ns, action.name, echo=True)
        # The outcome finalizer keeps the Job until it is released, and the watch event
        # saying it is being deleted may have arrived during the delete and been
        # forgotten just now; nothing else changes the Job, so no later event would
        # bring it back and it would stay, deleting, for ever. Read it back.
        with contextlib.suppress(GatewayError):  # gone (NotFound), or no worse than before
            self.store.put("Job", await self.gateway.get("Job", ns, action.name), echo=True)
        return True

    async def _status(
        self,
        ns: str,
        op: _StatusOp,
        now: datetime,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> bool:
        current = await self._current(op.kind, ns, op.name)
        if current is None:
            log.info("%s %s/%s is gone; planning again", op.kind, ns, op.name)
            return False
        state = str((current.get("status") or {}).get("state") or _INITIAL_STATE.get(op.kind))
        if op.expect_state is not None and state != op.expect_state:
            # Already applied (or changed meanwhile): never apply a transition twice.
            log.info(
                "%s %s/%s is %s, not %s as planned; planning again",
                op.kind,
                ns,
                op.name,
                state,
                op.expect_state,
            )
            result.skipped += 1
            return False
        generation = int(current["metadata"].get("generation") or 1)
        patch = dict(op.patch)
        if op.kind in ("Partition", "Want"):
            patch.setdefault("observedGeneration", generation)
        if op.job_run_state is not None:
            patch.update(
                codec.job_run_status(
                    op.job_run_state,
                    reason=op.job_run_reason,
                    exit_code=op.job_run_exit_code,
                    generation=generation,
                    now=now,
                    previous_conditions=(current.get("status") or {}).get("conditions") or [],
                )
            )
        if not op.events and not op.warnings and _already(current.get("status") or {}, patch):
            # The status already says so (e.g. a message the API stores truncated): a
            # write would change nothing, and repeating it on every plan would spin.
            result.skipped += 1
            return True
        try:
            updated = await self.gateway.patch_status(
                op.kind,
                ns,
                op.name,
                patch,
                resource_version=str(current["metadata"].get("resourceVersion") or "") or None,
            )
        except Conflict:
            result.conflicts += 1
            try:
                self.store.put(op.kind, await self.gateway.get(op.kind, ns, op.name))
            except NotFound:
                self.store.forget(op.kind, ns, op.name)
            return False
        except NotFound:
            self.store.forget(op.kind, ns, op.name)
            return False
        result.writes += 1
        self.store.put(op.kind, updated, echo=True)
        for event in op.events:
            self._record(ns, updated, event, events)
        for reason, message in op.warnings:
            events.append((ObjectReference.of(updated), "Warning", reason, message))
        return True

    async def _retire_job_runs(
        self, snapshot: Snapshot, plan: domain.Plan, now: datetime, result: ExecutionResult
    ) -> None:
        """Delete finished JobRuns past their retention (see :mod:`retention`).

        The sweep reads every JobRun and Partition, so a plan of the incremental path
        (``snapshot.incremental``) sweeps only when one is due: what it changes can only
        finish runs, which are due no sooner than the retention from now. Whatever else
        makes a run due (a taint, a deleted Want) comes through a full pass.
        """
        ns = snapshot.namespace
        if not self.job_run_retention:
            return
        due = self._retire_at.get(ns)
        if snapshot.incremental and (due is None or due > now):
            if any(
                isinstance(a, domain.TransitionJobRun) and a.state.STATE in retention.FINISHED
                for a in plan.actions
            ):
                soonest = now + self.job_run_retention
                self._retire_at[ns] = soonest if due is None else min(due, soonest)
            return
        found = retention.retire(
            self.store.objects("JobRun", ns),
            self.store.objects("Partition", ns),
            now,
            self.job_run_retention,
        )
        if found.next_due is None:
            self._retire_at.pop(ns, None)
        else:
            self._retire_at[ns] = found.next_due
        for name, uid in found.job_runs:
            if not self.is_leading():
                return
            try:
                await self.gateway.delete(
                    "JobRun", ns, name, uid=uid or None, propagation="Background"
                )
            except NotFound:
                pass
            except GatewayError as error:
                log.warning("cannot delete the old JobRun %s/%s: %s", ns, name, error)
                continue
            else:
                result.writes += 1
                log.info("deleted JobRun %s/%s: finished longer ago than its retention", ns, name)
            self.store.forget("JobRun", ns, name)

    async def _review_stalls(
        self,
        snapshot: Snapshot,
        now: datetime,
        result: ExecutionResult,
        events: list[tuple[ObjectReference, EventType, str, str]],
    ) -> None:
        """Say on each Running JobRun whose Job gets no pod why (see :mod:`stalls`)."""
        ns = snapshot.namespace
        runs = self.store.swept("JobRun", ns)  # Running or Stalled: the others say nothing
        found = stalls.review(
            runs, self.store.objects("Job", ns), lambda run: self.store.pods_of(ns, run), now
        )
        if found.next_look is None:
            self._stall_looks.pop(ns, None)
        else:
            self._stall_looks[ns] = found.next_look
        for suspect in found.suspects:
            if not self.is_leading():
                return
            if suspect.unscheduled:
                # The pod exists and the scheduler said why it cannot be placed.
                text = f"the pod of batch Job {suspect.job} cannot be placed: "
                text += suspect.unscheduled
                if await self._set_stall(
                    ns, suspect.job_run, text, now, result, reason=stalls.UNSCHEDULABLE
                ):
                    run = self.store.get("JobRun", ns, suspect.job_run) or {}
                    events.append(
                        (ObjectReference.of(run), "Warning", stalls.UNSCHEDULABLE, text[:1024])
                    )
                continue
            try:
                listed = await self.gateway.list(
                    "Event",
                    ns,
                    field_selector=f"involvedObject.kind=Job,involvedObject.name={suspect.job}",
                )
            except GatewayError as error:
                log.warning("cannot read the Events of batch Job %s/%s: %s", ns, suspect.job, error)
                continue
            message = stalls.newest_failed_create(listed)
            if message is not None:
                message = f"batch Job {suspect.job} cannot create its pod: {message}"
                if await self._set_stall(ns, suspect.job_run, message, now, result):
                    run = self.store.get("JobRun", ns, suspect.job_run) or {}
                    events.append(
                        (ObjectReference.of(run), "Warning", stalls.FAILED_CREATE, message[:1024])
                    )
        for name in found.recovered:
            if not self.is_leading():
                return
            await self._set_stall(ns, name, None, now, result)

    async def _set_stall(
        self,
        ns: str,
        name: str,
        message: str | None,
        now: datetime,
        result: ExecutionResult,
        *,
        reason: str = stalls.FAILED_CREATE,
    ) -> bool:
        """Set (``message``) or clear the JobRun's Stalled condition; whether it was written."""
        run = self.store.get("JobRun", ns, name)
        if run is None:
            return False
        try:
            updated = await self.gateway.patch_status(
                "JobRun",
                ns,
                name,
                {"conditions": stalls.conditions_with_stall(run, message, now, reason)},
                resource_version=str(run["metadata"].get("resourceVersion") or "") or None,
            )
        except GatewayError as error:  # a conflict included: the next plan looks again
            log.info("cannot update the Stalled condition of JobRun %s/%s: %s", ns, name, error)
            return False
        result.writes += 1
        self.store.put("JobRun", updated, echo=True)
        return True

    async def _release_jobs(
        self, snapshot: Snapshot, now: datetime, result: ExecutionResult
    ) -> None:
        """Remove the outcome finalizer from batch Jobs whose outcome is recorded.

        Decided from the store after the plan's writes, whose responses are in it: a
        JobRun's status counts only once the API server accepted it, so a crash in
        between keeps the finalizer, and the next operator reads the outcome from the
        Job that is still there.
        """
        ns = snapshot.namespace
        # Only Jobs still holding the finalizer can be due (a few, not every Job kept).
        due = finalizer.releases(self.store.swept("Job", ns), self.store.objects("JobRun", ns))
        limit = asyncio.Semaphore(self.write_concurrency)

        async def release(job: finalizer.Release) -> None:
            async with limit:
                await self._release_job(ns, job, now, result)

        # Each Job is its own object: released side by side, like the plan's lanes.
        await asyncio.gather(*(release(job) for job in due))

    async def _release_job(
        self, ns: str, job: finalizer.Release, now: datetime, result: ExecutionResult
    ) -> None:
        """Remove the outcome finalizer of one batch Job (backing it off if that fails)."""
        if not self.is_leading():
            return
        key = ("Job", job.job)
        if self.retries.waiting(ns, key, now):
            return
        try:
            updated = await self.gateway.patch(
                "Job",
                ns,
                job.job,
                {"metadata": {"finalizers": list(job.finalizers) or None}},
                resource_version=job.resource_version or None,
            )
        except NotFound:
            self.store.forget("Job", ns, job.job)
            return
        except Conflict:
            return  # changed meanwhile: the watch brings it back, decided again
        except GatewayError as error:
            delay = self.retries.failed(ns, key, now)
            log.warning(
                "cannot release batch Job %s/%s, trying again in %.1fs: %s",
                ns,
                job.job,
                delay,
                error,
            )
            result.errors += 1
            return
        self.retries.forget(ns, key)
        result.writes += 1
        self.store.put("Job", updated, echo=True)

    async def _bad_wants(self, snapshot: Snapshot, now: datetime, result: ExecutionResult) -> None:
        for bad in snapshot.bad_wants:
            expected = codec.bad_want_status(bad.problem, bad.generation, now, reason=bad.reason)
            condition = expected["conditions"][0]
            if (bad.ready_reason, bad.ready_message) == (condition["reason"], condition["message"]):
                continue  # already says so: writing again would only loop
            if not self.is_leading():
                return
            try:
                updated = await self.gateway.patch_status(
                    "Want", snapshot.namespace, bad.name, expected
                )
            except GatewayError as error:
                log.warning(
                    "cannot flag Want %s/%s as invalid: %s", snapshot.namespace, bad.name, error
                )
                continue
            result.writes += 1
            self.store.put("Want", updated, echo=True)
            log.warning(
                "Want %s/%s cannot be planned: %s", snapshot.namespace, bad.name, bad.problem
            )
            with contextlib.suppress(GatewayError):
                await self.gateway.emit_event(
                    ObjectReference.of(updated),
                    type="Warning",
                    reason=bad.reason,
                    message=condition["message"][:1024],
                )

    async def _concurrency_pools(
        self, snapshot: Snapshot, now: datetime, result: ExecutionResult
    ) -> None:
        """Each ConcurrencyPool's counts and Ready condition, written when they changed.

        Counted from the store after this plan's writes, so a start or a finish shows
        in the same round (one status write per pool per change, none otherwise).
        """
        if not snapshot.pool_reports:
            return
        defs = snapshot.world.job_definitions
        usage = pool_usage(self.store, snapshot.namespace, defs)
        for report in snapshot.pool_reports:
            pool = snapshot.pools.get(report.name)
            if pool is None:
                continue
            members = sorted(n for n, jd in defs.items() if jd.concurrency_pool == report.name)
            ready = codec.concurrency_pool_ready(pool, members)
            counts = usage.get(report.name, domain.PoolUsage())
            if (
                report.usage == counts
                and report.ready == ready
                and report.observed_generation == report.generation
            ):
                continue
            if not self.is_leading():
                return
            kept = report.since if report.ready[0] == ready[0] else None
            since = kept or str(codec.iso(now))
            try:
                updated = await self.gateway.patch_status(
                    "ConcurrencyPool",
                    snapshot.namespace,
                    report.name,
                    codec.concurrency_pool_status(counts, ready, report.generation, since),
                )
            except GatewayError as error:
                log.warning(
                    "cannot write the status of ConcurrencyPool %s/%s: %s",
                    snapshot.namespace,
                    report.name,
                    error,
                )
                continue
            result.writes += 1
            self.store.put("ConcurrencyPool", updated, echo=True)

    async def _emit_events(self, events: list[tuple[ObjectReference, EventType, str, str]]) -> None:
        if not events:
            return
        queue = iter(events)  # a few workers, not a coroutine per event: a first plan
        # in a big namespace has tens of thousands of them

        async def emit() -> None:
            for ref, type_, reason, message in queue:
                try:
                    await self.gateway.emit_event(ref, type=type_, reason=reason, message=message)
                except GatewayError as error:
                    # Events are for humans; losing one must not stop a build.
                    log.warning(
                        "could not emit event %s on %s %s: %s", reason, ref.kind, ref.name, error
                    )

        await asyncio.gather(*(emit() for _ in range(min(EVENT_CONCURRENCY, len(events)))))


__all__ = [
    "API_VERSION",
    "EVENT_CONCURRENCY",
    "ExecutionResult",
    "Executor",
    "event_message",
    "event_type",
]
