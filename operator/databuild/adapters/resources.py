"""The custom resources: one pydantic model per kind is the source of truth.

These models parse what the API server sends (watch events, create responses) and are
also the source of the CRD schemas in ``crds/`` (see :mod:`databuild.adapters.crds`), so
validation in Python and validation at the API server cannot drift apart.

Field names are snake_case in Python and camelCase on the wire (``by_alias``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from databuild.domain.limits import (
    EARLIEST_DATA_TIMESTAMP,
    LATEST_DATA_TIMESTAMP,
    MAX_EVER_MISSING,
    MAX_PRIORITY,
    MAX_SECONDS,
    MIN_PRIORITY,
)
from databuild.domain.refs import (
    MAX_PATTERN_LENGTH,
    MAX_REF_LENGTH,
    PARTITION_REF_PATTERN,
    REF_CHARACTER_CLASS,
    REF_PUNCTUATION,
)

GROUP = "databuild.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "databuild"

# A partition ref: one or more "/"-separated segments of letters, digits and ._-=:,+@~,
# e.g. "daily_summary/date=2025-01-01". The domain owns the rule; the regex is
# RE2-compatible, so the API server evaluates the very same one.
REF_PATTERN = PARTITION_REF_PATTERN
REF_MAX_LENGTH = MAX_REF_LENGTH

# A partition pattern: like a ref, but any segment may contain captures "{name}" or
# "{name:REGEX}". A capture's REGEX may hold quantifier braces ("\d{4}") but no other
# braces; the domain's parser does the full validation, this catches typos at apply time.
_LITERAL = REF_CHARACTER_CLASS  # the literal text of a pattern is ref text
_CAPTURE = r"\{[A-Za-z_][A-Za-z0-9_]*(:([^{}]|\{[0-9]+(,[0-9]*)?\})+)?\}"
_SEGMENT = rf"({_LITERAL}|{_CAPTURE})+"
PATTERN_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"
PATTERN_MAX_LENGTH = MAX_PATTERN_LENGTH

# Bounds keep objects (and CEL evaluation cost) small; a backfill bigger than this is
# several Wants.
MAX_WANT_PARTITIONS = 1000
MAX_JOB_PARTITIONS = 1000
MAX_INPUTS = 1000
MAX_LINEAGE = MAX_INPUTS + MAX_EVER_MISSING  # a Partition's inputs: declared plus reported
MAX_CONDITIONS = 16
MAX_ATTEMPTS = 999_999  # batch Job names leave room for six digits
MAX_CONCURRENT_RUNS = 100_000
MAX_DEADLINE_SECONDS = 366 * 86400
MAX_MESSAGE_LENGTH = 4096
K8S_NAME_MAX_LENGTH = 253

# The CRD generator turns "x-databuild-pattern-message" into a CEL rule with that message
# instead of a bare regex, so kubectl tells users what a valid value looks like.
PATTERN_MESSAGE_KEY = "x-databuild-pattern-message"
_ALPHABET_TEXT = "letters, digits and " + " ".join(REF_PUNCTUATION)
REF_MESSAGE = (
    f"must be a partition ref: '/'-separated, non-empty segments of {_ALPHABET_TEXT} "
    "(no spaces, quotes or shell syntax), e.g. daily_summary/date=2025-01-01"
)
PATTERN_MESSAGE = (
    f"must be a partition pattern: '/'-separated, non-empty segments of {_ALPHABET_TEXT}, "
    "where {name} captures a segment and {name:REGEX} (RE2 syntax) constrains it, "
    "e.g. daily_summary/date={date}"
)

PartitionRefStr = Annotated[
    str,
    StringConstraints(pattern=REF_PATTERN, min_length=1, max_length=REF_MAX_LENGTH),
    Field(json_schema_extra={PATTERN_MESSAGE_KEY: REF_MESSAGE}),
]
PatternStr = Annotated[
    str,
    StringConstraints(pattern=PATTERN_PATTERN, min_length=1, max_length=PATTERN_MAX_LENGTH),
    Field(json_schema_extra={PATTERN_MESSAGE_KEY: PATTERN_MESSAGE}),
]
ObjectName = Annotated[str, StringConstraints(min_length=1, max_length=K8S_NAME_MAX_LENGTH)]
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ResourceName = Annotated[
    str,
    StringConstraints(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=K8S_NAME_MAX_LENGTH),
    Field(
        json_schema_extra={
            PATTERN_MESSAGE_KEY: "must be the name of an object: lower-case letters, digits, "
            "'-' and '.', starting and ending with a letter or digit, e.g. shared-warehouse"
        }
    ),
]

WantState = Literal["Pending", "Building", "UpstreamBuilding", "Successful", "Failed", "Expired"]
PartitionState = Literal["Missing", "Building", "Live", "Failed", "Tainted"]
JobRunState = Literal["Queued", "WaitingForUpstream", "Running", "Succeeded", "Failed", "Cancelled"]
ConditionStatus = Literal["True", "False", "Unknown"]


def _x(**extensions: Any) -> dict[str, Any]:
    """JSON-schema extensions (``x-kubernetes-*``) for ``json_schema_extra``."""
    return {k.replace("_", "-"): v for k, v in extensions.items()}


def _cel(rule: str, message: str, **extra: str) -> dict[str, str]:
    return {"rule": rule, "message": message, **extra}


class Model(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )

    def wire(self) -> dict[str, Any]:
        """This model as JSON-compatible data the API server accepts (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---------------------------------------------------------------------------------------
# Shared shapes
# ---------------------------------------------------------------------------------------


class Condition(Model):
    """One aspect of an object's state, in the shape of metav1.Condition."""

    type: str = Field(
        description="Type of the condition in CamelCase, e.g. Ready.",
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="Machine-readable CamelCase reason for the last transition.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(
        default="",
        description="Human-readable details about the last transition.",
        max_length=MAX_MESSAGE_LENGTH,
    )
    last_transition_time: datetime = Field(
        description="When the condition last changed from one status to another."
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was set for.",
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=MAX_CONDITIONS,
        json_schema_extra=_x(x_kubernetes_list_type="map", x_kubernetes_list_map_keys=["type"]),
    ),
]


