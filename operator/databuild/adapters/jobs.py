"""Batch Jobs: rendering one attempt of a JobRun, and reading how an attempt ended.

Rendering is pure: the JobDefinition's pod template, the run's partitions and inputs,
and the captures matched from the output pattern go in; a ``batch/v1`` Job manifest
comes out. Reading is pure too: a Job and its pods go in; an :data:`AttemptOutcome`
comes out. Neither talks to the API server.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from databuild.adapters.labels import (
    APP_COMPONENT,
    APP_INSTANCE,
    APP_MANAGED_BY,
    APP_NAME,
    APP_PART_OF,
    ATTEMPT_ANNOTATION,
    JOB_DEFINITION_LABEL,
    JOB_RUN_LABEL,
    MANAGED_BY,
    OUTCOME_FINALIZER,
    PART_OF,
    label_value,
)
from databuild.adapters.resources import API_VERSION, JobDefinitionSpec
from databuild.domain.refs import PartitionRef, batch_job_name, substitute_captures

ENV_PARTITIONS = "DATABUILD_PARTITIONS"
ENV_INPUTS = "DATABUILD_INPUTS"
ENV_JOB_RUN = "DATABUILD_JOB_RUN"
ENV_CAPTURE_PREFIX = "DATABUILD_CAPTURE_"

DEFAULT_TTL_SECONDS_AFTER_FINISHED = 86400

MAX_TERMINATION_MESSAGE = 16384
"""Longest termination message read, in characters (kubelet keeps at most 4096 bytes)."""
MAX_MESSAGE_DEPTH = 4
"""Deepest JSON nesting a dependency-miss message may have (it needs 2)."""
MAX_MISSING_PER_REPORT = 100
"""Most partitions one dependency miss may report."""
#: A batch Job with one of these labels (from ``spec.jobMetadata``) belongs to a queueing
#: system: it is created suspended, as Kueue expects, and runs once the queue admits it.
QUEUE_LABELS = ("kueue.x-k8s.io/queue-name",)


def capture_env_name(capture: str) -> str:
    """The environment variable holding ``capture``: ``DATABUILD_CAPTURE_<NAME>``."""
    return ENV_CAPTURE_PREFIX + capture.upper()


def substitute(text: str, captures: Mapping[str, str]) -> str:
    """Replace ``{name}`` placeholders whose name is a capture; leave everything else."""
    return substitute_captures(text, captures)


@dataclass(frozen=True)
class JobRunIdentity:
    """What a batch Job needs to know about the JobRun that owns it."""

    name: str
    namespace: str
    uid: str
    job_definition: str


def job_labels(run: JobRunIdentity) -> dict[str, str]:
    """Labels on a JobRun's batch Jobs and their pods."""
    return {
        JOB_RUN_LABEL: label_value(run.name),
        JOB_DEFINITION_LABEL: label_value(run.job_definition),
        APP_NAME: label_value(run.job_definition),
        APP_INSTANCE: label_value(run.name),
        APP_COMPONENT: "job-run",
        APP_PART_OF: PART_OF,
        APP_MANAGED_BY: MANAGED_BY,
    }


