"""The GitOps example and the documented Argo CD health check.

The kustomization is built with kubectl's kustomize; the health check runs under Lua 5.1,
the dialect Argo CD embeds (gopher-lua), against Wants in each state.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml
from tests.unit.chart.helmtool import ROOT, tool_binary

from databuild.adapters.resources import JobDefinition, Schedule, Want

GITOPS = ROOT / "examples" / "gitops"
HEALTH_LUA = GITOPS / "argocd" / "want-health.lua"
SCHEDULE_HEALTH_LUA = GITOPS / "argocd" / "schedule-health.lua"
# The documented Argo CD health check of each kind that has one.
HEALTH_CHECKS = {"Want": HEALTH_LUA, "Schedule": SCHEDULE_HEALTH_LUA}
DOCS = ROOT / "docs" / "gitops.md"


def _kustomize() -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(tool_binary("kubectl")), "kustomize", str(GITOPS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_gitops_crds_are_the_repository_crds() -> None:
    repo = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    ours = {p.name: p.read_bytes() for p in (GITOPS / "crds").glob("databuild.dev_*.yaml")}
    drifted = sorted(n for n in repo.keys() | ours.keys() if repo.get(n) != ours.get(n))
    assert not drifted, (
        f"examples/gitops/crds differs from crds/ ({', '.join(drifted)}); run `make crds`"
    )
    listed = yaml.safe_load((GITOPS / "crds" / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(repo), "examples/gitops/crds/kustomization.yaml: list each CRD"


def test_kustomization_builds_crds_namespace_jobdefinitions_wants_and_schedules() -> None:
    docs = _kustomize()
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == 7
    assert kinds.count("Namespace") == 1
    assert kinds.count("JobDefinition") >= 1
    assert kinds.count("Want") >= 1
    assert kinds.count("Schedule") >= 1
    for doc in docs:
        if doc["kind"] in ("JobDefinition", "Want", "Schedule"):
            assert doc["metadata"]["namespace"] == "analytics"
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "databuild"
        if doc["kind"] == "CustomResourceDefinition":
            assert "namespace" not in doc["metadata"]


def test_example_resources_are_valid_for_the_models() -> None:
    docs = _kustomize()
    definitions = [JobDefinition.model_validate(d) for d in docs if d["kind"] == "JobDefinition"]
    wants = [Want.model_validate(d) for d in docs if d["kind"] == "Want"]
    schedules = [Schedule.model_validate(d) for d in docs if d["kind"] == "Schedule"]
    assert schedules, "examples/gitops has no Schedule"
    # Each wanted partition has a job whose output pattern it matches (checked loosely:
    # the first path segment names the dataset).
    datasets = {o.split("/", 1)[0] for jd in definitions for o in jd.spec.outputs}
    for want in wants:
        for ref in want.spec.partitions:
            assert ref.split("/", 1)[0] in datasets, f"no JobDefinition outputs {ref}"
    for schedule in schedules:
        for template in schedule.spec.partitions:
            assert template.split("/", 1)[0] in datasets, f"no JobDefinition outputs {template}"


def test_docs_embed_the_tested_health_check_verbatim() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.S)
    configmaps = [
        d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "ConfigMap"
    ]
    assert len(configmaps) == 1
    for kind, path in HEALTH_CHECKS.items():
        script = configmaps[0]["data"][f"resource.customizations.health.databuild.dev_{kind}"]
        assert script == path.read_text(), f"docs/gitops.md: the {kind} check differs from {path}"


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Argo CD's (health, message) for a Want or Schedule by its documented check."""
    # A dev extra, imported here so that its absence fails these tests, not collection.
    import lupa.lua51 as lua  # noqa: PLC0415

    runtime = lua.LuaRuntime(unpack_returned_tuples=True)
    # Argo CD hands the object to the script as the global `obj`, a table of tables
    # (lists become 1-based tables).
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(HEALTH_CHECKS[obj.get("kind", "Want")].read_text())
    return str(result["status"]), str(result["message"])