class OwnerReference(Model):
    """A reference to an owning object (the subset of ``metav1.OwnerReference`` we read)."""

    api_version: str = Field(description="API version of the owner.")
    kind: str = Field(description="Kind of the owner.")
    name: str = Field(description="Name of the owner.")
    uid: str = Field(description="UID of the owner.")
    controller: bool | None = Field(default=None, description="Whether the owner manages us.")
    block_owner_deletion: bool | None = Field(
        default=None, description="Whether deleting the owner waits for us."
    )


class ObjectMeta(Model):
    """The parts of ``metav1.ObjectMeta`` the operator reads. Not part of the CRD schema."""

    name: str = Field(default="", description="Name, unique within the namespace.")
    namespace: str = Field(default="", description="Namespace of the object.")
    uid: str = Field(default="", description="Server-assigned unique id.")
    resource_version: str = Field(default="", description="Version for optimistic locking.")
    generation: int = Field(default=0, description="Sequence number of spec changes.")
    creation_timestamp: datetime | None = Field(default=None, description="Creation time.")
    deletion_timestamp: datetime | None = Field(
        default=None, description="Set when deletion was requested."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    owner_references: list[OwnerReference] = Field(
        default_factory=list, description="Owners of this object."
    )


class Resource(Model):
    """Common envelope of the four kinds; subclasses set ``kind``, ``spec`` and ``status``."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAME: ClassVar[str]
    #: Whether an object the operator has not written a status for yet reads (through
    #: a CRD default) as `status.observedGeneration: 0`, so kstatus (Flux) and Argo CD
    #: see it as in progress: with no status at all kstatus reports it Current.
    UNOBSERVED_IN_PROGRESS: ClassVar[bool] = True

    api_version: str = Field(default=API_VERSION, description="databuild.dev/v1alpha1.")
    kind: str = Field(default="", description="The kind.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta, description="Standard metadata.")


# ---------------------------------------------------------------------------------------
# JobDefinition
# ---------------------------------------------------------------------------------------


class RetryPolicy(Model):
    """How often a failed attempt is retried, and how long to wait in between."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel("self.limit >= 0", "retry.limit must be 0 or more (0: never retry)."),
                _cel(
                    "self.backoffSeconds >= 0",
                    "retry.backoffSeconds must be 0 or more.",
                ),
            ]
        )
    )

    limit: int = Field(
        default=0,
        le=100,
        description="Retries after a failed attempt; 0 means a failure is final.",
    )
    backoff_seconds: int = Field(
        default=10,
        le=86400,
        description="Seconds to wait before retrying a failed attempt.",
    )


