"""Translation between API objects and the domain: reading the World, writing actions.

Reading turns the raw objects the watches deliver into the domain's frozen entities
(``Want``, ``Partition``, ``JobRun``, ``JobDefinition``, ``JobOutcome``); writing turns
the planner's actions into manifests and status patches in the CRDs' wire format.

The CRDs name a few status fields differently from the domain's own serialisers
(``jobRun`` vs ``builtBy``, ``jobName`` vs ``batchJob``, ``startedAt``/``finishedAt`` vs
``startTime``/``finishTime``); this module is the one place that knows both spellings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from databuild import domain
from databuild.adapters.jobs import (
    AttemptActive,
    AttemptFailed,
    AttemptMissedDependencies,
    AttemptSucceeded,
    job_name_of,
    read_outcome,
    true_conditions,
)
from databuild.adapters.labels import (
    APP_COMPONENT,
    APP_MANAGED_BY,
    APP_PART_OF,
    ATTEMPT_ANNOTATION,
    JOB_DEFINITION_LABEL,
    MANAGED_BY,
    PART_OF,
    TAINT_ANNOTATION,
    TAINT_REQUESTED_AT_ANNOTATION,
    label_value,
)
from databuild.adapters.ownership import controller_of, pods_of_job
from databuild.adapters.resources import (
    API_VERSION,
    MAX_MESSAGE_LENGTH,
    ConcurrencyPool,
    JobDefinition,
    JobDefinitionStatus,
    JobRun,
    Partition,
    Want,
)

REF_HASH_LABEL = "databuild.dev/ref-hash"
SOURCE_LABEL = "databuild.dev/source-job-run"

# A Job's Failed condition can reach us before its pod's termination state (two
# watches); this long we wait for the pod before judging the failure without it.
POD_GRACE = timedelta(seconds=5)


class BadObject(ValueError):
    """An object the operator cannot use; the message says what is wrong with it."""

    def __init__(self, kind: str, name: str, problem: str) -> None:
        super().__init__(f"{kind} {name!r}: {problem}")
        self.kind = kind
        self.name = name
        self.problem = problem


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds, so a time read back compares equal."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _name(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", "?"))


_MAX_TIME_TEXT = 64


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time in UTC (a naive one read as UTC).

    ValueError for text that is not one, OverflowError for one outside what a datetime
    holds in UTC (``9999-12-31T23:59:59-23:59``).
    """
    if not value:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value)
        if len(text) > _MAX_TIME_TEXT:
            raise ValueError(f"a time is at most {_MAX_TIME_TEXT} characters")
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return _aware(moment).astimezone(UTC)


def time_or_none(value: Any) -> datetime | None:
    """An RFC 3339 time of an object read leniently: ``None`` where ``_parse_time`` would
    raise (not a time, too long, out of range), for fields that only schedule work."""
    try:
        return _parse_time(value)
    except (ValueError, OverflowError):
        return None