def _render_container(
    container: Mapping[str, Any],
    captures: Mapping[str, str],
    injected_env: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    out = copy.deepcopy(dict(container))
    for key in ("command", "args"):
        if isinstance(out.get(key), list):
            out[key] = [substitute(str(item), captures) for item in out[key]]
    injected_names = {e["name"] for e in injected_env}
    env: list[Any] = []
    for var in out.get("env") or []:
        if not isinstance(var, Mapping) or var.get("name") in injected_names:
            # Our variables win: a template cannot pretend to build other partitions.
            continue
        rendered = dict(var)
        if isinstance(rendered.get("value"), str):
            rendered["value"] = substitute(rendered["value"], captures)
        env.append(rendered)
    env.extend(dict(e) for e in injected_env)
    out["env"] = env
    # The dependency-miss JSON is read from /dev/termination-log; when a crashing job
    # wrote nothing there, the tail of its log is the most useful message to show.
    out.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return out


def render_job(
    *,
    run: JobRunIdentity,
    definition: JobDefinitionSpec,
    partitions: Sequence[str],
    inputs: Sequence[str],
    captures: Mapping[str, str],
    attempt: int,
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS_AFTER_FINISHED,
    name: str | None = None,
) -> dict[str, Any]:
    """The ``batch/v1`` Job for one attempt of a JobRun.

    The pod template comes from the JobDefinition with ``{capture}`` placeholders
    substituted in ``command``, ``args`` and ``env[].value``; every container gets
    ``DATABUILD_PARTITIONS``, ``DATABUILD_INPUTS`` (JSON lists), ``DATABUILD_JOB_RUN``
    and one ``DATABUILD_CAPTURE_<NAME>`` per capture (so a script reads a capture from
    its environment instead of having it pasted into a shell command line).
    The Job is controlled by the JobRun, never retried by Kubernetes (the operator owns
    the retry budget), and kept ``ttl_seconds_after_finished`` so its logs stay readable.
    ``name`` is the planner's name for the Job (default :func:`batch_job_name`).
    """
    name = name or batch_job_name(run.name, attempt)
    labels = job_labels(run)
    annotations = {ATTEMPT_ANNOTATION: str(attempt)}

    template = copy.deepcopy(dict(definition.template))
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    metadata["annotations"] = {**(metadata.get("annotations") or {}), **annotations}
    template["metadata"] = metadata

    injected_env = [
        {"name": ENV_PARTITIONS, "value": json.dumps(list(partitions))},
        {"name": ENV_INPUTS, "value": json.dumps(list(inputs))},
        {"name": ENV_JOB_RUN, "value": run.name},
        *({"name": capture_env_name(k), "value": v} for k, v in sorted(captures.items())),
    ]
    pod_spec = dict(template.get("spec") or {})
    for key in ("containers", "initContainers"):
        if isinstance(pod_spec.get(key), list):
            pod_spec[key] = [
                _render_container(c, captures, injected_env)
                for c in pod_spec[key]
                if isinstance(c, Mapping)
            ]
    # A failed attempt is the operator's to retry (with backoff, counted in the JobRun).
    pod_spec["restartPolicy"] = "Never"
    template["spec"] = pod_spec

    # spec.jobMetadata is for the Job (a queueing system reads it there); ours win.
    extra = definition.job_metadata
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "completions": 1,
        "parallelism": 1,
        "ttlSecondsAfterFinished": ttl_seconds_after_finished,
        "template": template,
    }
    if definition.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = definition.active_deadline_seconds
    if extra is not None and any(label in extra.labels for label in QUEUE_LABELS):
        job_spec["suspend"] = True

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": run.namespace,
            "labels": {**(extra.labels if extra else {}), **labels},
            "annotations": {**(extra.annotations if extra else {}), **annotations},
            # Held until the outcome is in the JobRun's status, so a finished build is
            # never run again because its Job was deleted while no operator ran.
            "finalizers": [OUTCOME_FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "JobRun",
                    "name": run.name,
                    "uid": run.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }


# ---------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptActive:
    """The batch Job has not finished yet."""


@dataclass(frozen=True)
class AttemptSucceeded:
    """The batch Job completed: every output partition was written."""


@dataclass(frozen=True)
class AttemptFailed:
    """The attempt failed; ``reason`` is CamelCase, ``message`` says what happened."""

    reason: str
    message: str
    exit_code: int | None = None


@dataclass(frozen=True)
class AttemptMissedDependencies:
    """The job reported, through its termination message, partitions it needs."""

    missing: tuple[str, ...]
    exit_code: int | None = None


AttemptOutcome = AttemptActive | AttemptSucceeded | AttemptFailed | AttemptMissedDependencies
"""How one attempt (one batch Job) of a JobRun stands."""

MALFORMED_MESSAGE = "MalformedTerminationMessage"
_MISS_EXAMPLE = '{"missingPartitions": ["raw/date=2025-01-01"]}'


@dataclass(frozen=True)
class MalformedMessage:
    """A termination message that tried to report a dependency miss but was malformed."""

    problem: str


def _nesting(text: str) -> int:
    """The deepest nesting of JSON arrays and objects in ``text`` (strings skipped).

    Measured before ``json.loads``, whose recursive descent raises RecursionError on a
    deep enough ``[[[[...``, which no caller expects.
    """
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_termination_message(message: str) -> tuple[str, ...] | MalformedMessage | None:
    """The partitions a dependency-miss message reports.

    Returns the refs for a well-formed ``{"missingPartitions": [...]}``, ``None`` for a
    message that is not a dependency miss (plain text, or JSON without that key), and
    :class:`MalformedMessage` for one that looks like a dependency miss but is not valid.
    Never raises: the message is written by the job, so anything may be in it; it is
    bounded in size (:data:`MAX_TERMINATION_MESSAGE`), nesting
    (:data:`MAX_MESSAGE_DEPTH`) and refs (:data:`MAX_MISSING_PER_REPORT`).
    """
    if not isinstance(message, str):
        return None
    text = message.strip()
    if not text.startswith("{"):
        return None
    claims_miss = "missingPartitions" in text
    if len(text) > MAX_TERMINATION_MESSAGE:
        if not claims_miss:
            return None
        return MalformedMessage(
            f"it is {len(text)} characters long, over {MAX_TERMINATION_MESSAGE}; "
            f"expected {_MISS_EXAMPLE}"
        )
    depth = _nesting(text)
    if depth > MAX_MESSAGE_DEPTH:
        if not claims_miss:
            return None
        return MalformedMessage(
            f"its JSON nests {depth} levels deep (at most {MAX_MESSAGE_DEPTH}); "
            f"expected {_MISS_EXAMPLE}"
        )
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:
        if not claims_miss:
            return None  # some other braces-first text, e.g. a structured log line
        return MalformedMessage(f"it is not valid JSON ({error}); expected {_MISS_EXAMPLE}")
    if not isinstance(data, dict) or "missingPartitions" not in data:
        return None
    refs = data["missingPartitions"]
    if not isinstance(refs, list) or not refs:
        return MalformedMessage(
            "missingPartitions must be a non-empty list of partition refs, got "
            f"{_truncate(repr(refs), 200)}"
        )
    if len(refs) > MAX_MISSING_PER_REPORT:
        return MalformedMessage(
            f"missingPartitions lists {len(refs)} refs, more than {MAX_MISSING_PER_REPORT} "
            "per attempt; report fewer (the job runs again once they are built)"
        )
    bad = [ref for ref in refs if not isinstance(ref, str) or not PartitionRef.is_valid(ref)]
    if bad:
        return MalformedMessage(
            "missingPartitions holds values that are not partition refs: "
            f"{_truncate(repr(bad[:5]), 300)}"
        )
    return tuple(dict.fromkeys(refs))  # de-duplicated, order kept


