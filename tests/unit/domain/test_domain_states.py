"""The state machines: every edge of DESIGN section 3, nothing else, typed and checked."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from domain_builders import T0
from mypy import api as mypy_api

from databuild.domain.events import EntityKind, Event, IllegalTransition
from databuild.domain.states import (
    JOBRUN_EDGES,
    PARTITION_EDGES,
    WANT_EDGES,
    InvalidStatus,
    JobRunCancelled,
    JobRunFailed,
    JobRunQueued,
    JobRunRunning,
    JobRunSucceeded,
    JobRunWaitingForUpstream,
    PartitionBuilding,
    PartitionFailed,
    PartitionLive,
    PartitionMissing,
    PartitionTainted,
    WantBuilding,
    WantExpired,
    WantFailed,
    WantPending,
    WantSuccessful,
    WantUpstreamBuilding,
    is_terminal,
    jobrun_status,
    load_jobrun_state,
    load_partition_state,
    load_want_state,
    partition_status,
    transition,
    want_status,
)

# The tables of DESIGN.md section 3, written out independently of the code.
DESIGN_PARTITION = {
    ("Missing", "Building"),
    ("Failed", "Building"),
    ("Tainted", "Building"),
    ("Building", "Live"),
    ("Building", "Failed"),
    ("Building", "Missing"),
    ("Live", "Tainted"),
}
DESIGN_JOBRUN = {
    ("Queued", "WaitingForUpstream"),
    ("WaitingForUpstream", "Queued"),
    ("WaitingForUpstream", "Failed"),
    ("Queued", "Running"),
    ("Running", "Succeeded"),
    ("Running", "Queued"),
    ("Running", "Failed"),
    ("Running", "WaitingForUpstream"),
    ("Queued", "Cancelled"),
    ("WaitingForUpstream", "Cancelled"),
    ("Running", "Cancelled"),
}
DESIGN_WANT = {
    ("Pending", "Building"),
    ("Pending", "UpstreamBuilding"),
    ("UpstreamBuilding", "Building"),
    ("Building", "UpstreamBuilding"),
    ("Building", "Successful"),
    *{(s, t) for s in ("Pending", "Building", "UpstreamBuilding") for t in ("Failed", "Expired")},
}


def test_tables_derived_from_the_classes_match_the_design() -> None:
    assert set(PARTITION_EDGES) == DESIGN_PARTITION
    assert set(JOBRUN_EDGES) == DESIGN_JOBRUN
    assert set(WANT_EDGES) == DESIGN_WANT


T1 = T0 + timedelta(seconds=5)


def _check(event: Event, kind: EntityKind, name: str, source: str, target: str) -> None:
    assert (event.kind, event.name, event.from_state, event.to_state) == (
        kind,
        name,
        source,
        target,
    )
    assert event.time == T1
    assert event.reason and event.reason[0].isupper()
    transition(kind, source, target)


# --- Partition -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start", [PartitionMissing(), PartitionFailed(failed_at=T0), PartitionTainted()]
)
def test_partition_start_building(
    start: PartitionMissing | PartitionFailed | PartitionTainted,
) -> None:
    state, event = start.start_building("a/b", at=T1, job_run="run-1")
    assert isinstance(state, PartitionBuilding) and state.built_by == "run-1"
    assert state.failed_at is None
    _check(event, EntityKind.PARTITION, event.name, start.STATE, "Building")
    assert event.details["ref"] == "a/b" and event.details["jobRun"] == "run-1"


def test_partition_building_edges() -> None:
    building = PartitionBuilding(built_by="run-1")
    live, event = building.go_live("a/b", at=T1, inputs=("x/y",))
    assert isinstance(live, PartitionLive)
    assert (live.live_since, live.inputs, live.built_by) == (T1, ("x/y",), "run-1")
    _check(event, EntityKind.PARTITION, event.name, "Building", "Live")
    failed, event = building.fail("a/b", at=T1, message="boom")
    assert isinstance(failed, PartitionFailed) and failed.failed_at == T1
    assert failed.message == "boom"
    _check(event, EntityKind.PARTITION, event.name, "Building", "Failed")
    missing, event = building.reset("a/b", at=T1, reason="BuildCancelled")
    assert isinstance(missing, PartitionMissing) and missing.built_by is None
    _check(event, EntityKind.PARTITION, event.name, "Building", "Missing")
    assert event.reason == "BuildCancelled"


def test_partition_taint() -> None:
    tainted, event = PartitionLive(built_by="r", live_since=T0).taint("a", at=T1, message="bad")
    assert isinstance(tainted, PartitionTainted) and tainted.message == "bad"
    _check(event, EntityKind.PARTITION, event.name, "Live", "Tainted")


# --- JobRun --------------------------------------------------------------------------------


def test_jobrun_queued_edges() -> None:
    queued = JobRunQueued()
    waiting, event = queued.wait_for_upstream("r", at=T1, waiting_for=("x",))
    assert isinstance(waiting, JobRunWaitingForUpstream)
    _check(event, EntityKind.JOB_RUN, "r", "Queued", "WaitingForUpstream")
    running, event = queued.start("r", at=T1)
    assert isinstance(running, JobRunRunning)
    assert (running.attempt, running.batch_job, running.started_at) == (1, "r-1", T1)
    assert event.details == {"batchJob": "r-1", "attempt": "1"}
    _check(event, EntityKind.JOB_RUN, "r", "Queued", "Running")
    again, _ = JobRunQueued(attempt=2, failed_attempts=1, started_at=T0).start("r", at=T1)
    assert (again.attempt, again.batch_job, again.started_at) == (3, "r-3", T0)


def test_jobrun_waiting_edges() -> None:
    waiting = JobRunWaitingForUpstream(attempt=1)
    queued, event = waiting.inputs_ready("r", at=T1)
    assert isinstance(queued, JobRunQueued) and queued.attempt == 1
    _check(event, EntityKind.JOB_RUN, "r", "WaitingForUpstream", "Queued")
    failed, event = waiting.fail("r", at=T1, message="input x failed")
    assert isinstance(failed, JobRunFailed) and failed.finished_at == T1
    assert failed.failed_attempts == 0  # an upstream failure spends no attempt of its own
    _check(event, EntityKind.JOB_RUN, "r", "WaitingForUpstream", "Failed")


def test_jobrun_running_edges() -> None:
    running = JobRunRunning(attempt=2, failed_attempts=1, batch_job="r-2", started_at=T0)
    done, event = running.succeed("r", at=T1)
    assert isinstance(done, JobRunSucceeded) and done.finished_at == T1
    _check(event, EntityKind.JOB_RUN, "r", "Running", "Succeeded")
    retry, event = running.retry("r", at=T1, retry_after=T1 + timedelta(seconds=30), message="x")
    assert isinstance(retry, JobRunQueued)
    assert (retry.failed_attempts, retry.attempt) == (2, 2)
    assert retry.retry_after == T1 + timedelta(seconds=30)
    _check(event, EntityKind.JOB_RUN, "r", "Running", "Queued")
    failed, event = running.fail("r", at=T1, message="exit 1")
    assert isinstance(failed, JobRunFailed) and failed.failed_attempts == 2
    _check(event, EntityKind.JOB_RUN, "r", "Running", "Failed")
    miss, event = running.dependency_miss("r", at=T1, missing=("u/1", "u/0"))
    assert isinstance(miss, JobRunWaitingForUpstream)
    assert miss.failed_attempts == 1  # a dependency miss spends no retry
    assert miss.missing_partitions == ("u/1", "u/0") and miss.ever_missing == ("u/0", "u/1")
    assert event.details["missingPartitions"] == "u/1,u/0"
    _check(event, EntityKind.JOB_RUN, "r", "Running", "WaitingForUpstream")


@pytest.mark.parametrize(
    "state",
    [JobRunQueued(), JobRunWaitingForUpstream(), JobRunRunning(attempt=1, batch_job="r-1")],
)
def test_jobrun_cancel(state: JobRunQueued | JobRunWaitingForUpstream | JobRunRunning) -> None:
    cancelled, event = state.cancel("r", at=T1, reason="no live Want needs it")
    assert isinstance(cancelled, JobRunCancelled) and cancelled.finished_at == T1
    _check(event, EntityKind.JOB_RUN, "r", state.STATE, "Cancelled")


@pytest.mark.parametrize("state", [JobRunSucceeded(), JobRunFailed(), JobRunCancelled()])
def test_terminal_jobruns_have_no_transition_methods(state: object) -> None:
    for method in ("start", "cancel", "succeed", "fail", "retry", "inputs_ready"):
        assert not hasattr(state, method)


# --- Want ----------------------------------------------------------------------------------


def test_want_edges() -> None:
    b, e = WantPending().build("w", at=T1)
    assert isinstance(b, WantBuilding)
    _check(e, EntityKind.WANT, "w", "Pending", "Building")
    u, e = WantPending().wait_for_upstream("w", at=T1)
    assert isinstance(u, WantUpstreamBuilding)
    _check(e, EntityKind.WANT, "w", "Pending", "UpstreamBuilding")
    u, e = WantBuilding().wait_for_upstream("w", at=T1)
    _check(e, EntityKind.WANT, "w", "Building", "UpstreamBuilding")
    b, e = WantUpstreamBuilding().build("w", at=T1)
    _check(e, EntityKind.WANT, "w", "UpstreamBuilding", "Building")
    s, e = WantBuilding().succeed("w", at=T1)
    assert isinstance(s, WantSuccessful)
    _check(e, EntityKind.WANT, "w", "Building", "Successful")
    for open_state in (WantPending(), WantBuilding(), WantUpstreamBuilding()):
        f, e = open_state.fail("w", at=T1, reason="DependencyCycle", message="a -> a")
        assert isinstance(f, WantFailed) and f.reason == "DependencyCycle"
        _check(e, EntityKind.WANT, "w", open_state.STATE, "Failed")
        x, e = open_state.expire("w", at=T1, reason="TTLExpired", message="ttl")
        assert isinstance(x, WantExpired)
        _check(e, EntityKind.WANT, "w", open_state.STATE, "Expired")
    for terminal in (WantSuccessful(), WantFailed(), WantExpired()):
        assert is_terminal(terminal)
        assert not any(hasattr(terminal, m) for m in ("build", "fail", "expire", "succeed"))
    assert not is_terminal(WantPending())


# --- runtime checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "source", "target"),
    [
        (EntityKind.JOB_RUN, "Queued", "Succeeded"),
        (EntityKind.JOB_RUN, "Succeeded", "Queued"),
        (EntityKind.JOB_RUN, "Failed", "Running"),
        (EntityKind.PARTITION, "Missing", "Live"),
        (EntityKind.PARTITION, "Live", "Building"),
        (EntityKind.WANT, "Pending", "Successful"),
        (EntityKind.WANT, "Successful", "Building"),
        (EntityKind.WANT, "Nope", "Building"),
        (EntityKind.JOB_RUN, None, "Running"),
    ],
)
def test_runtime_transition_check_rejects_illegal_edges(
    kind: EntityKind, source: str | None, target: str
) -> None:
    with pytest.raises(IllegalTransition, match=f"-> {target}"):
        transition(kind, source, target, "thing")


def test_runtime_transition_check_accepts_every_edge_and_creation() -> None:
    for kind, table in (
        (EntityKind.PARTITION, PARTITION_EDGES),
        (EntityKind.JOB_RUN, JOBRUN_EDGES),
        (EntityKind.WANT, WANT_EDGES),
    ):
        for source, target in table:
            transition(kind, source, target)
    transition(EntityKind.PARTITION, None, "Missing")
    transition(EntityKind.JOB_RUN, None, "Queued")
    transition(EntityKind.WANT, None, "Pending")


# --- loading persisted status ---------------------------------------------------------------


def test_status_round_trips() -> None:
    states = [
        JobRunRunning(
            attempt=3,
            failed_attempts=1,
            batch_job="r-3",
            started_at=T0,
            missing_partitions=("a",),
            ever_missing=("a", "b"),
        ),
        JobRunQueued(attempt=1, failed_attempts=1, retry_after=T1, message="x"),
        JobRunSucceeded(attempt=1, batch_job="r-1", started_at=T0, finished_at=T1),
    ]
    for state in states:
        assert load_jobrun_state(jobrun_status(state)) == state
    parts = [
        PartitionLive(built_by="r", live_since=T1, inputs=("a/b",)),
        PartitionFailed(built_by="r", failed_at=T1, message="m"),
        PartitionMissing(),
    ]
    for part in parts:
        assert load_partition_state(partition_status(part)) == part
    want = WantFailed(reason="PartitionFailed", message="m")
    assert load_want_state(want_status(want)) == want
    assert load_want_state({}) == WantPending()
    assert load_jobrun_state({}) == JobRunQueued()
    assert load_partition_state({}) == PartitionMissing()


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        ({"state": "Exploded"}, "unknown state 'Exploded'"),
        ({"state": "Running", "attempt": 0}, "Running needs attempt >= 1"),
        ({"state": "Running", "attempt": 2, "batchJob": "r-1"}, "batchJob"),
        ({"state": "Succeeded", "attempt": 1}, "needs finishTime"),
        ({"state": "Queued", "attempt": -1}, "non-negative"),
        ({"state": "Queued", "attempt": 1, "failedAttempts": 2}, "failedAttempts (2) > attempt"),
        ({"state": "Queued", "retryAfter": "yesterday"}, "not an RFC 3339"),
        ({"state": "Queued", "retryAfter": "2025-01-01T00:00:00"}, "no time zone"),
        ({"state": "Queued", "missingPartitions": "a"}, "list of strings"),
    ],
)
def test_load_jobrun_state_rejects_bad_status(status: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidStatus, match="invalid JobRun status") as info:
        load_jobrun_state(status)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("status", "needle"),
    [
        ({"state": "Live"}, "needs builtBy"),
        ({"state": "Live", "builtBy": "r"}, "needs liveSince"),
        ({"state": "Building"}, "needs builtBy"),
        ({"state": "Failed"}, "needs failedAt"),
        ({"state": "Gone"}, "unknown state"),
    ],
)
def test_load_partition_state_rejects_bad_status(status: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidStatus, match=needle):
        load_partition_state(status)


def test_load_want_state_rejects_unknown_state() -> None:
    with pytest.raises(InvalidStatus, match="expected one of: Pending"):
        load_want_state({"state": "Done"})


def test_load_accepts_rfc3339_with_z() -> None:
    state = load_jobrun_state({"state": "Queued", "retryAfter": "2025-01-01T00:00:05Z"})
    assert isinstance(state, JobRunQueued) and state.retry_after == T1


# --- the type checker rejects illegal transitions ---------------------------------------------

_SNIPPET = """
from datetime import UTC, datetime
from typing import assert_never