def _aware(moment: datetime) -> datetime:
    """``moment`` with a zone (UTC when it has none): the planner compares aware times."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------


def job_definition_from(body: Mapping[str, Any]) -> domain.JobDefinition:
    """The domain JobDefinition (its ``error`` says when the patterns do not parse)."""
    try:
        jd = JobDefinition.model_validate(body)
    except ValidationError as error:
        raise BadObject("JobDefinition", _name(body), _first_error(error)) from None
    spec = jd.spec
    return domain.JobDefinition(
        name=jd.metadata.name,
        outputs=tuple(spec.outputs),
        inputs=tuple(spec.inputs),
        retry=domain.Retry(limit=spec.retry.limit, backoff_seconds=spec.retry.backoff_seconds),
        max_concurrent_runs=spec.max_concurrent_runs,
        active_deadline_seconds=spec.active_deadline_seconds,
        probe_interval_seconds=spec.probe.interval_seconds if spec.probe else None,
        concurrency_pool=spec.concurrency_pool,
    )


def concurrency_pool_from(body: Mapping[str, Any]) -> domain.ConcurrencyPool:
    """The domain ConcurrencyPool (its spec); a spec that does not parse is a BadObject."""
    try:
        pool = ConcurrencyPool.model_validate(body)
    except ValidationError as error:
        raise BadObject("ConcurrencyPool", _name(body), _first_error(error)) from None
    return domain.ConcurrencyPool(pool.metadata.name, pool.spec.max_concurrent_runs)


def concurrency_pool_ready(
    pool: domain.ConcurrencyPool, members: Sequence[str]
) -> tuple[str, str, str]:
    """(status, reason, message) of a ConcurrencyPool's Ready condition."""
    if not members:
        return ("True", "NoMembers", "no JobDefinition names this pool in spec.concurrencyPool")
    shown = ", ".join(members[:5]) + (f" and {len(members) - 5} more" if len(members) > 5 else "")
    return (
        "True",
        "Applied",
        f"at most {pool.max_concurrent_runs} runs at once of JobDefinitions {shown}"[:4096],
    )


def concurrency_pool_status(
    usage: domain.PoolUsage,
    ready: tuple[str, str, str],
    generation: int,
    since: str,
) -> dict[str, Any]:
    """The status patch of a ConcurrencyPool; ``since``: when Ready last changed (RFC 3339)."""
    status, reason, message = ready
    condition = _condition("Ready", status, reason, message, since)
    return {
        "running": usage.running,
        "waiting": usage.waiting,
        "conditions": [{**condition, "observedGeneration": generation}],
        "observedGeneration": generation,
    }


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    got = repr(first.get("input"))
    got = got if len(got) <= 120 else got[:117] + "..."
    return f"{where}: {first['msg']} (got {got})"


def _conditions_from(items: Sequence[Any]) -> tuple[domain.Condition, ...]:
    out = []
    for item in items:
        out.append(
            domain.Condition(
                type=item.type,
                status=item.status,
                reason=item.reason,
                message=item.message,
                last_transition_time=item.last_transition_time,
            )
        )
    return tuple(out)


def want_from(body: Mapping[str, Any]) -> domain.Want:
    """The domain Want (spec, persisted state and the derived status last written).

    A status that does not parse is ignored (the planner derives it again); a spec
    that does not parse is a :class:`BadObject`.
    """
    try:
        try:
            want = Want.model_validate(body)
        except ValidationError as error:
            if not all(e["loc"] and e["loc"][0] == "status" for e in error.errors()):
                raise
            want = Want.model_validate({k: v for k, v in body.items() if k != "status"})
        refs = tuple(domain.PartitionRef(r) for r in want.spec.partitions)
        state = domain.load_want_state(
            {
                "state": want.status.state,
                "reason": want.status.reason,
                "message": want.status.message,
            }
        )
    except (ValidationError, domain.InvalidPartitionRef, domain.InvalidStatus) as error:
        problem = _first_error(error) if isinstance(error, ValidationError) else str(error)
        raise BadObject("Want", _name(body), problem) from None
    meta = want.metadata
    counts = want.status.partitions
    count_map: dict[str, int] = {}
    if counts is not None:
        for state_name, n in (
            ("Building", counts.building),
            ("Failed", counts.failed),
            ("Live", counts.live),
            ("Missing", counts.missing),
            ("Tainted", counts.tainted),
        ):
            if n:
                count_map[state_name] = n
    data_timestamp = want.spec.data_timestamp
    return domain.Want(
        name=meta.name,
        partitions=refs,
        created_at=_aware(meta.creation_timestamp or datetime.now(UTC)),
        ttl_seconds=want.spec.ttl_seconds,
        sla_seconds=want.spec.sla_seconds,
        data_timestamp=_aware(data_timestamp) if data_timestamp is not None else None,
        source_job_run=want.spec.source.job_run if want.spec.source else None,
        deleted=meta.deletion_timestamp is not None,
        generation=meta.generation or 1,
        state=state,
        status=domain.WantStatus(
            counts=count_map,
            conditions=_conditions_from(want.status.conditions),
            observed_generation=want.status.observed_generation or 0,
            sla_breached=bool(want.status.sla_breached),
        ),
        priority=want.spec.priority or domain.DEFAULT_PRIORITY,
    )