class JobMetadata(Model):
    """Labels and annotations for the batch Job itself (not its pods)."""

    labels: dict[str, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Labels on each batch Job, e.g. kueue.x-k8s.io/queue-name. The "
        "operator's own labels win over these.",
    )
    annotations: dict[str, Annotated[str, StringConstraints(max_length=4096)]] = Field(
        default_factory=dict,
        max_length=64,
        description="Annotations on each batch Job. The operator's own annotations win.",
    )


class ProbeSpec(Model):
    """Makes a JobDefinition a probe: its Job only checks whether outside data exists."""

    interval_seconds: int = Field(
        ge=1,
        le=86400,
        description="After exit 75 (not yet), look again this many seconds later; no retry "
        "is spent.",
    )


class JobDefinitionSpec(Model):
    """How partitions are built: what a job outputs, what it reads, and the pod it runs."""

    outputs: list[PatternStr] = Field(
        min_length=1,
        max_length=64,
        description=(
            "Partition patterns this job builds, e.g. daily_summary/date={date}. "
            "{name} captures one path segment; {name:REGEX} constrains it."
        ),
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    inputs: list[PatternStr] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Static upstream dependencies as templates over the outputs' captures, "
            "e.g. reviews/date={date}."
        ),
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    template: dict[str, Any] = Field(
        description=(
            "A pod template (the template of a batch/v1 JobSpec). {capture} placeholders in "
            "command, args and env[].value are substituted per run."
        ),
        json_schema_extra=_x(
            x_kubernetes_preserve_unknown_fields=True,
        ),
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retries of failed attempts."
    )
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONCURRENT_RUNS,
        description="At most this many runs of this job at once; unlimited when unset.",
    )
    concurrency_pool: ResourceName | None = Field(
        default=None,
        description=(
            "The ConcurrencyPool (same namespace) whose limit its runs share with the other "
            "JobDefinitions naming it; while it does not exist, its runs wait."
        ),
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DEADLINE_SECONDS,
        description="Seconds an attempt may run before Kubernetes kills it.",
    )
    probe: ProbeSpec | None = Field(
        default=None,
        description="A probe builds nothing: exit 0 makes its partitions Live, exit 75 "
        "means not yet (re-run after intervalSeconds while a Want needs it), any other "
        "exit is a failure.",
    )
    job_metadata: JobMetadata | None = Field(
        default=None,
        description="Labels and annotations put on the batch Job itself (e.g. a queueing "
        "system's queue name); template.metadata goes on its pods.",
    )


