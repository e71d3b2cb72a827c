"""kstatus, the library Flux's `wait: true` uses, on every state of every kind.

One namespace holds a Want, JobDefinition, Partition and JobRun in each state of the
health table in docs/gitops.md, and a Schedule in each state a GitOps user meets; the
real ``sigs.k8s.io/cli-utils`` kstatus (the tool ``make flux`` builds) reads the live
objects, and its verdict must be the table's. For Wants and Schedules the documented
Argo CD health checks (Lua) must give the table's Argo CD column on the same live objects.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e_support import Scenario, jobdef
from tests.manifests import want
from tests.unit.chart.test_gitops import HEALTH_CHECKS, argocd_health

from databuild.adapters.labels import TAINT_ANNOTATION, TAINT_REQUESTED_AT_ANNOTATION
from databuild.testing._flux import kstatus
from databuild.testing.demo import delete_object, request, wait_until
from databuild.testing.outcomes import simulated

DOCS = Path(__file__).resolve().parents[2] / "docs" / "gitops.md"
D1, D2, D3 = "2025-01-01", "2025-01-02", "2025-01-03"
LONG = "600s"  # still running when the test looks, however loaded the machine
# Pending without a blocker lasts only until the same plan assigns a JobRun, so no
# live object shows it for long enough to be read; the Lua unit tests cover it.
# A Schedule catches up on due ticks within one pass; the Lua unit tests cover that too.
TRANSIENT = {("Want", "Pending"), ("Schedule", "CatchingUp")}
KINDS = ("Want", "JobDefinition", "Partition", "JobRun", "Schedule")


def health_table() -> dict[tuple[str, str], tuple[str, str]]:
    """(kind, state label) -> (kstatus, Argo CD), from the table in docs/gitops.md."""
    text = DOCS.read_text()
    start = text.index("<!-- health-table")
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in text[start:].splitlines()[3:]:
        if not line.startswith("|"):
            break
        kind, states, _conditions, verdict, argo = (c.strip() for c in line.strip("|").split("|"))
        for state in states.split(","):
            rows[kind, state.strip()] = (verdict, argo)
    assert rows, f"no health table in {DOCS}"
    return rows


def label_of(obj: dict[str, Any]) -> str:
    """The health table's state label for a live object."""
    status = obj.get("status") or {}
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    kind = obj["kind"]
    if kind == "JobDefinition":
        return "valid" if conditions.get("Ready") == "True" else "invalid"
    generation = obj["metadata"].get("generation")
    if kind in ("Want", "Schedule") and status.get("observedGeneration") != generation:
        return "not yet observed"
    if kind == "Schedule":
        # A Schedule's state is the reason of its Ready condition.
        [ready] = [c for c in status["conditions"] if c["type"] == "Ready"]
        return str(ready["reason"])
    # Before their first status write a Partition is Missing and a JobRun Queued.
    state = str(status.get("state") or ("Queued" if kind == "JobRun" else "Missing"))
    if kind == "Want" and state == "Pending" and conditions.get("Stalled") == "True":
        return "waiting for a JobDefinition"
    return state


def schedule(name: str, **spec: Any) -> dict[str, Any]:
    """A Schedule."""
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name},
        "spec": spec,
    }


def _objects(sc: Scenario, kind: str) -> list[dict[str, Any]]:
    return [{**o, "kind": kind, "apiVersion": "databuild.dev/v1alpha1"} for o in sc.list(kind)]