def partition_from(body: Mapping[str, Any]) -> domain.Partition:
    """The domain Partition. A status that is not a valid state reads as Missing."""
    try:
        part = Partition.model_validate(body)
        ref = domain.PartitionRef(part.spec.ref)
    except (ValidationError, domain.InvalidPartitionRef) as error:
        problem = _first_error(error) if isinstance(error, ValidationError) else str(error)
        raise BadObject("Partition", _name(body), problem) from None
    status = part.status
    try:
        state = domain.load_partition_state(
            {
                "state": status.state,
                "builtBy": status.job_run,
                "liveSince": status.live_since,
                "inputs": status.inputs,
                "failedAt": status.failed_at,
                "message": status.message,
            }
        )
    except domain.InvalidStatus:
        # The catalog entry cannot be trusted: rebuilding is the safe reading.
        state = domain.PartitionMissing()
    written_at = annotation_written_at(body, TAINT_REQUESTED_AT_ANNOTATION)
    return domain.Partition(ref=ref, state=state, taint_request=_taint_request(part, written_at))


def annotation_written_at(body: Mapping[str, Any], key: str) -> datetime | None:
    """When the API server last saw annotation ``key`` written (``managedFields``), if known.

    Each field manager's entry carries the server's time of its last change, so this
    is a time no client can choose. That time has whole seconds: this is the end of the
    second (see :func:`end_of_second`).
    """
    latest: datetime | None = None
    entries = (body.get("metadata") or {}).get("managedFields")
    for entry in entries if isinstance(entries, list) else ():
        if not isinstance(entry, Mapping):
            continue
        fields = (entry.get("fieldsV1") or {}).get("f:metadata") or {}
        if not isinstance(fields, Mapping) or f"f:{key}" not in (fields.get("f:annotations") or {}):
            continue
        at = time_or_none(entry.get("time"))
        if at is not None and (latest is None or at > latest):
            latest = at
    return end_of_second(latest) if latest is not None else None


def end_of_second(moment: datetime) -> datetime:
    """The end of the second of a time the API server wrote with whole seconds.

    ``creationTimestamp`` and managedFields times drop the fraction, so a request made at
    12:00:00.7 reads as 12:00:00; data Live at 12:00:00.5 was Live when it was made.
    """
    return moment if moment.microsecond else moment + timedelta(seconds=1)


def _taint_request(part: Partition, written_at: datetime | None) -> domain.TaintRequest | None:
    """The request annotated on the Partition (by whoever may patch it), if any.

    Without a readable time the request is ignored (the planner could not tell which
    data it is about); a time without a zone is read as UTC. The time is clamped to
    ``written_at``, when the server saw the annotation written: a request dated in the
    future would otherwise taint every rebuild until that date.
    """
    annotations = part.metadata.annotations
    if TAINT_ANNOTATION not in annotations:
        return None
    try:
        requested_at = _parse_time(annotations.get(TAINT_REQUESTED_AT_ANNOTATION))
    except (ValueError, OverflowError):
        return None
    if requested_at is None:
        return None
    if written_at is not None and requested_at > written_at:
        requested_at = written_at
    reason = annotations[TAINT_ANNOTATION][:_MAX_TAINT_REASON] or "tainted by a user"
    return domain.TaintRequest(reason, requested_at)


_MAX_TAINT_REASON = 1024


