"""Seeing builds on the real control plane: ``databuild logs`` and ``databuild wait``.

kwok runs no containers; the harness has it serve every pod's log from one file (its
ClusterLogs configuration), at the node address the API server fetches ``pods/log``
from, so the CLI reads logs along the same path as on a real cluster.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from e2e_support import Scenario, jobdef, want
from tests.unit.chart.helmtool import tool_binary

from databuild.testing._controlplane import SIMULATED_LOG_LINES

DATE = "2025-01-01"
KUBECTL = (str(tool_binary("kubectl")), "--kubeconfig")


def _cli(sc: Scenario, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "databuild.cli.main",
        "--kubeconfig",
        str(sc.cluster.kubeconfig),
        "-n",
        sc.namespace,
        *argv,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_logs_of_a_failed_build_read_through_databuild_logs(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    fail = {"kwok.databuild.dev/outcome": "fail"}
    sc.apply(
        jobdef("broken", ["broken/date={date}"], labels=fail, retry={"limit": 1}),
        jobdef("fine", ["fine/date={date}"]),
        want("bad", [f"broken/date={DATE}"]),
        want("good", [f"fine/date={DATE}"]),
    )
    sc.wait_for_want("bad", "Failed")
    sc.wait_for_want("good", "Successful")  # the healthy neighbour built

    by_ref = _cli(sc, "logs", f"broken/date={DATE}")
    assert by_ref.returncode == 0, by_ref.stderr
    assert by_ref.stdout.splitlines() == list(SIMULATED_LOG_LINES)

    every = _cli(sc, "logs", "bad", "--failed", "--all-attempts", "--tail", "1")
    assert every.returncode == 0, every.stderr
    assert "attempt 1 (Failed) main" in every.stdout
    assert "attempt 2 (Failed) main" in every.stdout  # retry limit 1: two attempts
    assert every.stdout.count(SIMULATED_LOG_LINES[-1]) == 2
    assert SIMULATED_LOG_LINES[0] not in every.stdout  # --tail 1

    status = _cli(sc, "status", "bad")
    assert f"databuild logs -n {sc.namespace} " in status.stdout
    run = sc.partition(f"broken/date={DATE}")["status"]["jobRun"]
    assert f"logs: databuild logs -n {sc.namespace} {run} --failed" in status.stdout
    followed = _cli(sc, "logs", run, "-f")
    assert followed.returncode == 1  # the run Failed
    assert followed.stdout.count(SIMULATED_LOG_LINES[0]) == 1  # the last attempt only


def test_wait_on_a_want_applied_with_kubectl_exits_1_as_soon_as_it_fails(
    scenario: Scenario, tmp_path: Path
) -> None:
    sc = scenario
    sc.start_operator()
    # The failure comes after a few seconds, so `wait` is surely following by then.
    failing = {"kwok.databuild.dev/duration": "4s"}
    sc.apply(
        jobdef(
            "broken",
            ["broken/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
            annotations=failing,
            retry={"limit": 0},
        ),
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "120s"}),
    )
    manifest = tmp_path / "wants.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                want("gitops-bad", [f"broken/date={DATE}"]),
                want("gitops-slow", [f"slow/date={DATE}"]),
            ]
        )
    )
    kubeconfig = str(sc.cluster.kubeconfig)
    applied = subprocess.run(
        [*KUBECTL, kubeconfig, "apply", "-n", sc.namespace, "-f", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    started = time.monotonic()
    waited = _cli(sc, "wait", "gitops-bad", "gitops-slow", "--timeout", "100s")
    took = time.monotonic() - started
    assert waited.returncode == 1, waited.stderr
    assert took < 60, f"wait took {took:.0f}s: it should stop at the failure, not the slow build"
    assert "gitops-bad: Failed" in waited.stderr
    assert "Want gitops-bad   Failed" in waited.stdout
    assert "logs: databuild logs" in waited.stdout  # the hint under the failed run
    slow = sc.get("Want", "gitops-slow")
    assert slow is not None and slow["status"].get("state") != "Successful"
    # The healthy neighbour keeps building meanwhile: its run is Running.
    assert _cli(sc, "status", "gitops-slow").stdout.count("Running") >= 1
