"""A 90-day backfill from the CLI on the real control plane, a few failures, a retry.

The CLI runs as a subprocess, the way users run it. kwok simulates the pods
(DESIGN.md section 6): the last three days of March are built by a JobDefinition whose
pods fail until the test "fixes" it; ``retry --backfill --failed`` then rebuilds only
those three.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from e2e_support import Scenario, jobdef

from databuild.adapters.kinds import KINDS
from databuild.testing.demo import request

FAILING = ["daily/date=2025-03-29", "daily/date=2025-03-30", "daily/date=2025-03-31"]


def databuild(sc: Scenario, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "databuild.cli.main",
        "--kubeconfig",
        str(Path(sc.cluster.kubeconfig)),
        "-n",
        sc.namespace,
        *argv,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def test_backfill_of_90_days_with_failures_is_retried_with_failed(scenario: Scenario) -> None:
    sc = scenario
    sc.apply(
        jobdef("winter", ["daily/date={date:2025-0[12]-[0-9]{2}}"]),
        jobdef("march", ["daily/date={date:2025-03-([01][0-9]|2[0-8])}"]),
        jobdef(
            "late",
            ["daily/date={date:2025-03-(29|30|31)}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
        ),
    )
    sc.start_operator()
    run = databuild(
        sc,
        "backfill",
        "daily/date={date}",
        "--from",
        "2025-01-01",
        "--to",
        "2025-03-31",
        "--name",
        "q1",
        "--wait",
        "--interval",
        "2",
        "--timeout",
        "240",
    )
    assert run.returncode == 1, f"{run.stdout}\n{run.stderr}\n{sc.describe()}"
    assert "backfill q1: 90 Wants, 90 partitions (90 Wants created)" in run.stdout
    assert "ask again for only these: databuild retry --backfill q1 --failed" in run.stdout
    status = json.loads(databuild(sc, "status", "--backfill", "q1", "-o", "json").stdout)
    assert status["wants"] == {"Successful": 87, "Failed": 3}
    assert sorted(status["notBuilt"]) == FAILING
    runs_before = {r["metadata"]["name"] for r in sc.list("JobRun")}
    assert len(runs_before) == 90
    # The job is fixed; ask again for only what failed.
    request(
        sc.kube,
        "PATCH",
        f"{KINDS['JobDefinition'].collection(sc.namespace)}/late",
        {"spec": {"template": {"metadata": {"labels": {"kwok.databuild.dev/outcome": None}}}}},
        content_type="application/merge-patch+json",
    )
    retry = databuild(
        sc, "retry", "--backfill", "q1", "--failed", "--wait", "--interval", "2", "--timeout", "120"
    )
    assert retry.returncode == 0, f"{retry.stdout}\n{retry.stderr}\n{sc.describe()}"
    assert "backfill q1: 3 Wants created for what failed" in retry.stdout
    new_runs = [r for r in sc.list("JobRun") if r["metadata"]["name"] not in runs_before]
    assert sorted(p for r in new_runs for p in r["spec"]["partitions"]) == FAILING
    assert all(r["status"]["state"] == "Succeeded" for r in new_runs)
    status = json.loads(databuild(sc, "status", "--backfill", "q1", "-o", "json").stdout)
    assert status["partitions"] == {"Live": 90, "total": 90}
    assert status["notBuilt"] == []
