"""Reading batch Job attempts for ``explain``."""

from __future__ import annotations

from typing import Any

from databuild.cli.kube import attempt_from


def _job(name: str, conditions: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"databuild.dev/job-run": "run"},
            "annotations": {"databuild.dev/attempt": name[-1]},
        },
        "status": {"conditions": conditions, **status},
    }


def _pod(job: str, exit_code: int, message: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": job, "job-name": job}},
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": exit_code, "message": message}}}
            ]
        },
    }


def test_attempt_states_times_and_exit_codes() -> None:
    running = attempt_from(_job("run-1", [], startTime="2025-01-01T00:00:00Z"), [], 1)
    assert running.state == "Running"
    assert running.started is not None
    assert running.finished is None

    done = _job(
        "run-2",
        [{"type": "Complete", "status": "True", "lastTransitionTime": "2025-01-01T00:01:00Z"}],
        startTime="2025-01-01T00:00:30Z",
        completionTime="2025-01-01T00:01:00Z",
    )
    ok = attempt_from(done, [], 2)
    assert (ok.state, ok.attempt, ok.job_name) == ("Succeeded", 2, "run-2")
    assert ok.finished is not None

    failed_job = _job(
        "run-3",
        [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": "2025-01-01T00:02:00Z",
            }
        ],
    )
    failed = attempt_from(failed_job, [_pod("run-3", 7, "disk full")], 3)
    assert failed.state == "Failed"
    assert failed.exit_code == 7
    assert failed.finished is not None

    miss = attempt_from(
        _job("run-4", failed_job["status"]["conditions"]),
        [_pod("run-4", 3, '{"missingPartitions": ["raw/date=2025-01-01"]}')],
        4,
    )
    assert miss.state == "DependencyMiss"
    assert "raw/date=2025-01-01" in miss.message