def test_kstatus_of_every_state_is_the_documented_one(scenario: Scenario) -> None:
    sc = scenario
    table = health_table()
    checked: dict[tuple[str, str], str] = {}

    def check(objects: list[dict[str, Any]]) -> None:
        verdicts = kstatus(objects)
        assert [v.name for v in verdicts] == [o["metadata"]["name"] for o in objects]
        wrong = []
        for obj, verdict in zip(objects, verdicts, strict=True):
            key = (obj["kind"], label_of(obj))
            assert key in table, f"the health table has no row for {key}"
            expected, argo = table[key]
            if verdict.status != expected:
                wrong.append(
                    f"{key} {obj['metadata']['name']}: kstatus says {verdict.status}"
                    f" ({verdict.message}), the table {expected}"
                )
            if obj["kind"] in HEALTH_CHECKS:
                health, message = argocd_health(obj)
                if health != argo:
                    wrong.append(f"{key}: Argo CD says {health} ({message}), the table {argo}")
            checked[key] = verdict.status
        assert not wrong, "\n".join(wrong) + "\n" + json.dumps(objects, indent=1)[:20000]

    # Before any operator has looked at it.
    sc.apply(
        want("unobserved", [f"quick/date={D2}"]),
        schedule("unobserved", schedule="@daily", partitions=["quick/date={date}"]),
    )
    check(_objects(sc, "Want") + _objects(sc, "Schedule"))

    sc.start_operator()
    slow = simulated(duration=LONG)
    sc.apply(
        jobdef("quick", ["quick/date={date}"]),
        jobdef("slow", ["slow/date={date}"], **slow),
        jobdef("down", ["down/date={date}"], ["slow/date={date}"]),
        jobdef("broken", ["broken/date={date}"], **simulated("fail", exit_code=3)),
        jobdef("limited", ["limited/date={date}"], maxConcurrentRuns=1, **slow),
        jobdef("invalid", ["invalid/date={date}"], ["raw/{nope}"]),
        want("ok", [f"quick/date={D1}"]),
        want("building", [f"slow/date={D1}"]),
        want("upstream", [f"down/date={D1}"]),
        want("failed", [f"broken/date={D1}"]),
        want("expired", [f"slow/date={D2}"], ttlSeconds=3),
        want("waiting", [f"nojob/date={D1}"]),
        want("queued", [f"limited/date={D1}", f"limited/date={D2}"]),
        want("cancelled", [f"slow/date={D3}"]),
        schedule("paused", schedule="@daily", partitions=["quick/date={date}"], suspend=True),
        schedule(
            "ended",
            schedule="@daily",
            partitions=["quick/date={date}"],
            startTime=f"{D1}T00:00:00Z",
            endTime=f"{D2}T12:00:00Z",
        ),
        # Valid for the API server, not for the operator: no such time zone.
        schedule(
            "invalid", schedule="@daily", partitions=["quick/date={date}"], timeZone="Mars/Olympus"
        ),
    )
    # A Want deleted while its partition builds: the JobRun is Cancelled and the
    # Partition goes back to Missing.
    wait_until(
        lambda: any(
            p["spec"]["ref"] == f"slow/date={D3}" and label_of(p) == "Building"
            for p in _objects(sc, "Partition")
        ),
        timeout=60,
        what=f"slow/date={D3} to be Building",
        describe=sc.describe,
    )
    delete_object(sc.kube, "Want", sc.namespace, "cancelled")
    sc.wait_for_want("ok", "Successful")
    sc.wait_for_want("failed", "Failed")
    sc.wait_for_want("expired", "Expired")
    sc.wait_for_want("upstream", "UpstreamBuilding")
    # A Live partition no live Want needs any more: tainting it leaves it Tainted.
    quick = sc.partition(f"quick/date={D1}")
    request(
        sc.kube,
        "PATCH",
        f"/apis/databuild.dev/v1alpha1/namespaces/{sc.namespace}/partitions/"
        f"{quick['metadata']['name']}",
        {
            "metadata": {
                "annotations": {
                    TAINT_ANNOTATION: "test",
                    TAINT_REQUESTED_AT_ANNOTATION: datetime.now(UTC).isoformat(),
                }
            }
        },
        content_type="application/merge-patch+json",
    )

    wanted = {
        ("Want", "Successful"),
        ("Want", "Building"),
        ("Want", "UpstreamBuilding"),
        ("Want", "Failed"),
        ("Want", "Expired"),
        ("Want", "waiting for a JobDefinition"),
        ("JobDefinition", "valid"),
        *(("Schedule", s) for s in ("UpToDate", "Ended", "Suspended", "InvalidSpec")),
        ("JobDefinition", "invalid"),
        *(("Partition", s) for s in ("Missing", "Building", "Live", "Failed", "Tainted")),
        *(
            ("JobRun", s)
            for s in ("Queued", "WaitingForUpstream", "Running", "Succeeded", "Failed", "Cancelled")
        ),
    }

    def every_state_present() -> bool:
        seen = {(o["kind"], label_of(o)) for kind in KINDS for o in _objects(sc, kind)}
        return wanted <= seen

    wait_until(every_state_present, timeout=90, what="every state", describe=sc.describe)
    for kind in KINDS:
        check(_objects(sc, kind))
    # A spec change the operator has not seen yet (it is stopped): a Successful Want
    # reads as in progress again until its status catches up with the generation.
    sc.operator.stop()
    request(
        sc.kube,
        "PATCH",
        f"/apis/databuild.dev/v1alpha1/namespaces/{sc.namespace}/wants/ok",
        {"spec": {"slaSeconds": 86400}},
        content_type="application/merge-patch+json",
    )
    [changed] = [w for w in _objects(sc, "Want") if w["metadata"]["name"] == "ok"]
    assert changed["metadata"]["generation"] == 2
    assert changed["status"]["state"] == "Successful"
    checked.pop(("Want", "not yet observed"))
    check([changed])
    assert checked[("Want", "not yet observed")] == "InProgress"
    missing = set(table) - set(checked) - TRANSIENT
    assert not missing, f"table rows no live object exercised: {sorted(missing)}"
    # The Partition generation is now observed (it used to stay 0 for ever).
    for part in _objects(sc, "Partition"):
        status = part.get("status") or {}
        if status.get("state"):
            assert status["observedGeneration"] == part["metadata"]["generation"], part