def _want(
    state: str | None,
    *,
    generation: int = 1,
    observed: int | None = 1,
    ready: str = "False",
    stalled: str | None = None,
) -> dict[str, Any]:
    want: dict[str, Any] = {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Want",
        "metadata": {"name": "w", "namespace": "analytics", "generation": generation},
        "spec": {"partitions": ["daily_summary/date=2025-01-01"]},
    }
    if state is not None:
        want["status"] = {
            "state": state,
            "progress": "1/2",
            "conditions": [
                {"type": "Ready", "status": ready, "reason": state, "message": f"it is {state}"},
            ],
        }
        if stalled is not None:
            want["status"]["conditions"].append(
                {"type": "Stalled", "status": stalled, "reason": "NoJobDefinition",
                 "message": "no JobDefinition outputs x/y"}
            )  # fmt: skip
        if observed is not None:
            want["status"]["observedGeneration"] = observed
    return want


@pytest.mark.parametrize(
    ("want", "expected"),
    [
        (_want(None), "Progressing"),
        (_want("Pending", observed=None), "Progressing"),
        (_want("Successful", generation=2, observed=1, ready="True"), "Progressing"),
        (_want("Pending"), "Progressing"),
        (_want("Building"), "Progressing"),
        (_want("UpstreamBuilding"), "Progressing"),
        (_want("Successful", ready="True"), "Healthy"),
        (_want("Successful", ready="False"), "Progressing"),
        (_want("Failed"), "Degraded"),
        (_want("Expired"), "Degraded"),
        (_want("Pending", stalled="True"), "Degraded"),
        (_want("Building", stalled="False"), "Progressing"),
        (_want("Pending", generation=2, stalled="True"), "Progressing"),
    ],
    ids=[
        "no-status",
        "no-observed-generation",
        "stale-generation",
        "pending",
        "building",
        "upstream-building",
        "successful",
        "successful-not-ready-yet",
        "failed",
        "expired",
        "stalled",
        "not-stalled",
        "stalled-but-stale",
    ],
)
def test_argocd_health_check(want: dict[str, Any], expected: str) -> None:
    status, message = argocd_health(want)
    assert status == expected, message
    if (
        "status" in want
        and want["status"].get("observedGeneration") == want["metadata"]["generation"]
    ):
        assert want["status"]["state"] in message
        assert "1/2" in message
        stalled = [c for c in want["status"]["conditions"] if c["type"] == "Stalled"]
        if stalled and stalled[0]["status"] == "True":
            assert "no JobDefinition outputs x/y" in message, "say why it is stuck"


def _schedule(
    reason: str | None,
    *,
    ready: str = "True",
    stalled: bool = False,
    generation: int = 1,
    observed: int = 1,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": "s", "namespace": "analytics", "generation": generation},
        "spec": {"schedule": "@daily", "partitions": ["daily_summary/date={date}"]},
        "status": {"observedGeneration": observed},
    }
    if reason is not None:
        conditions = [{"type": "Ready", "status": ready, "reason": reason, "message": "why"}]
        if stalled:
            conditions.append(
                {"type": "Stalled", "status": "True", "reason": reason, "message": "why"}
            )
        schedule["status"] |= {"conditions": conditions, "nextTick": "2025-01-02T00:00:00Z"}
    return schedule


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (_schedule(None, observed=0), "Progressing"),
        (_schedule("UpToDate", generation=2), "Progressing"),
        (_schedule("UpToDate"), "Healthy"),
        (_schedule("Ended"), "Healthy"),
        (_schedule("Suspended"), "Suspended"),
        (_schedule("CatchingUp", ready="False"), "Progressing"),
        (_schedule("InvalidSpec", ready="False", stalled=True), "Degraded"),
    ],
    ids=["unobserved", "stale", "up-to-date", "ended", "suspended", "catching-up", "invalid"],
)
def test_argocd_schedule_health_check(schedule: dict[str, Any], expected: str) -> None:
    status, message = argocd_health(schedule)
    assert status == expected, message
    conditions = schedule["status"].get("conditions")
    if conditions and schedule["metadata"]["generation"] == 1:
        assert message.startswith(f"{conditions[0]['reason']}: why"), "say why"
        # A suspended Schedule has no next tick that will happen.
        assert ("2025-01-02T00:00:00Z" in message) == (expected != "Suspended")
