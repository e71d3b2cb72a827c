"""Settings come from flags over DATABUILD_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from databuild.operator.settings import load


def test_defaults() -> None:
    s = load([], env={})
    assert s.namespaces == ()
    assert s.clusterwide
    assert s.job_ttl_seconds == 86400
    assert s.leader_election
    assert s.lease_namespace == "default"


def test_flags() -> None:
    s = load(
        [
            "--kubeconfig",
            "k",
            "-n",
            "a",
            "--namespace",
            "b",
            "-n",
            "a",
            "--job-ttl-seconds",
            "60",
            "--no-leader-election",
            "--metrics-port",
            "9000",
        ],
        env={},
    )
    assert s.kubeconfig == Path("k")
    assert s.namespaces == ("a", "b")
    assert s.job_ttl_seconds == 60
    assert not s.leader_election
    assert s.metrics_port == 9000


def test_environment_and_precedence() -> None:
    env = {
        "DATABUILD_NAMESPACES": "x, y",
        "DATABUILD_JOB_TTL_SECONDS": "5",
        "DATABUILD_LEADER_ELECTION": "false",
        "POD_NAMESPACE": "ops",
    }
    s = load([], env=env)
    assert s.namespaces == ("x", "y")
    assert s.job_ttl_seconds == 5
    assert not s.leader_election
    assert s.lease_namespace == "ops"
    assert load(["--job-ttl-seconds", "7"], env=env).job_ttl_seconds == 7


def test_bad_values_say_what_is_wrong() -> None:
    with pytest.raises(SystemExit, match="DATABUILD_JOB_TTL_SECONDS='soon'"):
        load([], env={"DATABUILD_JOB_TTL_SECONDS": "soon"})
    with pytest.raises(SystemExit, match="max-concurrent-runs"):
        load(["--max-concurrent-runs", "0"], env={})


def test_job_run_retention_defaults_to_a_week_and_can_be_set_or_turned_off() -> None:
    assert load([], env={}).job_run_retention_seconds == 7 * 86400
    assert load(["--job-run-retention-seconds", "60"], env={}).job_run_retention_seconds == 60
    env = {"DATABUILD_JOB_RUN_RETENTION_SECONDS": "0"}
    assert load([], env=env).job_run_retention_seconds == 0
    with pytest.raises(SystemExit, match="job-run-retention-seconds"):
        load(["--job-run-retention-seconds", "-1"], env={})
