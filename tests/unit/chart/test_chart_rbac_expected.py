"""Every RBAC object the chart renders, in both modes, against a checked-in expectation.

A change to the operator's or the users' permissions must show up as a diff of
tests/unit/chart/expected/: review it as a change of privilege. Regenerate by running
this module with ``DATABUILD_UPDATE_EXPECTED=1`` in the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.chart.helmtool import template

EXPECTED = Path(__file__).parent / "expected"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
# Labels that change with every release of the chart, not with its permissions.
VOLATILE_LABELS = ("helm.sh/chart", "app.kubernetes.io/version")
MODES = {
    "cluster-wide": [],
    "namespaced": ["--set", "watchNamespaces={team-a,team-b}"],
}


def _rbac(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for doc in docs:
        if doc["kind"] not in RBAC_KINDS:
            continue
        labels = doc["metadata"].get("labels") or {}
        for label in VOLATILE_LABELS:
            labels.pop(label, None)
        kept.append(doc)
    return sorted(
        kept,
        key=lambda d: (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]),
    )


@pytest.mark.parametrize("mode", sorted(MODES))
def test_rendered_rbac_matches_the_checked_in_expectation(mode: str) -> None:
    rendered = yaml.safe_dump_all(_rbac(template(*MODES[mode])), sort_keys=True)
    path = EXPECTED / f"rbac-{mode}.yaml"
    if os.environ.get("DATABUILD_UPDATE_EXPECTED") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(rendered)
    assert path.is_file(), f"{path} is missing: regenerate it (see this module's docstring)"
    assert rendered == path.read_text(), (
        f"the chart's RBAC for {mode} changed; if on purpose, regenerate {path.name} "
        "(see this module's docstring) and review the diff as a change of privilege"
    )


def test_namespaced_mode_creates_no_cluster_role_for_the_operator() -> None:
    docs = _rbac(template(*MODES["namespaced"]))
    cluster_scoped = [d for d in docs if d["kind"].startswith("Cluster")]
    # Only the user roles that extend view/edit/admin (bound to nobody) stay cluster-wide:
    # aggregation works on ClusterRoles only.
    assert cluster_scoped, "expected the aggregated user roles"
    for doc in cluster_scoped:
        assert doc["kind"] == "ClusterRole", doc["metadata"]["name"]
        labels = doc["metadata"]["labels"]
        assert any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in labels)
        assert "databuild.dev/watches" not in labels