class JobDefinitionStatus(Model):
    """What the operator observed about a JobDefinition."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation last seen by the operator."
    )
    conditions: Conditions = Field(
        default_factory=list, description="Latest observations, e.g. whether it is valid."
    )


class JobDefinition(Resource):
    """How partitions are built. Written by users."""

    KIND: ClassVar[str] = "JobDefinition"
    PLURAL: ClassVar[str] = "jobdefinitions"
    SHORT_NAME: ClassVar[str] = "dbjobdef"

    kind: str = Field(default="JobDefinition", description="JobDefinition.")
    spec: JobDefinitionSpec = Field(description="The job.")
    status: JobDefinitionStatus = Field(
        default_factory=JobDefinitionStatus, description="Observed state."
    )


# ---------------------------------------------------------------------------------------
# Want
# ---------------------------------------------------------------------------------------


class WantSource(Model):
    """Who asked for a Want the operator created."""

    job_run: ObjectName = Field(
        description="The JobRun whose dependency miss needed these partitions."
    )


def _data_timestamp_in_range(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST_DATA_TIMESTAMP <= aware < LATEST_DATA_TIMESTAMP:
        raise ValueError(_DATA_TIMESTAMP_MESSAGE)
    return value


def _cel_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


_DATA_TIMESTAMP_MESSAGE = (
    f"spec.dataTimestamp must be from {_cel_time(EARLIEST_DATA_TIMESTAMP)} and before "
    f"{_cel_time(LATEST_DATA_TIMESTAMP)}"
)


class WantSpec(Model):
    """A request for partitions."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel(
                    "!has(self.dataTimestamp) || "
                    f"(self.dataTimestamp >= timestamp('{_cel_time(EARLIEST_DATA_TIMESTAMP)}') && "
                    f"self.dataTimestamp < timestamp('{_cel_time(LATEST_DATA_TIMESTAMP)}'))",
                    _DATA_TIMESTAMP_MESSAGE + ".",
                    fieldPath=".dataTimestamp",
                ),
                _cel(
                    "self.partitions == oldSelf.partitions",
                    "spec.partitions is immutable: create a new Want for other partitions "
                    "(and delete this one if it is no longer needed).",
                    reason="FieldValueForbidden",
                    fieldPath=".partitions",
                ),
                _cel(
                    "has(self.source) == has(oldSelf.source) && "
                    "(!has(self.source) || self.source == oldSelf.source)",
                    "spec.source is immutable.",
                ),
            ]
        )
    )

    partitions: list[PartitionRefStr] = Field(
        min_length=1,
        max_length=MAX_WANT_PARTITIONS,
        description=(
            "Partition refs wanted, e.g. daily_summary/date=2025-01-01 (at least one, "
            "no duplicates). Immutable."
        ),
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    ttl_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The Want expires this many seconds after dataTimestamp (at most ten years).",
    )
    sla_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The Want is flagged as late when not Successful this many seconds "
        "after dataTimestamp (at most ten years).",
    )
    data_timestamp: Annotated[datetime | None, AfterValidator(_data_timestamp_in_range)] = Field(
        default=None,
        description="The time TTL and SLA count from (default: the Want's creation time); "
        "from 1970 and before 2200.",
    )
    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=(
            f"From {MIN_PRIORITY} to {MAX_PRIORITY}, default 0. When a concurrency limit "
            "holds runs back, the runs building this Want's partitions (and their "
            "upstream) start before those of lower priority; equal priorities start "
            "oldest first. A run needed by several Wants takes the highest."
        ),
    )
    source: WantSource | None = Field(
        default=None,
        description="Set on Wants the operator created for a JobRun's discovered needs.",
    )


class PartitionCounts(Model):
    """How many of a Want's partitions are in each state."""

    total: int = Field(default=0, ge=0, description="Partitions wanted.")
    missing: int = Field(default=0, ge=0, description="Partitions Missing.")
    building: int = Field(default=0, ge=0, description="Partitions Building.")
    live: int = Field(default=0, ge=0, description="Partitions Live.")
    failed: int = Field(default=0, ge=0, description="Partitions Failed.")
    tainted: int = Field(default=0, ge=0, description="Partitions Tainted.")


class WantStatus(Model):
    """The Want's state, derived by the operator from its partitions."""

    state: WantState | None = Field(
        default=None,
        description="Pending, Building, UpstreamBuilding, Successful, Failed or Expired.",
    )
    reason: str | None = Field(
        default=None,
        max_length=256,
        description="CamelCase reason of the last state change, e.g. PartitionFailed.",
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE_LENGTH,
        description="Details of the last state change.",
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Ready summarises the Want; its reason says why it waits or failed.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation the status was computed for."
    )
    partitions: PartitionCounts | None = Field(
        default=None, description="How many wanted partitions are in each state."
    )
    progress: str | None = Field(
        default=None,
        max_length=32,
        description="Live partitions out of all wanted, e.g. 3/7.",
    )
    sla_breached: bool | None = Field(
        default=None, description="True once the Want missed its SLA."
    )
    finished_at: datetime | None = Field(
        default=None, description="When the Want reached a terminal state."
    )


