"""The ``databuild`` command against the real control plane and a running operator.

The CLI runs as a subprocess, the way users run it, so exit codes are the real ones.
kwok simulates the pods (DESIGN.md section 6).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from databuild.testing.demo import OperatorProcess, create_object

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

DATE = "2025-01-01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """``databuild`` bound to the test cluster and namespace."""

    kubeconfig: Path
    namespace: str
    kube: Kube
    operator: OperatorProcess

    def __call__(self, *argv: str, timeout: float = 120) -> Run:
        cmd = [
            sys.executable,
            "-m",
            "databuild.cli.main",
            "--kubeconfig",
            str(self.kubeconfig),
            "-n",
            self.namespace,
            *argv,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def apply(self, *docs: dict[str, Any]) -> None:
        for doc in docs:
            create_object(self.kube, doc, self.namespace)

    def explain_failure(self, run: Run) -> str:
        return (
            f"exit {run.code}\nstdout:\n{run.out}\nstderr:\n{run.err}\n"
            f"--- operator log ---\n{self.operator.log_tail(40)}"
        )


@pytest.fixture
def databuild(
    control_plane: Cluster, kube: Kube, namespace: str, crds: None, tmp_path: Path
) -> Iterator[Cli]:
    """A running operator for the test's namespace, and the CLI pointed at it."""
    operator = OperatorProcess(
        kubeconfig=Path(control_plane.kubeconfig),
        namespaces=[namespace],
        log_path=tmp_path / "operator.log",
        metrics_port=_free_port(),
        extra_args=["--lease-name", f"databuild-{namespace}"[:63], "--lease-duration-seconds", "4"],
    ).start()
    try:
        yield Cli(Path(control_plane.kubeconfig), namespace, kube, operator)
    finally:
        operator.stop()


def jobdef(
    name: str, outputs: list[str], inputs: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    labels = extra.pop("labels", {})
    annotations = extra.pop("annotations", {})
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {
            "outputs": outputs,
            "inputs": inputs or [],
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {"containers": [{"name": "main", "image": "example.invalid/job:1"}]},
            },
            **extra,
        },
    }


def test_want_wait_successful_then_status_explain_and_graph(databuild: Cli) -> None:
    databuild.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
    )
    ref = f"clean/date={DATE}"
    run = databuild("want", ref, "--name", "w", "--wait", "--timeout", "90s", "-o", "json")
    assert run.code == 0, databuild.explain_failure(run)
    final = run.json()
    assert final["state"] == "Successful"
    assert final["progress"] == "1/1"
    [part] = final["partitions"]
    assert (part["ref"], part["state"]) == (ref, "Live")
    assert part["jobRuns"][0]["state"] == "Succeeded"
    assert "w: " in run.err  # progress went to stderr

    status = databuild("status", "w")
    assert status.code == 0
    lines = status.out.splitlines()
    assert lines[0].startswith("Want w   Successful   1/1 live")
    assert lines[1].startswith(f"└── Partition {ref}   Live")
    assert "JobRun " in lines[2] and "Succeeded   clean   attempt 1" in lines[2]

    explained = databuild("explain", ref, "-o", "json")
    assert explained.code == 0, databuild.explain_failure(explained)
    data = explained.json()
    assert data["state"] == "Live"
    assert data["builtBy"]["jobDefinition"] == "clean"
    assert data["builtBy"]["state"] == "Succeeded"
    [attempt] = data["builtBy"]["attempts"]
    assert attempt["state"] == "Succeeded"
    assert attempt["job"] == f"{data['builtBy']['name']}-1"
    assert data["inputs"] == [
        {"ref": f"raw/date={DATE}", "state": "Live", "builtBy": data["inputs"][0]["builtBy"]}
    ]
    assert data["inputs"][0]["builtBy"]
    text = databuild("explain", ref).out
    assert f"Built by:   JobRun {data['builtBy']['name']} (JobDefinition clean), Succeeded" in text
    assert f"raw/date={DATE}   Live <- " in text

    mermaid = databuild("graph", "w")
    assert mermaid.code == 0
    assert mermaid.out.startswith("flowchart LR\n")
    assert f'p0["{ref}<br/>Live"]:::live' in mermaid.out
    assert "p1 -->|clean| p0" in mermaid.out
    dot = databuild("graph", ref, "-o", "dot")
    assert f'"raw/date={DATE}" -> "{ref}" [label="clean"];' in dot.out


def test_want_wait_failed_exits_1_and_retry_asks_again(databuild: Cli) -> None:
    databuild.apply(
        jobdef("broken", ["broken/date={date}"], labels={"kwok.databuild.dev/outcome": "fail"})
    )
    run = databuild("want", f"broken/date={DATE}", "--name", "bad", "--wait", "--timeout", "90s")
    assert run.code == 1, databuild.explain_failure(run)
    assert "Want bad   Failed" in run.out
    again = databuild("retry", "bad", "-o", "json")
    assert again.code == 0, databuild.explain_failure(again)
    created = again.json()
    assert created["metadata"]["name"].startswith("bad-retry-")
    assert created["metadata"]["labels"]["databuild.dev/retry-of"] == "bad"
    assert created["spec"]["partitions"] == [f"broken/date={DATE}"]
    retry_name = created["metadata"]["name"]
    # The retry rebuilds the Failed partition: a second JobRun, which fails again.
    deadline = time.monotonic() + 90
    status = databuild("status", retry_name, "-o", "json").json()
    while status["state"] not in ("Successful", "Failed", "Expired"):
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
        status = databuild("status", retry_name, "-o", "json").json()
    assert status["state"] == "Failed"
    runs = status["partitions"][0]["jobRuns"]
    assert len(runs) == 2
    assert [r["state"] for r in runs] == ["Failed", "Failed"]
    # A Want that is not Failed or Expired cannot be retried.
    databuild.apply(jobdef("fine", ["fine/date={date}"]))
    ok = databuild("want", f"fine/date={DATE}", "--name", "ok", "--wait", "--timeout", "90s")
    assert ok.code == 0, databuild.explain_failure(ok)
    refused = databuild("retry", "ok")
    assert refused.code == 1
    assert "only a Failed or Expired Want" in refused.err


def test_retries_show_as_attempts(databuild: Cli) -> None:
    databuild.apply(
        jobdef(
            "flaky",
            ["flaky/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            retry={"limit": 2, "backoffSeconds": 0},
        )
    )
    run = databuild("want", f"flaky/date={DATE}", "--wait", "--timeout", "90s")
    assert run.code == 0, databuild.explain_failure(run)
    data = databuild("explain", f"flaky/date={DATE}", "-o", "json").json()
    attempts = data["builtBy"]["attempts"]
    assert [a["state"] for a in attempts] == ["Failed", "Succeeded"]
    assert data["builtBy"]["failedAttempts"] == 1


def test_want_wait_timeout_and_expiry_exit_3(databuild: Cli) -> None:
    databuild.apply(
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "60s"})
    )
    timed_out = databuild("want", f"slow/date={DATE}", "--wait", "--timeout", "3s")
    assert timed_out.code == 3, databuild.explain_failure(timed_out)
    assert "timed out" in timed_out.err
    expired = databuild("want", "slow/date=2025-01-02", "--ttl", "2s", "--wait", "--timeout", "60s")
    assert expired.code == 3, databuild.explain_failure(expired)
    assert "Expired" in expired.out


def test_usage_and_not_found_exit_codes(databuild: Cli) -> None:
    assert databuild("want", "not a ref").code == 2
    assert databuild("status", "no-such-want").code == 4
    assert databuild("explain", "nothing/date=1").code == 4