from databuild.domain.states import JobRunQueued, JobRunState, WantSuccessful

queued = JobRunQueued()
queued.succeed("r", at=datetime.now(UTC))
WantSuccessful().fail("w", at=datetime.now(UTC), reason="x", message="y")
running, event = queued.start("r", at=datetime.now(UTC))
running.succeed("r", at=datetime.now(UTC))  # legal: no error on this line

def describe(state: JobRunState) -> str:
    match state:
        case JobRunQueued():
            return "queued"
        case _:
            assert_never(state)
"""


def test_mypy_rejects_illegal_transitions(tmp_path: Path) -> None:
    snippet = tmp_path / "illegal.py"
    snippet.write_text(textwrap.dedent(_SNIPPET))
    stdout, _, status = mypy_api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            "",
            "--python-version",
            "3.11",
            str(snippet),
        ]
    )
    assert status == 1, stdout
    lines = [line.split(": ", 1)[1] for line in stdout.splitlines() if ": error:" in line]
    assert 'error: "JobRunQueued" has no attribute "succeed"  [attr-defined]' in lines
    assert 'error: "WantSuccessful" has no attribute "fail"  [attr-defined]' in lines
    assert any("assert_never" in line and "JobRunWaitingForUpstream" in line for line in lines)
    assert len(lines) == 3, stdout  # the legal call on the Running state passes