def waiting_for_admission(job: Mapping[str, Any]) -> bool:
    """Whether a queueing system keeps the batch Job suspended (its Suspended condition)."""
    return "Suspended" in true_conditions(job)


def true_conditions(job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """A batch Job's conditions that hold (status "True"), by type."""
    status = job.get("status") or {}
    return {
        str(c.get("type")): c
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("status") == "True"
    }


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The termination state of the pod's first failed container, if any."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    fallback: Mapping[str, Any] | None = None
    for status in statuses:
        state = (status.get("state") or {}).get("terminated") or (
            status.get("lastState") or {}
        ).get("terminated")
        if not state:
            continue
        if state.get("exitCode", 0) != 0:
            return state  # type: ignore[no-any-return]
        fallback = fallback or state
    return fallback


#: The labels naming a pod's batch Job: the current one, then the legacy one.
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def job_name_of(pod: Mapping[str, Any]) -> str | None:
    """The name of the batch Job a pod belongs to, from its labels."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    name = next((labels[k] for k in JOB_NAME_LABELS if labels.get(k)), None)
    return str(name) if name else None


def _truncate(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> AttemptOutcome:
    """How the attempt behind ``job`` stands, given the pods of its JobRun.

    Success and failure come from the Job's ``Complete``/``Failed`` conditions; for a
    failure, the failed pod's container termination state supplies the exit code and
    the message, which may report a dependency miss. Never raises on odd input: a
    malformed message is an ordinary failure whose reason says so, and a status of the
    wrong shape is a failure ``UnreadableOutcome``.
    """
    try:
        return _read_outcome(job, pods)
    except (AttributeError, TypeError, ValueError, KeyError, RecursionError) as error:
        return AttemptFailed(
            reason="UnreadableOutcome",
            message=_truncate(f"the batch Job's or pod's status cannot be read: {error!r}"),
        )


def _read_outcome(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> AttemptOutcome:
    conditions = true_conditions(job)
    if "Complete" in conditions:
        return AttemptSucceeded()
    failed = conditions.get("Failed")
    if failed is None:
        return AttemptActive()

    job_name = (job.get("metadata") or {}).get("name")
    own_pods = [p for p in pods if job_name_of(p) in (None, job_name)]
    terminated = None
    for pod in own_pods:
        terminated = _terminated(pod)
        if terminated is not None and terminated.get("exitCode", 0) != 0:
            break

    job_reason = str(failed.get("reason") or "JobFailed")
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]{0,63}", job_reason):
        job_reason = "JobFailed"
    job_message = str(failed.get("message") or "")
    if terminated is None:
        # The pod is gone (or never started): all we know is what the Job says.
        return AttemptFailed(reason=job_reason, message=_truncate(job_message or job_reason))

    raw_exit = terminated.get("exitCode")
    # An exit code is a 32-bit int; anything else is not one.
    exit_code = raw_exit if isinstance(raw_exit, int) and -(2**31) <= raw_exit < 2**31 else None
    message = str(terminated.get("message") or "")
    if job_reason == "DeadlineExceeded":
        return AttemptFailed(
            reason=job_reason,
            message=_truncate(job_message or "the attempt ran past activeDeadlineSeconds"),
            exit_code=exit_code,
        )

    parsed = parse_termination_message(message)
    if isinstance(parsed, tuple):
        return AttemptMissedDependencies(missing=parsed, exit_code=exit_code)
    if isinstance(parsed, MalformedMessage):
        return AttemptFailed(
            reason=MALFORMED_MESSAGE,
            message=_truncate(
                f"exit code {exit_code}; the termination message is malformed: {parsed.problem}"
            ),
            exit_code=exit_code,
        )
    container_reason = str(terminated.get("reason") or "")
    reason = container_reason if re.fullmatch(r"[A-Z][A-Za-z0-9]{0,63}", container_reason) else ""
    if not reason or reason == "Error":
        reason = "ExitCode" if exit_code else job_reason
    detail = message.strip() or job_message or "no termination message"
    return AttemptFailed(
        reason=reason,
        message=_truncate(f"exit code {exit_code}: {detail}"),
        exit_code=exit_code,
    )
