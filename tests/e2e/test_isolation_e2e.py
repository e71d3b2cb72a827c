"""No object stops the operator or holds up the others, on the real control plane.

Each test puts one bad object (or a hostile setting around it) into its namespace and
runs ONE operator serving that namespace and a healthy neighbour, which must finish its
builds while the bad object is there. The operator is never restarted, except in the
test about a restart.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing import NODE_NAME
from databuild.testing.demo import KubeError, request, wait_until
from databuild.testing.kube import Kube

pytestmark = pytest.mark.e2e

DAY = "2025-01-01"


def _start(sc: Scenario, neighbour: Scenario, *extra: str) -> None:
    sc.start_operator(*extra, also=[neighbour.namespace])
    neighbour.operators = sc.operators  # its describe() shows the same operator log


def _healthy_builds(neighbour: Scenario, tag: str, timeout: float = 60) -> None:
    """The neighbour builds a two-step chain while the bad object is present."""
    neighbour.apply(
        jobdef(f"raw-{tag}", [f"raw-{tag}/date={{date}}"]),
        jobdef(f"daily-{tag}", [f"daily-{tag}/date={{date}}"], [f"raw-{tag}/date={{date}}"]),
        want(f"healthy-{tag}", [f"daily-{tag}/date={DAY}"]),
    )
    neighbour.wait_for_want(f"healthy-{tag}", "Successful", timeout=timeout)


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def test_a_termination_message_that_breaks_the_parser_fails_only_its_build(
    scenario: Scenario, neighbour: Scenario
) -> None:
    sc = scenario
    _start(sc, neighbour)
    deep = '{"missingPartitions":' + "[" * 3000 + "]" * 3000 + "}"
    sc.apply(
        jobdef(
            "deep",
            ["deep/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
            annotations={"kwok.databuild.dev/message": deep},
            retry={"limit": 0},
        ),
        want("hostile", [f"deep/date={DAY}"]),
    )
    sc.wait_for_want("hostile", "Failed", timeout=60)
    [run] = sc.list("JobRun")
    assert run["status"]["state"] == "Failed"
    assert run["status"]["message"]  # why, in the JobRun's own status
    _healthy_builds(neighbour, "a")
    assert sc.operator.alive, sc.operator.log_tail()


def test_a_want_the_planner_cannot_plan_is_stalled_and_the_rest_builds(
    scenario: Scenario, neighbour: Scenario
) -> None:
    sc = scenario
    _start(sc, neighbour)
    sc.apply(jobdef("daily", ["daily/date={date}"]))
    try:
        sc.apply(want("hostile", [f"daily/date={DAY}"], ttlSeconds=10**15))
    except KubeError as error:
        # A schema with a maximum refuses it outright: also the object's own error.
        assert error.status == 422 and "ttlSeconds" in str(error)
    else:

        def stalled() -> bool:
            w = sc.get("Want", "hostile")
            cond = _condition(w, "Stalled")
            state = ((w or {}).get("status") or {}).get("state")
            return state in ("Failed", "Successful") or bool(cond and cond["status"] == "True")

        wait_until(stalled, timeout=30, what="the hostile Want to say why", describe=sc.describe)
    sc.apply(want("same-namespace", ["daily/date=2025-01-02"]))
    sc.wait_for_want("same-namespace", "Successful")
    _healthy_builds(neighbour, "b")
    assert sc.operator.alive, sc.operator.log_tail()


def _refuse_status_writes(kube: Kube, namespace: str, want_name: str) -> str:
    """A ValidatingAdmissionPolicy refusing (422) every status write of one Want."""
    name = f"refuse-{uuid.uuid4().hex[:8]}"
    base = "/apis/admissionregistration.k8s.io/v1"
    request(
        kube,
        "POST",
        f"{base}/validatingadmissionpolicies",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["databuild.dev"],
                            "apiVersions": ["*"],
                            "operations": ["UPDATE"],
                            "resources": ["wants/status"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"object.metadata.name != '{want_name}'",
                        "message": "this Want's status is refused by policy",
                        "reason": "Invalid",
                    }
                ],
            },
        },
    )
    request(
        kube,
        "POST",
        f"{base}/validatingadmissionpolicybindings",
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
                },
            },
        },
    )
    return name


def _drop_policy(kube: Kube, name: str) -> None:
    base = "/apis/admissionregistration.k8s.io/v1"
    for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
        try:
            request(kube, "DELETE", f"{base}/{kind}/{name}")
        except KubeError as error:
            if error.status != 404:
                raise


def test_a_status_write_the_api_server_refuses_stalls_only_that_want(
    scenario: Scenario, neighbour: Scenario, kube: Kube
) -> None:
    sc = scenario
    sc.apply(jobdef("daily", ["daily/date={date}"]), want("refused", [f"daily/date={DAY}"]))
    policy = _refuse_status_writes(kube, sc.namespace, "refused")
    try:
        path = f"/apis/databuild.dev/v1alpha1/namespaces/{sc.namespace}/wants/refused/status"

        def refused() -> bool:
            try:
                request(
                    kube,
                    "PATCH",
                    path,
                    {"status": {"observedGeneration": 0}},
                    content_type="application/merge-patch+json",
                )
            except KubeError as error:
                return error.status == 422
            return False

        wait_until(refused, timeout=30, what="the policy to be in force")
        _start(sc, neighbour)
        sc.apply(want("same-namespace", ["daily/date=2025-01-02"]))
        sc.wait_for_want("same-namespace", "Successful")
        event = sc.wait_for_event("refused", "WriteRefused", timeout=30)
        assert event["type"] == "Warning"
        assert "refused by policy" in event["message"]
        _healthy_builds(neighbour, "c")
        # The refused Want's own build went on too: its partition is Live.
        wait_until(
            lambda: sc.partition(f"daily/date={DAY}")["status"].get("state") == "Live",
            timeout=30,
            what="the refused Want's partition to be built",
            describe=sc.describe,
        )
        assert sc.operator.alive, sc.operator.log_tail()
    finally:
        _drop_policy(kube, policy)


def _jobs_of(sc: Scenario, run: str) -> list[dict[str, Any]]:
    return [
        j
        for j in sc.list("Job")
        if (j["metadata"].get("labels") or {}).get("databuild.dev/job-run") == run
    ]


@pytest.mark.parametrize("deleted_by", ["user", "ttl"])
def test_a_finished_job_deleted_while_the_operator_is_down_is_not_run_again(
    scenario: Scenario, neighbour: Scenario, kube: Kube, deleted_by: str
) -> None:
    sc = scenario
    # "ttl": the TTL controller deletes the finished Job (foreground: pods first) 2 s after
    # it finished; "user": someone deletes it (background).
    ttl = ["--job-ttl-seconds", "2"] if deleted_by == "ttl" else []
    _start(sc, neighbour, *ttl)
    sc.apply(
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "3s"}),
        want("w", [f"slow/date={DAY}"]),
    )

    def running_job() -> dict[str, Any] | None:
        runs = sc.list("JobRun")
        if not runs or runs[0].get("status", {}).get("state") != "Running":
            return None
        jobs = _jobs_of(sc, runs[0]["metadata"]["name"])
        return jobs[0] if jobs else None

    job = wait_until(running_job, timeout=30, what="a running batch Job", describe=sc.describe)
    assert job["metadata"]["finalizers"] == ["databuild.dev/outcome"]
    run_name = job["metadata"]["labels"]["databuild.dev/job-run"]
    sc.operator.kill()
    job_name = job["metadata"]["name"]

    def finished() -> bool:
        current = sc.get("Job", job_name) or {}
        conditions = (current.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)

    wait_until(finished, timeout=30, what="the batch Job to complete without the operator")
    if deleted_by == "user":
        path = f"/apis/batch/v1/namespaces/{sc.namespace}/jobs/{job_name}"
        request(kube, "DELETE", path, {"kind": "DeleteOptions", "propagationPolicy": "Background"})

    def held() -> dict[str, Any] | None:
        current = sc.get("Job", job_name)
        return current if current and current["metadata"].get("deletionTimestamp") else None

    # The finalizer holds the deleted Job until its outcome is recorded.
    wait_until(held, timeout=30, what="the Job to be deleted and held by the finalizer")
    time.sleep(1)
    assert sc.get("Job", job_name) is not None
    assert sc.get("JobRun", run_name)["status"]["state"] == "Running"  # not recorded yet

    sc.start_operator(*ttl, also=[neighbour.namespace])
    sc.wait_for_want("w", "Successful", timeout=60)
    run = sc.get("JobRun", run_name)
    assert run is not None
    assert (run["status"]["state"], run["status"]["attempt"]) == ("Succeeded", 1)
    wait_until(
        lambda: sc.get("Job", job_name) is None,
        timeout=30,
        what="the deleted Job to go once its outcome is recorded",
        describe=sc.describe,
    )
    # Had the build run again, the restarted operator would have created a batch Job.
    time.sleep(2)
    creates = sc.operator.metrics().get('databuild_api_writes_total{verb="create",kind="Job"}')
    assert not creates, f"the restarted operator created {creates} batch Job(s)"
    assert [r["status"]["attempt"] for r in sc.list("JobRun")] == [1]
    _healthy_builds(neighbour, "d")


def test_a_pod_refused_by_a_resource_quota_stalls_the_run_until_the_quota_goes(
    scenario: Scenario, neighbour: Scenario, kube: Kube
) -> None:
    sc = scenario
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "no-pods"},
            "spec": {"hard": {"pods": "0"}},
        },
        sc.namespace,
    )
    _start(sc, neighbour)
    sc.apply(jobdef("daily", ["daily/date={date}"]), want("w", [f"daily/date={DAY}"]))

    def stalled() -> dict[str, Any] | None:
        runs = sc.list("JobRun")
        cond = _condition(runs[0] if runs else None, "Stalled")
        return cond if cond and cond["status"] == "True" else None

    cond = wait_until(stalled, timeout=60, what="a Stalled JobRun", describe=sc.describe)
    assert cond["reason"] == "FailedCreate"
    assert "quota" in cond["message"]
    [run] = sc.list("JobRun")
    assert run["status"]["state"] == "Running"
    event = sc.wait_for_event(run["metadata"]["name"], "FailedCreate")
    assert event["type"] == "Warning"
    _healthy_builds(neighbour, "e")
    kube.delete("ResourceQuota", sc.namespace, "no-pods")
    sc.wait_for_want("w", "Successful", timeout=120)  # the job controller's backoff
    [run] = sc.list("JobRun")
    assert _condition(run, "Stalled") is None
    assert sc.operator.alive, sc.operator.log_tail()


def test_finished_runs_past_their_retention_go_with_their_derived_wants(
    scenario: Scenario, neighbour: Scenario
) -> None:
    sc = scenario
    _start(sc, neighbour, "--job-run-retention-seconds", "5")
    miss = json.dumps({"missingPartitions": [f"raw/date={DAY}"]})
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        # Reports raw missing on every attempt: once is a dependency miss, the second
        # time (raw is Live by then) a failure.
        jobdef(
            "report",
            ["report/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
            annotations={"kwok.databuild.dev/message": miss},
            retry={"limit": 0},
        ),
        want("w", [f"report/date={DAY}"]),
    )
    sc.wait_for_want("w", "Failed", timeout=60)
    runs = {r["spec"]["jobDefinition"]: r["metadata"]["name"] for r in sc.list("JobRun")}
    assert set(runs) == {"raw", "report"}
    derived = [w for w in sc.list("Want") if (w["spec"].get("source") or {}).get("jobRun")]
    assert derived, "the dependency miss created a Want owned by the run"
    _healthy_builds(neighbour, "f")

    def retired() -> bool:
        return sc.get("JobRun", runs["report"]) is None

    wait_until(retired, timeout=60, what="the failed JobRun to be retired", describe=sc.describe)
    wait_until(
        lambda: all(sc.get("Want", w["metadata"]["name"]) is None for w in derived),
        timeout=60,
        what="its derived Want to go with it (ownerReference)",
        describe=sc.describe,
    )
    # raw's run built a Live partition: its build of record stays.
    assert sc.get("JobRun", runs["raw"]) is not None
    assert sc.partition(f"raw/date={DAY}")["status"]["state"] == "Live"
    assert sc.get("Want", "w") is not None  # a user's Want is never deleted
    assert sc.operator.alive, sc.operator.log_tail()


def test_a_pod_no_node_can_take_stalls_the_run_until_a_node_fits(
    scenario: Scenario, neighbour: Scenario, kube: Kube
) -> None:
    sc = scenario
    label = f"databuild-test-{uuid.uuid4().hex[:8]}"
    _start(sc, neighbour)
    job = jobdef("daily", ["daily/date={date}"])
    job["spec"]["template"]["spec"]["nodeSelector"] = {label: "yes"}
    sc.apply(job, want("w", [f"daily/date={DAY}"]))

    def stalled() -> dict[str, Any] | None:
        runs = sc.list("JobRun")
        cond = _condition(runs[0] if runs else None, "Stalled")
        return cond if cond and cond["status"] == "True" else None

    cond = wait_until(stalled, timeout=60, what="a Stalled JobRun", describe=sc.describe)
    assert cond["reason"] == "Unschedulable"
    assert "node" in cond["message"]
    [run] = sc.list("JobRun")
    sc.wait_for_event(run["metadata"]["name"], "Unschedulable")
    _healthy_builds(neighbour, "g")
    # The simulated node (a real node, where one runs, is tainted for other pods).
    [node] = [n for n in kube.list("Node") if n["metadata"]["name"] == NODE_NAME]
    name = node["metadata"]["name"]
    kube.patch("Node", None, name, {"metadata": {"labels": {label: "yes"}}})
    try:
        sc.wait_for_want("w", "Successful", timeout=90)
        [run] = sc.list("JobRun")
        assert _condition(run, "Stalled") is None
    finally:
        kube.patch("Node", None, name, {"metadata": {"labels": {label: None}}})
    assert sc.operator.alive, sc.operator.log_tail()
