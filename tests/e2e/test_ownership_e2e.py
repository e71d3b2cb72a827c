"""Forged batch Jobs change no JobRun: outcomes come only from what the JobRun controls.

``mallory`` may create Jobs and read JobRuns in the namespace (not more). While a real
build runs for a while, she makes two Jobs that finish at once: one carrying only our
labels and attempt annotation, one also controlled by the JobRun (its uid copied) but
under a name the operator never uses. The JobRun keeps running until its own Job ends,
and a neighbouring build in the same namespace succeeds meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2e_support import Scenario, jobdef
from tests.manifests import want

from databuild.testing.demo import request, wait_until
from databuild.testing.kube import Kube

pytestmark = pytest.mark.e2e

RBAC = "/apis/rbac.authorization.k8s.io/v1"
SLOW_SECONDS = 25


def _grant(sc: Scenario, user: str) -> None:
    request(
        sc.kube,
        "POST",
        f"{RBAC}/namespaces/{sc.namespace}/roles",
        {
            "metadata": {"name": "job-maker"},
            "rules": [
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]},
                {"apiGroups": ["databuild.dev"], "resources": ["jobruns"], "verbs": ["get"]},
            ],
        },
    )
    request(
        sc.kube,
        "POST",
        f"{RBAC}/namespaces/{sc.namespace}/rolebindings",
        {
            "metadata": {"name": "job-maker"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "job-maker",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def _forged_job(name: str, run: str, owner_uid: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"databuild.dev/job-run": run},
        "annotations": {"databuild.dev/attempt": "1"},
    }
    if owner_uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "databuild.dev/v1alpha1",
                "kind": "JobRun",
                "name": run,
                "uid": owner_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": {"databuild.dev/job-run": run},
                    "annotations": {"databuild.dev/attempt": "1"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "example.invalid/forged:1"}],
                },
            },
        },
    }


def _complete(sc: Scenario, name: str) -> bool:
    job = sc.get("Job", name)
    conditions = (job or {}).get("status", {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def test_jobs_forged_by_another_user_change_no_jobrun(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    sc.apply(
        jobdef(
            "slow",
            ["slow/date={date}"],
            annotations={"kwok.databuild.dev/duration": f"{SLOW_SECONDS}s"},
        ),
        jobdef("quick", ["quick/date={date}"]),
        want("slow", ["slow/date=2025-01-01"]),
    )
    run = wait_until(
        lambda: next(
            (r for r in sc.list("JobRun") if r.get("status", {}).get("state") == "Running"), None
        ),
        timeout=60,
        what="the slow JobRun to run",
        describe=sc.describe,
    )
    name, uid = run["metadata"]["name"], run["metadata"]["uid"]

    _grant(sc, "mallory")
    mallory = Kube.from_kubeconfig(sc.cluster.kubeconfig, impersonate="mallory")
    jobs = f"/apis/batch/v1/namespaces/{sc.namespace}/jobs"
    try:
        request(mallory, "POST", jobs, _forged_job(f"{name}-labelled", name, None))
        request(mallory, "POST", jobs, _forged_job(f"{name}-copied-uid", name, uid))
    finally:
        mallory.close()
    started = time.monotonic()
    wait_until(
        lambda: _complete(sc, f"{name}-labelled") and _complete(sc, f"{name}-copied-uid"),
        timeout=SLOW_SECONDS - 5,
        what="the forged Jobs to complete",
        describe=sc.describe,
    )
    # The neighbour builds meanwhile, in the same namespace.
    sc.apply(want("quick", ["quick/date=2025-01-01"]))
    sc.wait_for_want("quick", "Successful", timeout=SLOW_SECONDS)

    current = sc.get("JobRun", name)
    assert current is not None
    assert time.monotonic() - started < SLOW_SECONDS, "too slow to tell forged from real"
    assert current["status"]["state"] == "Running", current["status"]
    assert current["status"]["attempt"] == 1
    assert sc.get("Want", "slow")["status"]["state"] != "Successful"  # type: ignore[index]

    # Only its own Job ends it.
    sc.wait_for_want("slow", "Successful", timeout=SLOW_SECONDS + 60)
    assert sc.get("JobRun", name)["status"]["attempt"] == 1  # type: ignore[index]