def job_run_from(body: Mapping[str, Any]) -> domain.JobRun:
    """The domain JobRun (spec and persisted state)."""
    try:
        run = JobRun.model_validate(body)
        partitions = tuple(domain.PartitionRef(r) for r in run.spec.partitions)
        inputs = tuple(domain.PartitionRef(r) for r in run.spec.inputs)
        status = run.status
        state = domain.load_jobrun_state(
            {
                "state": status.state,
                "attempt": status.attempt,
                "failedAttempts": status.failed_attempts,
                "retryAfter": status.retry_after,
                "batchJob": status.job_name,
                "startTime": status.started_at,
                "finishTime": status.finished_at,
                "missingPartitions": status.missing_partitions,
                "everMissing": status.ever_missing,
                "message": status.message,
            }
        )
    except (ValidationError, domain.InvalidPartitionRef, domain.InvalidStatus) as error:
        problem = _first_error(error) if isinstance(error, ValidationError) else str(error)
        raise BadObject("JobRun", _name(body), problem) from None
    meta = run.metadata
    refused = status.refused_attempt
    return domain.JobRun(
        name=meta.name,
        job_definition=run.spec.job_definition,
        partitions=partitions,
        inputs=inputs,
        created_at=_aware(run.spec.created_at or meta.creation_timestamp or datetime.now(UTC)),
        captures=dict(run.spec.captures),
        state=state,
        refused=(
            None
            if refused is None
            else domain.RefusedAttempt(refused.attempt, refused.reason, refused.message)
        ),
        hold=(
            (domain.POOL_NOT_FOUND, status.message or "")
            if status.state in (None, "Queued") and status.reason == domain.POOL_NOT_FOUND
            else None
        ),
    )


def refused_attempt_status(refused: domain.RefusedAttempt) -> dict[str, Any]:
    """The JobRun status patch recording an attempt whose batch Job was not created."""
    return {
        "refusedAttempt": {
            "attempt": refused.attempt,
            "reason": refused.reason,
            "message": refused.message[:MAX_MESSAGE_LENGTH],
        }
    }


def job_run_of(job: Mapping[str, Any]) -> str | None:
    """The JobRun a batch Job claims to belong to: its controller owner's name.

    Only a claim: :func:`outcome_from` also checks the owner's uid. Labels are never
    asked, since anyone who may create Jobs may set them.
    """
    owner = controller_of(job, "JobRun")
    return owner[0] or None if owner else None


MAX_ATTEMPT = 999_999
"""Largest attempt number read from an annotation (batch Job names leave 6 digits)."""


