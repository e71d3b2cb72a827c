"""The codec: what it writes, it reads back as the same domain state (no status churn)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from databuild import domain
from databuild.adapters import codec

T = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _body(kind: str, spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {
            "name": "x",
            "namespace": "n",
            "uid": "u",
            "generation": 3,
            "creationTimestamp": "2025-01-01T00:00:00Z",
        },
        "spec": spec,
        "status": status or {},
    }


def test_partition_states_round_trip() -> None:
    states: list[domain.PartitionState] = [
        domain.PartitionMissing(),
        domain.PartitionBuilding(built_by="run"),
        domain.PartitionLive(built_by="run", live_since=T, inputs=("a/1", "b/2")),
        domain.PartitionFailed(built_by="run", failed_at=T, message="boom"),
    ]
    for state in states:
        status = {k: v for k, v in codec.partition_status(state, T).items() if v is not None}
        part = codec.partition_from(_body("Partition", {"ref": "p/1"}, status))
        assert part.state == state
        assert part.ref == "p/1"


def test_job_run_states_round_trip() -> None:
    states: list[domain.JobRunState] = [
        domain.JobRunQueued(),
        domain.JobRunQueued(attempt=1, failed_attempts=1, retry_after=T, message="m"),
        domain.JobRunRunning(attempt=2, batch_job="x-2", started_at=T),
        domain.JobRunWaitingForUpstream(
            attempt=1, missing_partitions=("a/1",), ever_missing=("a/1",)
        ),
        domain.JobRunSucceeded(attempt=1, batch_job="x-1", started_at=T, finished_at=T),
    ]
    for state in states:
        written = codec.job_run_status(state, reason="R", exit_code=None, generation=1, now=T)
        status = {k: v for k, v in written.items() if v is not None}
        run = codec.job_run_from(
            _body(
                "JobRun",
                {
                    "jobDefinition": "jd",
                    "partitions": ["o/1"],
                    "inputs": ["i/1"],
                    "captures": {"d": "1"},
                    "createdAt": codec.iso(T),
                },
                status,
            )
        )
        assert run.state == state
        assert run.created_at == T
        assert run.captures == {"d": "1"}


def test_want_status_round_trips_so_the_planner_sees_no_change() -> None:
    action = domain.UpdateWantStatus(
        name="x",
        state="Building",
        counts={"Building": 2, "Live": 1},
        conditions=(domain.Condition("Ready", "False", "Building", "the Want is Building", T),),
        observed_generation=3,
    )
    status = {
        **codec.want_derived_status(action),
        **codec.want_state_status(domain.WantBuilding(), T),
    }
    status = {k: v for k, v in status.items() if v is not None}
    assert status["progress"] == "1/3"
    want = codec.want_from(_body("Want", {"partitions": ["a/1", "a/2", "a/3"]}, status))
    assert want.status == domain.WantStatus(
        counts={"Building": 2, "Live": 1},
        conditions=action.conditions,
        observed_generation=3,
        sla_breached=False,
    )
    assert isinstance(want.state, domain.WantBuilding)
    assert want.generation == 3


def test_want_spec_fields() -> None:
    want = codec.want_from(
        _body(
            "Want",
            {
                "partitions": ["a/1"],
                "ttlSeconds": 5,
                "source": {"jobRun": "r"},
                "dataTimestamp": "2025-01-01T00:00:00Z",
            },
        )
    )
    assert want.ttl_seconds == 5
    assert want.source_job_run == "r"
    assert want.clock_start == datetime(2025, 1, 1, tzinfo=UTC)
    assert not want.deleted


def test_bad_objects_are_reported_not_raised_as_crashes() -> None:
    with pytest.raises(codec.BadObject, match="partitions"):
        codec.want_from(_body("Want", {"partitions": ["a b"]}))
    # A Want whose (operator-owned) status is garbage is derived again from Pending.
    want = codec.want_from(_body("Want", {"partitions": ["a/1"]}, {"state": "Weird"}))
    assert isinstance(want.state, domain.WantPending)
    # A Partition whose status lies is simply rebuilt.
    part = codec.partition_from(_body("Partition", {"ref": "a/1"}, {"state": "Live"}))
    assert part.state == domain.PartitionMissing()


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, None),
        (
            {
                "databuild.dev/taint": "bad rows",
                "databuild.dev/taint-requested-at": "2025-01-02T03:04:05.678901Z",
            },
            domain.TaintRequest("bad rows", T),
        ),
        (  # what `databuild taint` writes with the default reason, a zone-less time
            {"databuild.dev/taint": "", "databuild.dev/taint-requested-at": "2025-01-02T03:04:05"},
            domain.TaintRequest("tainted by a user", T.replace(microsecond=0)),
        ),
        ({"databuild.dev/taint": "x", "databuild.dev/taint-requested-at": "yesterday"}, None),
        ({"databuild.dev/taint": "x"}, None),
        ({"databuild.dev/taint-requested-at": "2025-01-02T03:04:05Z"}, None),
    ],
)
def test_a_taint_request_is_read_from_the_annotations(
    annotations: dict[str, str], expected: domain.TaintRequest | None
) -> None:
    body = _body("Partition", {"ref": "a/1"}, {"state": "Live", "jobRun": "r", "liveSince": "x"})
    body["status"]["liveSince"] = codec.iso(T)
    body["metadata"]["annotations"] = annotations
    part = codec.partition_from(body)
    assert part.taint_request == expected
    assert isinstance(part.state, domain.PartitionLive)


def test_job_definition_errors_surface_through_the_domain() -> None:
    jd = codec.job_definition_from(
        _body(
            "JobDefinition",
            {
                "outputs": ["a/{x}"],
                "inputs": ["b/{y}"],
                "template": {},
                "retry": {"limit": 2, "backoffSeconds": 3},
            },
        )
    )
    assert jd.error is not None and "unknown capture" in jd.error
    assert jd.retry == domain.Retry(limit=2, backoff_seconds=3)


RUN_UID = "run-uid"


def _job(condition: str | None, at: datetime = T) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if condition:
        status["conditions"] = [
            {"type": condition, "status": "True", "lastTransitionTime": codec.iso(at)}
        ]
    return {
        "metadata": {
            "name": "r-2",
            "uid": "job-uid",
            "annotations": {"databuild.dev/attempt": "2"},
            "ownerReferences": [
                {"kind": "JobRun", "name": "r", "uid": RUN_UID, "controller": True}
            ],
        },
        "status": status,
    }


def test_outcomes() -> None:
    assert codec.outcome_from(_job(None), [], T, RUN_UID) == domain.JobOutcome(
        "r", 2, domain.OutcomeKind.RUNNING
    )
    assert codec.outcome_from(_job("Complete"), [], T, RUN_UID) == domain.JobOutcome(
        "r", 2, domain.OutcomeKind.SUCCEEDED
    )
    not_ours = _job(None)
    not_ours["metadata"] = {"name": "j"}
    assert codec.outcome_from(not_ours, [], T, RUN_UID) is None


def test_a_failure_waits_briefly_for_its_pod() -> None:
    early = codec.outcome_from(_job("Failed"), [], T + timedelta(seconds=1), RUN_UID)
    assert early is not None and early.kind is domain.OutcomeKind.RUNNING
    late = codec.outcome_from(
        _job("Failed"), [], T + codec.POD_GRACE + timedelta(seconds=1), RUN_UID
    )
    assert late is not None and late.kind is domain.OutcomeKind.FAILED


def _miss_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {"batch.kubernetes.io/job-name": "r-2"},
            "ownerReferences": [
                {"kind": "Job", "name": "r-2", "uid": "job-uid", "controller": True}
            ],
        },
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {"exitCode": 2, "message": '{"missingPartitions": ["raw/1"]}'}
                    }
                }
            ]
        },
    }


def test_dependency_miss_outcome() -> None:
    outcome = codec.outcome_from(_job("Failed"), [_miss_pod()], T, RUN_UID)
    assert outcome == domain.JobOutcome(
        "r", 2, domain.OutcomeKind.DEPENDENCY_MISS, 2, "", (domain.PartitionRef("raw/1"),)
    )


def test_an_outcome_needs_the_runs_uid_not_its_name_or_label() -> None:
    assert codec.outcome_from(_job("Complete"), [], T, "another-uid") is None
    assert codec.outcome_from(_job("Complete"), [], T, "") is None
    labelled_only = _job("Complete")
    labelled_only["metadata"]["ownerReferences"] = []
    labelled_only["metadata"]["labels"] = {"databuild.dev/job-run": "r"}
    assert codec.outcome_from(labelled_only, [], T, RUN_UID) is None


def test_the_attempt_annotation_must_agree_with_the_jobs_name() -> None:
    forged = _job("Complete")
    forged["metadata"]["name"] = "r-forged"
    assert codec.outcome_from(forged, [], T, RUN_UID) is None
    other_attempt = _job("Complete")
    other_attempt["metadata"]["annotations"] = {"databuild.dev/attempt": "3"}
    assert codec.outcome_from(other_attempt, [], T, RUN_UID) is None


def test_a_pod_not_controlled_by_the_job_is_not_read() -> None:
    pod = _miss_pod()
    pod["metadata"]["ownerReferences"][0]["uid"] = "someone-elses-job"
    late = T + codec.POD_GRACE + timedelta(seconds=1)
    outcome = codec.outcome_from(_job("Failed"), [pod], late, RUN_UID)
    # Without its own pod, the attempt is a plain failure: the forged miss is not read.
    assert outcome is not None and outcome.kind is domain.OutcomeKind.FAILED
    assert outcome.missing_partitions == ()


def test_manifests() -> None:
    event = domain.Event(T, domain.EntityKind.WANT, "d", None, "Pending", "DependencyMiss")
    want = codec.want_manifest(
        domain.CreateWant("d", (domain.PartitionRef("a/1"),), "run", T, event), "n", "uid-1"
    )
    assert want["spec"] == {"partitions": ["a/1"], "source": {"jobRun": "run"}}
    assert want["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert want["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "databuild-operator"
    part = codec.partition_manifest(
        domain.CreatePartition("p", domain.PartitionRef("a/1"), event), "n"
    )
    assert part["spec"] == {"ref": "a/1"}
    assert len(part["metadata"]["labels"]["databuild.dev/ref-hash"]) <= 63


def _true_or_false(conditions: list[dict[str, Any]]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in conditions}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (domain.PartitionMissing(), {}),
        (domain.PartitionBuilding(built_by="run"), {"Ready": "False"}),
        (domain.PartitionLive(built_by="run", live_since=T), {"Ready": "True"}),
        (
            domain.PartitionFailed(built_by="run", failed_at=T, message="boom"),
            {"Ready": "False", "Stalled": "True"},
        ),
        (domain.PartitionTainted(built_by="run"), {"Ready": "False", "Stalled": "True"}),
    ],
)
def test_partition_conditions_are_what_kstatus_reads(
    state: domain.PartitionState, expected: dict[str, str]
) -> None:
    status = codec.partition_status(state, T)
    assert _true_or_false(status["conditions"]) == expected
    assert "observedGeneration" not in status  # the executor adds the object's own
    for condition in status["conditions"]:
        assert condition["reason"] == state.STATE
        assert condition["message"]
        assert condition["lastTransitionTime"] == codec.iso(T)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (domain.JobRunQueued(), {"Ready": "False", "Reconciling": "True"}),
        (domain.JobRunWaitingForUpstream(attempt=1), {"Ready": "False", "Reconciling": "True"}),
        (domain.JobRunRunning(attempt=1), {"Ready": "False", "Reconciling": "True"}),
        (domain.JobRunSucceeded(attempt=1), {"Ready": "True"}),
        (domain.JobRunFailed(attempt=1, message="exit 3"), {"Ready": "False", "Stalled": "True"}),
        (domain.JobRunCancelled(attempt=1), {}),
    ],
)
def test_job_run_conditions_are_what_kstatus_reads(
    state: domain.JobRunState, expected: dict[str, str]
) -> None:
    status = codec.job_run_status(state, reason="Reason", exit_code=None, generation=2, now=T)
    conditions = _true_or_false(status["conditions"])
    succeeded = conditions.pop("Succeeded")
    assert succeeded == {"Succeeded": "True", "Failed": "False", "Cancelled": "False"}.get(
        state.STATE, "Unknown"
    )
    assert conditions == expected
    assert all(c["observedGeneration"] == 2 for c in status["conditions"])


def test_job_run_conditions_keep_their_transition_time_while_their_status_holds() -> None:
    earlier = T - timedelta(minutes=5)
    first = codec.job_run_status(
        domain.JobRunQueued(), reason="Created", exit_code=None, generation=1, now=earlier
    )
    running = codec.job_run_status(
        domain.JobRunRunning(attempt=1),
        reason="Started",
        exit_code=None,
        generation=1,
        now=T,
        previous_conditions=first["conditions"],
    )
    since = {c["type"]: c["lastTransitionTime"] for c in running["conditions"]}
    assert since["Reconciling"] == codec.iso(earlier)  # True before and after
    assert since["Ready"] == codec.iso(earlier)


def test_an_invalid_job_definition_and_an_unreadable_want_are_stalled() -> None:
    world = domain.World(
        job_definitions={
            "bad": domain.JobDefinition("bad", ("bad/{d}",), ("raw/{nope}",)),
            "good": domain.JobDefinition("good", ("good/{d}",)),
        },
        job_definition_statuses={
            "bad": domain.JobDefinitionStatus(4),
            "good": domain.JobDefinitionStatus(4),
        },
    )
    written = {
        a.name: codec.job_definition_status(a)
        for a in domain.plan(world, T)
        if isinstance(a, domain.UpdateJobDefinitionStatus)
    }
    assert _true_or_false(written["bad"]["conditions"]) == {"Ready": "False", "Stalled": "True"}
    assert _true_or_false(written["good"]["conditions"]) == {"Ready": "True"}
    assert written["bad"]["observedGeneration"] == 4
    assert written["bad"]["conditions"][0]["observedGeneration"] == 4
    # Read back, the status says so: nothing more to write.
    read = codec.job_definition_status_from(
        {"metadata": {"generation": 4}, "status": written["bad"]}
    )
    assert read.observed_generation == 4
    assert [c.type for c in read.conditions] == ["Ready", "Stalled"]
    bad = codec.bad_want_status("spec.partitions is missing", 2, T)
    assert _true_or_false(bad["conditions"]) == {"Ready": "False", "Stalled": "True"}
    assert bad["conditions"][0]["type"] == "Ready"  # the executor compares the first
    assert "spec.partitions is missing" in bad["conditions"][1]["message"]


def _annotated(requested_at: str, written: list[tuple[str, str]]) -> dict[str, Any]:
    """A Live Partition annotated with a taint request at ``requested_at``; ``written``
    are managedFields entries (time, annotation key) as the API server records them."""
    body = _body("Partition", {"ref": "a/1"}, {"state": "Live", "jobRun": "r"})
    body["status"]["liveSince"] = codec.iso(T)
    body["metadata"]["annotations"] = {
        "databuild.dev/taint": "bad",
        "databuild.dev/taint-requested-at": requested_at,
    }
    body["metadata"]["managedFields"] = [
        {
            "manager": "kubectl",
            "operation": "Update",
            "time": time,
            "fieldsV1": {"f:metadata": {"f:annotations": {f"f:{key}": {}}}},
        }
        for time, key in written
    ]
    return body


def test_an_annotated_taint_dated_in_the_future_is_clamped_to_the_servers_time() -> None:
    key = "databuild.dev/taint-requested-at"
    # Dated 2100, written (by the server's clock, whole seconds) in 2025: the request
    # counts from the end of that second.
    part = codec.partition_from(_annotated("2100-01-01T00:00:00Z", [("2025-01-03T00:00:00Z", key)]))
    assert part.taint_request == domain.TaintRequest(
        "bad", datetime(2025, 1, 3, 0, 0, 1, tzinfo=UTC)
    )
    # An earlier date than the write stands; another manager's unrelated write is no clamp.
    part = codec.partition_from(
        _annotated(
            "2025-01-02T00:00:00Z",
            [("2025-01-03T00:00:00Z", key), ("2020-01-01T00:00:00Z", "other")],
        )
    )
    assert part.taint_request == domain.TaintRequest("bad", datetime(2025, 1, 2, tzinfo=UTC))
    # Without managedFields (a client that strips them) the annotation is read as it is.
    part = codec.partition_from(_annotated("2100-01-01T00:00:00Z", []))
    assert part.taint_request == domain.TaintRequest("bad", datetime(2100, 1, 1, tzinfo=UTC))