class Want(Resource):
    """A request for partitions. Written by users, GitOps, or the operator."""

    KIND: ClassVar[str] = "Want"
    PLURAL: ClassVar[str] = "wants"
    SHORT_NAME: ClassVar[str] = "dbwant"

    kind: str = Field(default="Want", description="Want.")
    spec: WantSpec = Field(description="What is wanted.")
    status: WantStatus = Field(default_factory=WantStatus, description="Observed state.")


# ---------------------------------------------------------------------------------------
# Partition
# ---------------------------------------------------------------------------------------


class PartitionSpec(Model):
    """Which partition this catalog entry is about."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel(
                    "self.ref == oldSelf.ref",
                    "spec.ref is immutable: a Partition's name is derived from its ref.",
                    reason="FieldValueForbidden",
                    fieldPath=".ref",
                )
            ]
        )
    )

    ref: PartitionRefStr = Field(
        description="The partition ref, e.g. daily_summary/date=2025-01-01. Immutable."
    )


class PartitionStatus(Model):
    """State and lineage of one partition."""

    state: PartitionState | None = Field(
        default=None, description="Missing, Building, Live, Failed or Tainted."
    )
    job_run: str | None = Field(
        default=None,
        max_length=K8S_NAME_MAX_LENGTH,
        description="The JobRun that built, or is building, this partition.",
    )
    live_since: datetime | None = Field(default=None, description="When it became Live.")
    failed_at: datetime | None = Field(default=None, description="When its build failed.")
    inputs: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_LINEAGE,
        description="The input refs it was built from (lineage): declared and reported.",
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE_LENGTH,
        description="Why the partition is in its state, when that is not obvious.",
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Ready (True when Live); Stalled when Failed or Tainted (kstatus).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation last seen by the operator."
    )


class Partition(Resource):
    """The catalog entry of one partition. Written by the operator; outlives Wants."""

    KIND: ClassVar[str] = "Partition"
    PLURAL: ClassVar[str] = "partitions"
    SHORT_NAME: ClassVar[str] = "dbpart"
    # A Partition without a status is Missing: nothing under way (kstatus: Current).
    UNOBSERVED_IN_PROGRESS: ClassVar[bool] = False

    kind: str = Field(default="Partition", description="Partition.")
    spec: PartitionSpec = Field(description="The partition.")
    status: PartitionStatus = Field(default_factory=PartitionStatus, description="Observed state.")


# ---------------------------------------------------------------------------------------
# JobRun
# ---------------------------------------------------------------------------------------


class JobRunSpec(Model):
    """One logical build of one or more partitions."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel(
                    "self == oldSelf",
                    "a JobRun's spec is immutable: the operator creates a new JobRun instead.",
                )
            ]
        )
    )

    job_definition: ObjectName = Field(description="The JobDefinition that builds the outputs.")
    partitions: list[PartitionRefStr] = Field(
        min_length=1,
        max_length=MAX_JOB_PARTITIONS,
        description="The output partitions this run builds.",
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    inputs: list[PartitionRefStr] = Field(
        default_factory=list,
        max_length=MAX_INPUTS,
        description="The resolved input refs the run reads.",
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    captures: dict[str, Annotated[str, StringConstraints(max_length=REF_MAX_LENGTH)]] = Field(
        default_factory=dict,
        max_length=64,
        description="The values the output pattern captured, substituted into the pod template.",
    )
    created_at: datetime | None = Field(
        default=None,
        description="When the operator decided this run (full precision; orders runs).",
    )


class RefusedAttempt(Model):
    """An attempt whose batch Job could not be created, recorded so it is never tried again."""

    attempt: int = Field(
        ge=1, le=MAX_ATTEMPTS, description="The attempt whose batch Job was not created."
    )
    reason: str = Field(
        max_length=256,
        description="InvalidPodTemplate (the API server refused the Job) or ForeignJob "
        "(somebody else's Job holds the attempt's name).",
    )
    message: str = Field(
        default="", max_length=MAX_MESSAGE_LENGTH, description="What was wrong, for people."
    )


class JobRunStatus(Model):
    """Progress of a JobRun across its attempts."""

    state: JobRunState | None = Field(
        default=None,
        description="Queued, WaitingForUpstream, Running, Succeeded, Failed or Cancelled.",
    )
    attempt: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ATTEMPTS,
        description="Batch Jobs created so far (re-runs after a dependency miss included).",
    )
    failed_attempts: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ATTEMPTS,
        description="Failed attempts, which spend the retry budget.",
    )
    job_name: str | None = Field(
        default=None,
        max_length=63,
        description="The batch Job of the current or last attempt.",
    )
    started_at: datetime | None = Field(default=None, description="When the first attempt started.")
    finished_at: datetime | None = Field(default=None, description="When the run finished.")
    missing_partitions: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_EVER_MISSING,
        description="Partitions the last dependency miss reported.",
    )
    ever_missing: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_EVER_MISSING,
        description="Every partition any attempt reported missing; reporting one again fails.",
    )
    retry_after: datetime | None = Field(
        default=None, description="The next attempt starts no earlier than this."
    )
    reason: str | None = Field(
        default=None,
        max_length=256,
        description="CamelCase reason of the last transition, e.g. ExitCode.",
    )
    exit_code: int | None = Field(
        default=None, description="Exit code of the last failed attempt's container."
    )
    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE_LENGTH,
        description="Details of the last transition, e.g. a failed container's message.",
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Succeeded summarises the run; Ready, Reconciling and Stalled are "
        "for kstatus (Flux) and kubectl wait.",
    )
    admission: Literal["WaitingForAdmission", "Admitted"] | None = Field(
        default=None,
        description="WaitingForAdmission while a queueing system keeps the current batch "
        "Job suspended; Admitted once it let it run.",
    )
    refused_attempt: RefusedAttempt | None = Field(
        default=None,
        description="The last attempt whose batch Job could not be created; the operator "
        "counts it as a failed attempt.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation last seen by the operator."
    )