def attempt_of(obj: Mapping[str, Any]) -> int | None:
    """The attempt number a batch Job or pod carries, if any (1 to :data:`MAX_ATTEMPT`)."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(ATTEMPT_ANNOTATION)
    # ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits.
    if not isinstance(value, str) or not (0 < len(value) <= 6) or not value.isascii():
        return None
    if not value.isdigit():
        return None
    attempt = int(value)
    return attempt if 1 <= attempt <= MAX_ATTEMPT else None


def _failed_at(job: Mapping[str, Any]) -> datetime | None:
    failed = true_conditions(job).get("Failed")
    if failed is None:
        return None
    try:
        return _parse_time(failed.get("lastTransitionTime"))
    except (ValueError, OverflowError):
        return None


def _has_termination(pods: Sequence[Mapping[str, Any]], job_name: str) -> bool:
    for pod in pods:
        if job_name_of(pod) != job_name:
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if (status.get("state") or {}).get("terminated"):
                return True
    return False


def outcome_from(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    now: datetime,
    run_uid: str,
) -> domain.JobOutcome | None:
    """The domain's view of one batch Job, or None if it is not one of ours.

    Ours means: controlled by the JobRun whose uid is ``run_uid``, and named for the
    attempt it carries (``<jobrun>-<attempt>``, the name the operator creates it
    under), so a Job somebody else made with a forged owner name, label or attempt
    annotation changes nothing. Only pods the Job controls are read.
    """
    owner = controller_of(job, "JobRun")
    attempt = attempt_of(job)
    if owner is None or attempt is None or attempt < 1 or not run_uid or owner[1] != run_uid:
        return None
    run = owner[0]
    if (job.get("metadata") or {}).get("name") != domain.batch_job_name(run, attempt):
        return None
    pods = pods_of_job(job, pods)
    outcome = read_outcome(job, pods)
    kind = domain.OutcomeKind
    match outcome:
        case AttemptActive():
            return domain.JobOutcome(run, attempt, kind.RUNNING)
        case AttemptSucceeded():
            return domain.JobOutcome(run, attempt, kind.SUCCEEDED)
        case AttemptMissedDependencies(missing=missing, exit_code=code):
            refs = tuple(domain.PartitionRef(r) for r in missing)
            return domain.JobOutcome(
                run, attempt, kind.DEPENDENCY_MISS, code, "", missing_partitions=refs
            )
        case AttemptFailed(reason=reason, message=message, exit_code=code):
            job_name = str((job.get("metadata") or {}).get("name", ""))
            failed_at = _failed_at(job)
            if (
                code is None
                and not _has_termination(pods, job_name)
                and failed_at is not None
                and now - failed_at < POD_GRACE
            ):
                return domain.JobOutcome(run, attempt, kind.RUNNING)
            return domain.JobOutcome(run, attempt, kind.FAILED, code, f"{reason}: {message}")
    return None  # pragma: no cover - the match is exhaustive


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def _labels(component: str, **extra: str) -> dict[str, str]:
    return {
        APP_COMPONENT: component,
        APP_PART_OF: PART_OF,
        APP_MANAGED_BY: MANAGED_BY,
        **{k: label_value(v) for k, v in extra.items()},
    }


def partition_manifest(action: domain.CreatePartition, namespace: str) -> dict[str, Any]:
    """The Partition to create for :class:`~databuild.domain.CreatePartition`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Partition",
        "metadata": {
            "name": action.name,
            "namespace": namespace,
            "labels": _labels("partition", **{REF_HASH_LABEL: domain.ref_hash(action.ref)}),
        },
        "spec": {"ref": str(action.ref)},
    }


def job_run_manifest(action: domain.CreateJobRun, namespace: str) -> dict[str, Any]:
    """The JobRun to create for :class:`~databuild.domain.CreateJobRun`."""
    return {
        "apiVersion": API_VERSION,
        "kind": "JobRun",
        "metadata": {
            "name": action.name,
            "namespace": namespace,
            "labels": _labels("job-run", **{JOB_DEFINITION_LABEL: action.job_definition}),
        },
        "spec": {
            "jobDefinition": action.job_definition,
            "partitions": [str(r) for r in action.partitions],
            "inputs": [str(r) for r in action.inputs],
            "captures": dict(action.captures),
            "createdAt": iso(action.created_at),
        },
    }


def want_manifest(
    action: domain.CreateWant, namespace: str, owner_uid: str | None
) -> dict[str, Any]:
    """The derived Want to create for :class:`~databuild.domain.CreateWant`.

    It names its JobRun in ``spec.source`` and is owned by it, so it goes away with it.
    """
    metadata: dict[str, Any] = {
        "name": action.name,
        "namespace": namespace,
        "labels": _labels("want", **{SOURCE_LABEL: action.source_job_run}),
    }
    if owner_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "JobRun",
                "name": action.source_job_run,
                "uid": owner_uid,
                "blockOwnerDeletion": False,
            }
        ]
    return {
        "apiVersion": API_VERSION,
        "kind": "Want",
        "metadata": metadata,
        "spec": {
            "partitions": [str(r) for r in action.partitions],
            "source": {"jobRun": action.source_job_run},
        },
    }


def _none_if_empty(value: Any) -> Any:
    # Merge patches delete keys set to null: empty values are removed, not stored.
    return None if value in ("", [], (), {}) else value


def _condition(
    type_: str, status: str, reason: str, message: str, since: str | None
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:4096],
        "lastTransitionTime": since,
    }


