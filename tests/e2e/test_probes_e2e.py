"""A probe on the real control plane: "not yet" once, then found, feeds a downstream build.

kwok simulates the pods (DESIGN.md section 6): with the ``fail-first`` outcome and exit
code 75, the probe's first attempt says "not yet" and the second finds the data.
"""

from __future__ import annotations

from typing import Any

from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing.demo import wait_until


def test_a_probe_not_yet_once_then_found_feeds_a_downstream_build(scenario: Scenario) -> None:
    sc = scenario
    sc.apply(
        jobdef(
            "landed",
            ["landed/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            annotations={"kwok.databuild.dev/exit-code": "75"},
            probe={"intervalSeconds": 6},
        ),
        jobdef("daily", ["daily/date={date}"], ["landed/date={date}"]),
        want("w", ["daily/date=2025-01-01"]),
    )
    sc.start_operator()

    def waiting() -> dict[str, Any] | None:
        runs = sc.runs_of("landed")
        status = runs[0].get("status", {}) if runs else {}
        return runs[0] if status.get("reason") == "WaitingForExternalData" else None

    # Between the two looks the run waits, and says so: it did not fail.
    run = wait_until(waiting, timeout=60, what="WaitingForExternalData", describe=sc.describe)
    assert run["status"]["state"] == "Queued"
    assert str(run["status"]["message"]).startswith("waiting for external data")
    assert sc.get("Want", "w")["status"]["state"] not in ("Failed", "Expired")  # type: ignore[index]
    assert not [e for e in sc.events(run["metadata"]["name"]) if e["type"] == "Warning"]
    sc.wait_for_want("w", "Successful", timeout=90)
    [probe] = sc.runs_of("landed")
    # Two looks, no retry spent (the default retry limit is 0: a failure would be final).
    assert probe["status"]["state"] == "Succeeded"
    assert probe["status"]["attempt"] == 2
    assert probe["status"].get("failedAttempts", 0) == 0
    assert sc.partition("landed/date=2025-01-01")["status"]["state"] == "Live"
    assert sc.partition("daily/date=2025-01-01")["status"]["inputs"] == ["landed/date=2025-01-01"]
