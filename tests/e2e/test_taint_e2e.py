"""``databuild taint`` (a TaintRequest) end to end: the operator taints along lineage
and rebuilds.

The graph, for two dates::

    raw ── clean ── agg ──┐
      └─── other ─────────┴── report (runs 30 s: still building when the taint comes)

A Want for ``report/date=D1`` is still building (its job runs for a while) when
``clean/date=D1`` is tainted; a Want for ``agg/date=D2`` is already Successful when
``clean/date=D2`` is tainted. Expected: exactly clean and agg go Tainted on both
dates; the active Want rebuilds clean/D1 and agg/D1 once each and report/D1 once (its
running build read the bad data, so it is cancelled); raw and other are never rebuilt;
the Successful Want stays Successful and nothing is rebuilt for D2 until ``databuild
retry`` asks again. The Build Event Log and the Kubernetes Events tell the story.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.adapters.bel import open_store
from databuild.testing.demo import wait_until

D1 = "2025-01-01"
D2 = "2025-01-02"
REPORT_SECONDS = 30  # long enough to still run under a loaded machine


def _cli(sc: Scenario, bel_url: str, *argv: str) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "databuild.cli.main",
        "--kubeconfig",
        str(sc.cluster.kubeconfig),
        "-n",
        sc.namespace,
        "--bel-url",
        bel_url,
        *argv,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _runs_by_ref(sc: Scenario) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for run in sc.list("JobRun"):
        for ref in run["spec"]["partitions"]:
            found.setdefault(ref, []).append(run)
    return found


def _batch_jobs_by_run(sc: Scenario) -> Counter[str]:
    return Counter(
        j["metadata"]["labels"]["databuild.dev/job-run"]
        for j in sc.list("Job")
        if "databuild.dev/job-run" in (j["metadata"].get("labels") or {})
    )


def _state(sc: Scenario, ref: str) -> str:
    return str(sc.partition(ref)["status"]["state"])


def test_taint_rebuilds_what_an_active_want_needs_and_nothing_else(
    scenario: Scenario, tmp_path: Path
) -> None:
    sc = scenario
    bel_url = f"sqlite:///{tmp_path / 'bel' / 'bel.db'}"
    sc.start_operator("--bel-url", bel_url)
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        jobdef("agg", ["agg/date={date}"], ["clean/date={date}"]),
        jobdef("other", ["other/date={date}"], ["raw/date={date}"]),
        jobdef(
            "report",
            ["report/date={date}"],
            ["agg/date={date}", "other/date={date}"],
            annotations={"kwok.databuild.dev/duration": f"{REPORT_SECONDS}s"},
        ),
        want("done", [f"agg/date={D2}"]),
        want("report", [f"report/date={D1}"]),
    )
    sc.wait_for_want("done", "Successful")

    def report_running() -> dict[str, Any] | None:
        runs = _runs_by_ref(sc).get(f"report/date={D1}", [])
        states = [r.get("status", {}).get("state") for r in runs]
        return runs[0] if states == ["Running"] else None

    first_report = wait_until(
        report_running, timeout=60, what="report's job to run", describe=sc.describe
    )
    for kind in ("raw", "clean", "agg", "other"):
        assert _state(sc, f"{kind}/date={D1}") == "Live"
    assert sc.get("Want", "report")["status"]["state"] == "Building"

    code, out = _cli(sc, bel_url, "taint", f"clean/date={D1}", "--reason", "bad join", "-o", "json")
    assert code == 0, out
    # What is (being) built from it: agg is Live, report is being built from agg.
    assert json.loads(out)["downstream"] == [f"agg/date={D1}", f"report/date={D1}"]
    code, out = _cli(
        sc, bel_url, "taint", f"clean/date={D2}", "--reason", "bad join",
        "--wait", "--timeout", "45s", "-o", "json",
    )  # fmt: skip
    assert code == 0, out
    # --wait returns once the operator applied the request: it says what it tainted.
    assert json.loads(out)["tainted"] == [f"clean/date={D2}"]

    # The request is acted on while report's first build is still running.
    def tainted() -> bool:
        return all(_state(sc, f"{k}/date={D2}") == "Tainted" for k in ("clean", "agg"))

    wait_until(tainted, timeout=30, what="clean and agg of D2 to be Tainted", describe=sc.describe)

    def cancelled() -> bool:
        run = sc.get("JobRun", first_report["metadata"]["name"])
        return run is not None and run["status"]["state"] == "Cancelled"

    # Cancelled (not Succeeded): the taint was planned while its job was still running.
    wait_until(cancelled, timeout=10, what="report's first run to be cancelled")

    sc.wait_for_want("report", "Successful", timeout=120)
    assert sc.get("Want", "done")["status"]["state"] == "Successful"

    # Final states: D1 rebuilt; D2's tainted partitions wait for a Want that needs them.
    expected = {
        f"raw/date={D1}": "Live",
        f"clean/date={D1}": "Live",
        f"agg/date={D1}": "Live",
        f"other/date={D1}": "Live",
        f"report/date={D1}": "Live",
        f"raw/date={D2}": "Live",
        f"clean/date={D2}": "Tainted",
        f"agg/date={D2}": "Tainted",
    }
    assert {p["spec"]["ref"]: p["status"]["state"] for p in sc.list("Partition")} == expected

    # Each tainted partition is built again exactly once; the others never.
    runs = _runs_by_ref(sc)
    assert {ref: len(rs) for ref, rs in runs.items()} == {
        f"raw/date={D1}": 1,
        f"clean/date={D1}": 2,
        f"agg/date={D1}": 2,
        f"other/date={D1}": 1,
        f"report/date={D1}": 2,
        f"raw/date={D2}": 1,
        f"clean/date={D2}": 1,
        f"agg/date={D2}": 1,
    }
    jobs = _batch_jobs_by_run(sc)
    for ref, rs in runs.items():
        for run in rs:
            name = run["metadata"]["name"]
            if run["status"]["state"] == "Cancelled":
                assert name not in jobs, (ref, name)  # its batch Job was deleted
            else:
                assert run["status"]["state"] == "Succeeded", run
                assert jobs[name] == 1, (ref, name)  # one attempt each, no duplicate

    # The Kubernetes Events say why (they are posted after the status writes).
    def has_event(name: str, reason: str) -> bool:
        return reason in [e["reason"] for e in sc.events(name)]

    for name, reason in (
        (sc.partition(f"clean/date={D1}")["metadata"]["name"], "TaintRequested"),
        (sc.partition(f"agg/date={D1}")["metadata"]["name"], "UpstreamTainted"),
        (first_report["metadata"]["name"], "InputTainted"),
    ):
        wait_until(
            functools.partial(has_event, name, reason), timeout=30, what=f"{reason} on {name}"
        )

    # The Build Event Log has exactly one taint per tainted partition, naming the input.
    names = {p["spec"]["ref"]: p["metadata"]["name"] for p in sc.list("Partition")}
    refs = {name: ref for ref, name in names.items()}
    store = open_store(bel_url, migrate=False)
    try:

        def logged() -> list[Any] | None:
            events = [
                s.event
                for s in store.query()
                if s.event.kind == "Partition" and s.event.to_state == "Tainted"
            ]
            return events if len(events) >= 4 else None

        events = wait_until(logged, timeout=30, what="the BEL to record the taints")
        assert sorted((refs[e.name], e.reason) for e in events) == [
            (f"agg/date={D1}", "UpstreamTainted"),
            (f"agg/date={D2}", "UpstreamTainted"),
            (f"clean/date={D1}", "TaintRequested"),
            (f"clean/date={D2}", "TaintRequested"),
        ]
        upstream = next(e for e in events if refs[e.name] == f"agg/date={D1}")
        assert upstream.details["input"] == f"clean/date={D1}"
        assert upstream.details["message"] == f"built from tainted clean/date={D1}: bad join"
    finally:
        store.close()

    code, out = _cli(sc, bel_url, "events", "--reason", "TaintRequested", "-o", "json")
    assert code == 0, out
    assert sorted(e["name"] for e in json.loads(out)) == sorted(
        names[f"clean/date={d}"] for d in (D1, D2)
    )

    # The requests stay on the Partitions, but the rebuilt data is newer: a while later
    # nothing has been tainted or rebuilt again.
    time.sleep(3)
    assert {ref: len(rs) for ref, rs in _runs_by_ref(sc).items()} == {
        ref: len(rs) for ref, rs in runs.items()
    }
    assert _state(sc, f"clean/date={D1}") == "Live"

    # A Successful Want stays Successful; `databuild retry` asks again for its
    # partitions, and the new Want rebuilds the tainted ones (raw is not rebuilt).
    code, out = _cli(sc, bel_url, "retry", "done", "--name", "done-again", "--wait")
    assert code == 0, out
    assert {ref: len(rs) for ref, rs in _runs_by_ref(sc).items() if D2 in ref} == {
        f"raw/date={D2}": 1,
        f"clean/date={D2}": 2,
        f"agg/date={D2}": 2,
    }
    assert sc.get("Want", "done")["status"]["state"] == "Successful"