# kstatus (Flux's health library; docs/gitops.md) reads Reconciling=True as InProgress,
# Stalled=True as Failed, then Ready True/False as Current/InProgress, and an object
# with none of them as Current. A Missing Partition carries none: nothing is under way
# and nobody needs to act until a Want asks for it.
_PARTITION_CONDITIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "Missing": (),
    "Building": (("Ready", "False"),),
    "Live": (("Ready", "True"),),
    "Failed": (("Ready", "False"), ("Stalled", "True")),
    "Tainted": (("Ready", "False"), ("Stalled", "True")),
}

_PARTITION_MESSAGE = {
    "Building": "its JobRun is building it",
    "Live": "built; its data can be read",
    "Failed": "its build failed for good; a new Want retries it",
    "Tainted": "marked bad; a new Want rebuilds it",
}


def partition_status(state: domain.PartitionState, now: datetime) -> dict[str, Any]:
    """The status patch that persists a Partition state (the caller adds
    ``observedGeneration``, read from the object it patches)."""
    message = state.message or _PARTITION_MESSAGE.get(state.STATE, "")
    return {
        "state": state.STATE,
        "jobRun": state.built_by,
        "liveSince": iso(state.live_since),
        "inputs": _none_if_empty(list(state.inputs)),
        "failedAt": iso(state.failed_at),
        "message": _none_if_empty(state.message[:4096]),
        "conditions": [
            _condition(type_, status, state.STATE, message, iso(now))
            for type_, status in _PARTITION_CONDITIONS[state.STATE]
        ],
    }


_RUN_CONDITION = {
    "Succeeded": ("True", "Succeeded"),
    "Failed": ("False", "Failed"),
    "Cancelled": ("False", "Cancelled"),
}

# What kstatus should read from a JobRun: an unfinished run is Reconciling (InProgress),
# a Failed one Stalled (Failed), a Succeeded one Ready (Current). A Cancelled run is
# finished and nobody needs to act (no Want needs it any more): Ready and Stalled are
# both absent, so kstatus reads it as Current; its Succeeded=False condition says why.
_RUN_KSTATUS: dict[str, tuple[tuple[str, str], ...]] = {
    "Queued": (("Ready", "False"), ("Reconciling", "True")),
    "WaitingForUpstream": (("Ready", "False"), ("Reconciling", "True")),
    "Running": (("Ready", "False"), ("Reconciling", "True")),
    "Succeeded": (("Ready", "True"),),
    "Failed": (("Ready", "False"), ("Stalled", "True")),
    "Cancelled": (),
}