class JobRun(Resource):
    """One logical build of one or more partitions. Written by the operator."""

    KIND: ClassVar[str] = "JobRun"
    PLURAL: ClassVar[str] = "jobruns"
    SHORT_NAME: ClassVar[str] = "dbrun"

    kind: str = Field(default="JobRun", description="JobRun.")
    spec: JobRunSpec = Field(description="What the run builds.")
    status: JobRunStatus = Field(default_factory=JobRunStatus, description="Observed state.")


# ---------------------------------------------------------------------------------------
# Schedule
# ---------------------------------------------------------------------------------------

# Five whitespace-separated fields, or one of the pinned shorthands; the operator checks
# the fields' values (with the same cron library that computes the ticks).
CRON_PATTERN = r"^\s*(@(hourly|daily|weekly|monthly)|\S+(\s+\S+){4})\s*$"
TIME_ZONE_PATTERN = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"


class ScheduleWantTemplate(Model):
    """Settings of every Want a Schedule creates."""

    priority: int | None = Field(
        default=None,
        ge=MIN_PRIORITY,
        le=MAX_PRIORITY,
        description=f"spec.priority of every Want it creates ({MIN_PRIORITY} to "
        f"{MAX_PRIORITY}, default 0).",
    )
    ttl_seconds: int | None = Field(
        default=None, ge=1, description="The Want expires this many seconds after its data time."
    )
    sla_seconds: int | None = Field(
        default=None,
        ge=1,
        description="The Want is flagged as late when not Successful this many seconds "
        "after its data time.",
    )


class ScheduleSpec(Model):
    """Wants on a calendar: one Want per due tick of a cron expression."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel(
                    "!has(self.startTime) || !has(self.endTime) || self.endTime > self.startTime",
                    "spec.endTime must be after spec.startTime.",
                    fieldPath=".endTime",
                ),
            ]
        )
    )

    schedule: str = Field(
        min_length=1,
        max_length=256,
        pattern=CRON_PATTERN,
        description=(
            "A cron expression with five fields (minute hour day-of-month month "
            "day-of-week), or @hourly, @daily, @weekly or @monthly."
        ),
        json_schema_extra={
            PATTERN_MESSAGE_KEY: "must be a cron expression with five fields, e.g. '0 2 * * *', "
            "or one of @hourly, @daily, @weekly, @monthly"
        },
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=TIME_ZONE_PATTERN,
        description="IANA time zone the expression and the data-time placeholders use.",
    )
    partitions: list[PatternStr] = Field(
        min_length=1,
        # Like JobDefinition outputs: bounds the CEL cost of the pattern rule per item.
        max_length=64,
        description=(
            "Ref templates filled from each tick's data time: {date}, {hour}, {minute}, "
            "{month}, {week}, {datetime} and {time:<strftime>}, "
            "e.g. daily_summary/date={date}."
        ),
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    data_offset_seconds: int = Field(
        default=0,
        ge=0,
        le=366 * 86400,
        description="A tick's data time is the tick minus this many seconds.",
    )
    start_time: datetime | None = Field(
        default=None,
        description=(
            "Ticks from this time on are due (RFC 3339); a time in the past back-fills every "
            "tick since. Without it, the first tick is the first after creation."
        ),
    )
    end_time: datetime | None = Field(
        default=None, description="No tick after this time is due (RFC 3339)."
    )
    want: ScheduleWantTemplate = Field(
        default_factory=ScheduleWantTemplate, description="TTL and SLA of the Wants it creates."
    )
    suspend: bool = Field(
        default=False,
        description="While true no Want is created; ticks that pass meanwhile are skipped.",
    )
    history_limit: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="How many terminal Wants of its own it keeps; older ones are deleted.",
    )


class ScheduleWantCounts(Model):
    """How many of a Schedule's Wants are in each state."""

    total: int = Field(default=0, ge=0, description="Wants it owns.")
    pending: int = Field(default=0, ge=0, description="Wants Pending.")
    building: int = Field(default=0, ge=0, description="Wants Building or UpstreamBuilding.")
    successful: int = Field(default=0, ge=0, description="Wants Successful.")
    failed: int = Field(default=0, ge=0, description="Wants Failed.")
    expired: int = Field(default=0, ge=0, description="Wants Expired.")


class ScheduleStatus(Model):
    """Where a Schedule stands: its ticks, its Wants, whether it is Ready."""

    last_tick: datetime | None = Field(
        default=None, description="The newest tick a Want was created for."
    )
    next_tick: datetime | None = Field(default=None, description="The next tick that will be due.")
    handled_through: datetime | None = Field(
        default=None,
        description="Every tick up to this time is handled: its Want was created, or it "
        "passed while suspended.",
    )
    wants: ScheduleWantCounts | None = Field(
        default=None, description="Counts of its Wants by state."
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Ready: the spec is valid and every due tick has its Want.",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation the status was computed for."
    )


class Schedule(Resource):
    """Wants on a calendar. Written by users and GitOps."""

    KIND: ClassVar[str] = "Schedule"
    PLURAL: ClassVar[str] = "schedules"
    SHORT_NAME: ClassVar[str] = "dbsched"

    kind: str = Field(default="Schedule", description="Schedule.")
    spec: ScheduleSpec = Field(description="The calendar and the partitions of each tick.")
    status: ScheduleStatus = Field(default_factory=ScheduleStatus, description="Observed state.")


# ---------------------------------------------------------------------------------------
# TaintRequest
# ---------------------------------------------------------------------------------------