def job_run_status(
    state: domain.JobRunState,
    *,
    reason: str,
    exit_code: int | None,
    generation: int,
    now: datetime,
    previous_conditions: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The status patch that persists a JobRun state, with its conditions: Succeeded
    (like a batch Job's) and Ready/Reconciling/Stalled for kstatus."""
    previous = {c.get("type"): c for c in previous_conditions}
    message = state.message[:4096] or f"the JobRun is {state.STATE}"

    def condition(type_: str, status: str, cond_reason: str) -> dict[str, Any]:
        old = previous.get(type_)
        since = (
            old.get("lastTransitionTime")
            if old is not None and old.get("status") == status
            else iso(now)
        )
        return {
            **_condition(type_, status, cond_reason, message, since),
            "observedGeneration": generation,
        }

    status, cond_reason = _RUN_CONDITION.get(state.STATE, ("Unknown", state.STATE))
    conditions = [condition("Succeeded", status, reason if status == "False" else cond_reason)]
    for type_, kstatus in _RUN_KSTATUS[state.STATE]:
        conditions.append(
            condition(type_, kstatus, reason if state.STATE == "Failed" else state.STATE)
        )
    return {
        "state": state.STATE,
        "attempt": state.attempt,
        "failedAttempts": state.failed_attempts,
        "retryAfter": iso(state.retry_after),
        "jobName": _none_if_empty(state.batch_job),
        "startedAt": iso(state.started_at),
        "finishedAt": iso(state.finished_at),
        "missingPartitions": _none_if_empty(list(state.missing_partitions)),
        "everMissing": _none_if_empty(list(state.ever_missing)),
        "message": _none_if_empty(state.message[:4096]),
        "reason": reason,
        "exitCode": exit_code,
        "conditions": conditions,
        "observedGeneration": generation,
    }


_TERMINAL_WANT_STATES = frozenset({"Successful", "Failed", "Expired"})


def want_state_status(state: domain.WantState, now: datetime) -> dict[str, Any]:
    """The status patch that persists a Want's state."""
    return {
        "state": state.STATE,
        "reason": _none_if_empty(state.reason),
        "message": _none_if_empty(state.message[:4096]),
        "finishedAt": iso(now) if state.STATE in _TERMINAL_WANT_STATES else None,
    }


def want_derived_status(action: domain.UpdateWantStatus) -> dict[str, Any]:
    """The status patch for a Want's derived status: counts, progress, conditions."""
    counts = {k.lower(): v for k, v in action.counts.items()}
    total = sum(action.counts.values())
    return {
        "partitions": {
            "total": total,
            "missing": counts.get("missing", 0),
            "building": counts.get("building", 0),
            "live": counts.get("live", 0),
            "failed": counts.get("failed", 0),
            "tainted": counts.get("tainted", 0),
        },
        "progress": f"{counts.get('live', 0)}/{total}",
        "conditions": [
            {
                "type": c.type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message[:4096],
                "lastTransitionTime": iso(c.last_transition_time),
                "observedGeneration": action.observed_generation,
            }
            for c in action.conditions
        ],
        "observedGeneration": action.observed_generation,
        "slaBreached": action.sla_breached or None,
    }


def job_definition_status_from(body: Mapping[str, Any]) -> domain.JobDefinitionStatus:
    """What a JobDefinition's status says now (a status that does not parse says nothing:
    the planner writes it again)."""
    generation = int((body.get("metadata") or {}).get("generation") or 1)
    try:
        status = JobDefinitionStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return domain.JobDefinitionStatus(generation)
    return domain.JobDefinitionStatus(
        generation, status.observed_generation, _conditions_from(status.conditions)
    )


def job_definition_status(action: domain.UpdateJobDefinitionStatus) -> dict[str, Any]:
    """The status patch of a JobDefinition: the conditions the planner decided (Ready,
    and Stalled while it is invalid: kstatus reads it as Failed)."""
    return {
        "conditions": [
            {
                **_condition(c.type, c.status, c.reason, c.message, iso(c.last_transition_time)),
                "observedGeneration": action.observed_generation,
            }
            for c in action.conditions
        ],
        "observedGeneration": action.observed_generation,
    }


def bad_want_status(
    problem: str, generation: int, now: datetime, *, reason: str = "InvalidSpec"
) -> dict[str, Any]:
    """The status of a Want the operator cannot read or plan (it is left out of plans).

    ``Ready=False`` and ``Stalled=True`` (kstatus: it will not get there by itself) with
    ``reason``, so GitOps tools report it as failed instead of waiting.
    """
    message = f"the operator cannot use this Want: {problem}"[:4096]
    return {
        "conditions": [
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastTransitionTime": iso(now),
                "observedGeneration": generation,
            }
            for kind, status in (("Ready", "False"), ("Stalled", "True"))
        ],
        "observedGeneration": generation,
    }


__all__ = [
    "POD_GRACE",
    "BadObject",
    "attempt_of",
    "bad_want_status",
    "concurrency_pool_from",
    "concurrency_pool_ready",
    "concurrency_pool_status",
    "iso",
    "job_definition_from",
    "job_definition_status",
    "job_definition_status_from",
    "job_run_from",
    "job_run_manifest",
    "job_run_of",
    "job_run_status",
    "outcome_from",
    "partition_from",
    "partition_manifest",
    "partition_status",
    "time_or_none",
    "want_derived_status",
    "want_from",
    "want_manifest",
    "want_state_status",
]