class TaintRequestSpec(Model):
    """Which Live partitions to mark bad, and why. Immutable: a new request asks again."""

    model_config = ConfigDict(
        json_schema_extra=_x(
            x_kubernetes_validations=[
                _cel(
                    "self == oldSelf",
                    "spec is immutable: create a new TaintRequest to taint other partitions.",
                    reason="FieldValueForbidden",
                )
            ]
        )
    )

    partitions: list[PartitionRefStr] = Field(
        min_length=1,
        max_length=MAX_WANT_PARTITIONS,
        description=(
            "Partition refs to taint, e.g. daily_summary/date=2025-01-01 (at least one, "
            "no duplicates). Each one Live since before the request was created goes "
            "Tainted, with everything built from it."
        ),
        json_schema_extra=_x(x_kubernetes_list_type="set"),
    )
    reason: str = Field(
        default="marked bad by a user",
        min_length=1,
        max_length=1024,
        description="Why the data is bad (kept in the Build Event Log).",
    )


class TaintRequestStatus(Model):
    """What the request did: the refs it found Tainted, not Live, or unknown."""

    tainted: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_WANT_PARTITIONS,
        description="Refs Tainted when the request was applied (with what was built from them).",
    )
    not_live: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_WANT_PARTITIONS,
        description="Refs left alone: not Live, or Live only since after the request "
        "(already rebuilt).",
    )
    unknown: list[PartitionRefStr] | None = Field(
        default=None,
        max_length=MAX_WANT_PARTITIONS,
        description="Refs with no Partition in this namespace.",
    )
    applied_at: datetime | None = Field(
        default=None, description="When the operator applied the request."
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Ready: True once the request was applied (it is never applied again).",
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation the request was applied for."
    )


class TaintRequest(Resource):
    """A request to taint Live partitions. Written by users; the request time is the
    server's (``metadata.creationTimestamp``), so nobody dates a taint in the future."""

    KIND: ClassVar[str] = "TaintRequest"
    PLURAL: ClassVar[str] = "taintrequests"
    SHORT_NAME: ClassVar[str] = "dbtaint"

    kind: str = Field(default="TaintRequest", description="TaintRequest.")
    spec: TaintRequestSpec = Field(description="The partitions to taint.")
    status: TaintRequestStatus = Field(
        default_factory=TaintRequestStatus, description="Observed state."
    )


# ---------------------------------------------------------------------------------------
# ConcurrencyPool
# ---------------------------------------------------------------------------------------


class ConcurrencyPoolSpec(Model):
    """One concurrency limit shared by every JobDefinition that names the pool."""

    max_concurrent_runs: int = Field(
        ge=1,
        le=MAX_CONCURRENT_RUNS,
        description="At most this many runs of all its member JobDefinitions run at once.",
    )


class ConcurrencyPoolStatus(Model):
    """How full the pool is."""

    running: int | None = Field(
        default=None, ge=0, description="Runs of its members Running (not held by a queue)."
    )
    waiting: int | None = Field(
        default=None, ge=0, description="Runs of its members Queued (ready, held by a limit)."
    )
    conditions: Conditions = Field(
        default_factory=list, description="Ready: the operator applies the pool's limit."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation the status was computed for."
    )


class ConcurrencyPool(Resource):
    """A concurrency limit shared by several JobDefinitions. Written by users and GitOps."""

    KIND: ClassVar[str] = "ConcurrencyPool"
    PLURAL: ClassVar[str] = "concurrencypools"
    SHORT_NAME: ClassVar[str] = "dbpool"

    kind: str = Field(default="ConcurrencyPool", description="ConcurrencyPool.")
    spec: ConcurrencyPoolSpec = Field(description="The shared limit.")
    status: ConcurrencyPoolStatus = Field(
        default_factory=ConcurrencyPoolStatus, description="Observed state."
    )


RESOURCES: tuple[type[Resource], ...] = (
    JobDefinition,
    Want,
    Partition,
    JobRun,
    Schedule,
    TaintRequest,
    ConcurrencyPool,
)
"""Every custom resource kind, in the order their CRDs are written."""
