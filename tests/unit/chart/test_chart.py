"""The Helm chart: lint, rendering in both RBAC modes, least privilege, the values schema.

Every test runs the real helm binary on the chart; nothing is mocked.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.chart.helmtool import CHART, ROOT, helm, kube_version, template

RELEASE = "databuild"
RELEASE_NS = "databuild-system"
FULLNAME = f"{RELEASE}-databuild-operator"

# What the operator may do, resource by resource. A change here is a deliberate change of
# the operator's privileges; keep it in sync with operator/databuild/operator/ and the
# adapters' API gateway.
EXPECTED_RULES: dict[tuple[str, str], set[str]] = {
    ("databuild.dev", "jobdefinitions"): {"get", "list", "watch"},
    ("databuild.dev", "wants"): {"get", "list", "watch", "create", "delete"},
    ("databuild.dev", "schedules"): {"get", "list", "watch"},
    ("databuild.dev", "concurrencypools"): {"get", "list", "watch"},
    ("databuild.dev", "partitions"): {"get", "list", "watch", "create"},
    ("databuild.dev", "jobruns"): {"get", "list", "watch", "create", "delete"},
    ("databuild.dev", "jobdefinitions/status"): {"get", "update", "patch"},
    ("databuild.dev", "wants/status"): {"get", "update", "patch"},
    ("databuild.dev", "partitions/status"): {"get", "update", "patch"},
    ("databuild.dev", "jobruns/status"): {"get", "update", "patch"},
    ("databuild.dev", "schedules/status"): {"get", "update", "patch"},
    ("databuild.dev", "taintrequests"): {"get", "list", "watch", "delete"},
    ("databuild.dev", "taintrequests/status"): {"get", "update", "patch"},
    ("databuild.dev", "concurrencypools/status"): {"get", "update", "patch"},
    ("databuild.dev", "jobruns/finalizers"): {"update"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "list"},
}
EXPECTED_LEASE_RULES = {("coordination.k8s.io", "leases"): {"get", "create", "patch"}}

RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
)


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = _of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def _flatten(rules: list[dict[str, Any]]) -> Iterator[tuple[str, str, str]]:
    for rule in rules:
        # Only the history reader names its one object (a Service's proxy), and the
        # leader-election rule the release's own Lease.
        named = rule.get("resourceNames")
        if named and rule["resources"] == ["leases"]:
            assert named == [FULLNAME], rule
        else:
            assert not named or rule["resources"] == ["services/proxy"], rule
        assert not rule.get("nonResourceURLs"), "non-resource URLs are not expected"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    yield group, resource, verb


def _permissions(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    perms: dict[tuple[str, str], set[str]] = {}
    for group, resource, verb in _flatten(rules):
        perms.setdefault((group, resource), set()).add(verb)
    return perms


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _is_leader_election(role: dict[str, Any]) -> bool:
    return bool(role["metadata"]["name"].endswith("-leader-election"))


def _is_user_role(role: dict[str, Any]) -> bool:
    labels = role["metadata"]["labels"]
    if role["metadata"]["name"].endswith("-history-reader"):
        return True  # for people to bind, like the aggregated roles
    return any(k.startswith("rbac.authorization.k8s.io/aggregate-to-") for k in labels)


def _operator_cluster_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in _of_kind(docs, "ClusterRole") if not _is_user_role(r)]


# --------------------------------------------------------------------------------------
# Lint and CRDs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "watchNamespaces={team-a,team-b}"], ["--set", "crds.managed=true"]],
    ids=["cluster-wide", "namespaced", "managed-crds"],
)
def test_helm_lint_strict(values: list[str]) -> None:
    result = helm("lint", "--strict", str(CHART), *values, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


def test_chart_crds_are_the_repository_crds() -> None:
    repo = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert repo, "crds/ is empty: generate it with `python -m databuild.adapters.crds`"
    drifted = sorted(n for n in repo.keys() | chart.keys() if repo.get(n) != chart.get(n))
    assert not drifted, (
        f"the chart's CRDs differ from crds/ ({', '.join(drifted)}); run `make crds`"
    )


def test_chart_crds_cover_every_kind() -> None:
    kinds = set()
    for path in (CHART / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "databuild.dev"
        kinds.add(crd["spec"]["names"]["kind"])
    assert kinds == {
        "JobDefinition",
        "Want",
        "Partition",
        "JobRun",
        "Schedule",
        "TaintRequest",
        "ConcurrencyPool",
    }


def test_default_mode_renders_no_crd_templates() -> None:
    # CRDs come from crds/ (Helm's install-only directory), not from templates.
    assert not _of_kind(template(), "CustomResourceDefinition")


def test_managed_crds_are_kept_on_uninstall_and_identical_to_the_files() -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in _of_kind(template("--set", "crds.managed=true"), "CustomResourceDefinition")
    }
    files = {
        (crd := yaml.safe_load(p.read_text()))["metadata"]["name"]: crd
        for p in (CHART / "crds").glob("*.yaml")
    }
    assert rendered.keys() == files.keys()
    for name, crd in rendered.items():
        meta = crd["metadata"]
        assert meta["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", name
        assert crd["spec"] == files[name]["spec"], f"{name}: the template changed the schema"


# --------------------------------------------------------------------------------------
# RBAC
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_rbac_is_explicit_and_never_touches_secrets(mode: str) -> None:
    args = ["--set", "watchNamespaces={team-a}"] if mode == "namespaced" else []
    docs = template(*args)
    roles = _of_kind(docs, "ClusterRole") + _of_kind(docs, "Role")
    assert roles
    for role in roles:
        for group, resource, verb in _flatten(role["rules"]):
            where = f"{role['kind']} {role['metadata']['name']}: {group}/{resource} {verb}"
            assert "*" not in (group, verb) and "*" not in resource, f"wildcard in {where}"
            assert resource not in ("secrets", "configmaps"), f"{where}: no Secrets/ConfigMaps"
            assert verb not in ("escalate", "bind", "impersonate", "deletecollection"), where


def test_cluster_wide_mode_grants_exactly_the_operators_needs() -> None:
    docs = template()
    (cluster_role,) = _operator_cluster_roles(docs)
    assert _permissions(cluster_role["rules"]) == EXPECTED_RULES

    binding = _one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}
    ]
    # Leader election stays in the operator's own namespace even in cluster-wide mode.
    (lease_role,) = [r for r in _of_kind(docs, "Role") if not _is_user_role(r)]
    assert lease_role["metadata"]["namespace"] == RELEASE_NS
    assert _permissions(lease_role["rules"]) == EXPECTED_LEASE_RULES
    # get and patch only on the release's own Lease (create cannot name one).
    named = [r for r in lease_role["rules"] if r.get("resourceNames")]
    assert [(r["resourceNames"], sorted(r["verbs"])) for r in named] == [
        ([FULLNAME], ["get", "patch"])
    ]

    # No --namespace flag: the operator serves every namespace.
    args = _container(docs)["args"]
    assert not [a for a in args if a.startswith(("--namespace", "-n"))]


def test_namespaced_mode_renders_roles_only_in_the_listed_namespaces() -> None:
    docs = template("--set", "watchNamespaces={team-a,team-b}")
    # Nothing cluster-wide for the operator (the aggregated user roles bind nobody).
    assert not _operator_cluster_roles(docs)
    assert not _of_kind(docs, "ClusterRoleBinding")

    roles = [
        r for r in _of_kind(docs, "Role") if not _is_leader_election(r) and not _is_user_role(r)
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _permissions(role["rules"]) == EXPECTED_RULES

    bindings = [b for b in _of_kind(docs, "RoleBinding") if not _is_leader_election(b)]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NS}
        ]

    (lease_role,) = [r for r in _of_kind(docs, "Role") if _is_leader_election(r)]
    assert lease_role["metadata"]["namespace"] == RELEASE_NS
    assert _permissions(lease_role["rules"]) == EXPECTED_LEASE_RULES

    args = _container(docs)["args"]
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_rbac_create_false_renders_no_rbac_objects() -> None:
    docs = template("--set", "rbac.create=false")
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not _of_kind(docs, kind), kind


# --------------------------------------------------------------------------------------
# The Deployment
# --------------------------------------------------------------------------------------


def test_deployment_is_a_single_recreated_replica() -> None:
    spec = _one(template(), "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["template"]["spec"]["serviceAccountName"] == FULLNAME


def test_more_replicas_are_standbys_behind_a_disruption_budget() -> None:
    assert not _of_kind(template(), "PodDisruptionBudget")
    docs = template("--set", "replicas=3")
    spec = _one(docs, "Deployment")["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"]["type"] == "RollingUpdate"
    pdb = _one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    docs = template()
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = _container(docs)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not sc.get("privileged")
    # The read-only root needs a writable /tmp (HOME and TMPDIR in the image).
    mounts = {m["mountPath"]: m["name"] for m in _container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not [v for v in pod["volumes"] if "hostPath" in v]


def test_probes_hit_the_operators_health_endpoint() -> None:
    docs = template("--set", "health.port=8181")
    container = _container(docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == 8181
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert "--health-port=8181" in container["args"]


def test_resources_and_image_are_configurable() -> None:
    docs = template(
        "--set", "image.repository=registry.example/databuild",
        "--set", "image.tag=1.2.3",
        "--set", "resources.requests.cpu=250m",
        "--set", "resources.limits.memory=1Gi",
    )  # fmt: skip
    container = _container(docs)
    assert container["image"] == "registry.example/databuild:1.2.3"
    assert container["resources"]["requests"]["cpu"] == "250m"
    assert container["resources"]["limits"]["memory"] == "1Gi"

    digest = "sha256:" + "a" * 64
    container = _container(template("--set", f"image.digest={digest}"))
    assert container["image"] == f"databuild-operator@{digest}"

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert _container(template())["image"] == f"databuild-operator:{chart['appVersion']}"


def test_metrics_service_is_optional() -> None:
    assert not _of_kind(template("--set", "history.enabled=false"), "Service")
    docs = template(
        "--set", "metrics.service.enabled=true", "--set", "metrics.port=9191",
        "--set", "history.enabled=false",
    )  # fmt: skip
    service = _one(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert (
        service["spec"]["selector"] == _one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    )
    assert "--metrics-port=9191" in _container(docs)["args"]

    docs = template("--set", "metrics.enabled=false")
    assert not [a for a in _container(docs)["args"] if a.startswith("--metrics")]
    assert [p["name"] for p in _container(docs)["ports"]] == ["health", "history"]


@pytest.mark.parametrize(
    "values",
    [[], ["--set", "watchNamespaces={team-a,team-b}"], ["--set", "crds.managed=true"]],
    ids=["cluster-wide", "namespaced", "managed-crds"],
)
def test_everything_carries_the_recommended_labels(values: list[str]) -> None:
    docs = template("--set", "metrics.service.enabled=true", *values)
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        missing = [label for label in RECOMMENDED_LABELS if label not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
        assert all(len(str(v)) <= 63 for v in labels.values())
    pod_labels = _one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert all(label in pod_labels for label in RECOMMENDED_LABELS)


# --------------------------------------------------------------------------------------
# The values schema
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            ["--set", "watchNamespaces={Team_A}"],
            "at '/watchNamespaces/0': 'Team_A' does not match pattern",
        ),
        (["--set", "watchNamespaces={a,a}"], "at '/watchNamespaces': items at 0 and 1 are equal"),
        (["--set", "watchNamespaces=team-a"], "at '/watchNamespaces': got string, want array"),
        (["--set", "securityContext.runAsUser=0"], "at '/securityContext/runAsUser': minimum"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set", "image.digest=latest"], "at '/image/digest': 'latest' does not match"),
        (["--set", "health.port=80"], "at '/health/port': minimum: got 80, want 1,024"),
        (["--set", "crds.managed=yes"], "at '/crds/managed': got string, want boolean"),
        (["--set", "watchNamespace={a}"], "additional properties 'watchNamespace' not allowed"),
        (["--set", "resources.requests.cpu=lots"], "at '/resources/requests/cpu'"),
        (["--set", "bel.url=postgresql://u:secret@db/databuild"], "at '/bel/url'"),
        (["--set", "bel.url=mysql://db/databuild"], "at '/bel/url'"),
    ],
)
def test_schema_rejects_bad_values_with_a_clear_message(values: list[str], message: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--namespace", RELEASE_NS, *values, check=False)
    assert result.returncode != 0, f"helm accepted {values}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_equal_health_and_metrics_ports_are_rejected() -> None:
    result = helm(
        "template", RELEASE, str(CHART), "--kube-version", kube_version(),
        "--set", "metrics.port=8080", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "metrics.port and health.port must differ" in result.stderr


# --------------------------------------------------------------------------------------
# The chart and the operator's command line agree
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [([], ()), (["--set", "watchNamespaces={team-a,team-b}"], ("team-a", "team-b"))],
    ids=["cluster-wide", "namespaced"],
)
def test_the_operator_accepts_the_rendered_arguments(
    values: list[str], namespaces: tuple[str, ...]
) -> None:
    from databuild.operator import settings  # noqa: PLC0415

    docs = template(
        "--set", "health.port=8181", "--set", "metrics.port=9191",
        "--set", "operator.maxConcurrentRuns=3", *values,
    )  # fmt: skip
    container = _container(docs)
    # The downward API fills POD_NAMESPACE in the pod; here it is the release namespace.
    env = {v["name"]: v.get("value", RELEASE_NS) for v in container["env"]}
    loaded = settings.load(container["args"], env)
    assert loaded.namespaces == namespaces
    assert loaded.clusterwide is (not namespaces)
    assert loaded.health_port == 8181
    assert loaded.metrics_port == 9191
    assert loaded.max_concurrent_runs == 3
    assert loaded.job_ttl_seconds == 86400
    assert loaded.kubeconfig is None, "in the pod the operator uses its ServiceAccount"
    assert loaded.leader_election is True
    assert loaded.lease_namespace == RELEASE_NS
    assert loaded.lease_name == FULLNAME
    assert loaded.bel_url == "sqlite:////var/lib/databuild/bel.db"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/var/lib/databuild"}


# --------------------------------------------------------------------------------------
# The Build Event Log's store
# --------------------------------------------------------------------------------------


def _volumes(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    return {v["name"]: v for v in pod["volumes"]}


def test_bel_defaults_to_embedded_sqlite_on_a_claim_or_an_empty_dir_if_asked() -> None:
    docs = template()
    assert "--bel-url=sqlite:////var/lib/databuild/bel.db" in _container(docs)["args"]
    claim = _one(docs, "PersistentVolumeClaim")
    assert _volumes(docs)["bel"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    docs = template("--set", "bel.persistence.enabled=false")
    assert _volumes(docs)["bel"] == {"name": "bel", "emptyDir": {}}
    assert not _of_kind(docs, "PersistentVolumeClaim")


def test_bel_persistence_claims_a_volume_that_outlives_the_release() -> None:
    docs = template("--set", "bel.persistence.enabled=true", "--set", "bel.persistence.size=5Gi")
    claim = _one(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    claim_ref = _volumes(docs)["bel"]["persistentVolumeClaim"]["claimName"]
    assert claim_ref == claim["metadata"]["name"]

    docs = template(
        "--set", "bel.persistence.enabled=true", "--set", "bel.persistence.existingClaim=mine"
    )
    assert not _of_kind(docs, "PersistentVolumeClaim")
    assert _volumes(docs)["bel"]["persistentVolumeClaim"]["claimName"] == "mine"


def test_bel_server_url_from_values_or_from_a_secret() -> None:
    url = "postgresql://databuild@postgres.db.svc/databuild"
    docs = template("--set", f"bel.url={url}", "--set", "bel.retentionDays=30")
    args = _container(docs)["args"]
    assert f"--bel-url={url}" in args
    assert "--bel-retention-days=30" in args
    assert "bel" not in _volumes(docs)

    docs = template("--set", "bel.urlFromSecret.name=bel-db", "--set", "bel.urlFromSecret.key=dsn")
    container = _container(docs)
    assert not [a for a in container["args"] if a.startswith("--bel-url")]
    (env,) = [e for e in container["env"] if e["name"] == "DATABUILD_BEL_URL"]
    # The kubelet reads the Secret for the pod; the operator's own RBAC never could.
    assert env["valueFrom"] == {"secretKeyRef": {"name": "bel-db", "key": "dsn"}}


# --------------------------------------------------------------------------------------
# Roles for people
# --------------------------------------------------------------------------------------


def test_user_roles_extend_the_default_roles_and_grant_the_operator_nothing() -> None:
    docs = template()
    roles = {r["metadata"]["name"]: r for r in _of_kind(docs, "ClusterRole") if _is_user_role(r)}
    view, edit = roles[f"{FULLNAME}-view"], roles[f"{FULLNAME}-edit"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k in view["metadata"]["labels"] if k.startswith(aggregate)} == {
        aggregate + "view",
        aggregate + "edit",
        aggregate + "admin",
    }
    assert {k for k in edit["metadata"]["labels"] if k.startswith(aggregate)} == {
        aggregate + "edit",
        aggregate + "admin",
    }
    kinds = (
        "jobdefinitions",
        "wants",
        "partitions",
        "jobruns",
        "schedules",
        "taintrequests",
        "concurrencypools",
    )
    assert _permissions(view["rules"]) == {
        ("databuild.dev", k): {"get", "list", "watch"} for k in kinds
    }
    assert _permissions(edit["rules"]) == {
        ("databuild.dev", "jobdefinitions"): {"create", "update", "patch", "delete"},
        ("databuild.dev", "wants"): {"create", "update", "patch", "delete"},
        ("databuild.dev", "schedules"): {"create", "update", "patch", "delete"},
        ("databuild.dev", "taintrequests"): {"create", "delete"},
        ("databuild.dev", "concurrencypools"): {"create", "update", "patch", "delete"},
    }
    # No patch on Partitions: a taint is a TaintRequest, not a metadata change.
    assert ("databuild.dev", "partitions") not in _permissions(edit["rules"])
    # Status is the operator's alone; nobody is bound to these roles directly.
    assert not [p for p in _permissions(edit["rules"]) if p[1].endswith("/status")]
    bound = {b["roleRef"]["name"] for b in _of_kind(docs, "ClusterRoleBinding")}
    assert not bound & roles.keys()

    off = template("--set", "rbac.aggregateToDefaultRoles=false")
    assert not [r for r in _of_kind(off, "ClusterRole") if _is_user_role(r)]


def test_install_guide_lists_exactly_the_granted_permissions() -> None:
    text = (ROOT / "docs" / "install.md").read_text()
    table = text.split("| API group | resources | verbs | why |", 1)[1].split("\n\n", 1)[0]
    documented: dict[tuple[str, str], set[str]] = {}
    for row in table.strip().splitlines()[1:]:
        group_cell, resources_cell, verbs_cell = (c.strip() for c in row.strip("|").split("|")[:3])
        group = "" if group_cell == "core" else group_cell.strip("`")
        verbs = {v.strip() for v in verbs_cell.split(",")}
        for resource in re.findall(r"`([^`]+)`", resources_cell):
            documented[(group, resource)] = verbs
    assert documented == {**EXPECTED_RULES, **EXPECTED_LEASE_RULES}, (
        "docs/install.md's permission table differs from what the chart grants"
    )


def test_packaged_chart_ships_the_repository_crds(tmp_path: Path) -> None:
    # The documented upgrade step applies the crds/ directory of the new chart.
    helm("package", str(CHART), "--destination", str(tmp_path))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tmp_path / f"{chart['name']}-{chart['version']}.tgz"
    with tarfile.open(package) as tar:
        shipped = {
            Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.name.startswith(f"{chart['name']}/crds/")
        }
    repo = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    assert shipped == repo


def test_history_api_is_served_behind_a_cluster_ip_service_with_a_reader_role() -> None:
    docs = template()
    deployment = _one(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--history-port=8090" in container["args"]
    assert {"name": "history", "containerPort": 8090, "protocol": "TCP"} in container["ports"]
    (service,) = [
        s for s in _of_kind(docs, "Service") if s["metadata"]["name"].endswith("-history")
    ]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"][0]["targetPort"] == "history"
    (reader,) = [r for r in _of_kind(docs, "Role") if r["metadata"]["name"].endswith("-reader")]
    (rule,) = reader["rules"]
    assert rule["resources"] == ["services/proxy"] and rule["verbs"] == ["get"]
    assert service["metadata"]["name"] + ":history" in rule["resourceNames"]
    # By default the history is on a PersistentVolumeClaim, not an emptyDir.
    assert _of_kind(docs, "PersistentVolumeClaim")
    off = template("--set", "history.enabled=false")
    assert not [s for s in _of_kind(off, "Service") if s["metadata"]["name"].endswith("-history")]
    clash = helm(
        "template",
        "databuild",
        str(CHART),
        "--kube-version",
        kube_version(),
        "--set",
        "history.port=8080",
        check=False,
    )
    assert clash.returncode != 0
    assert "history.port (8080) must differ" in clash.stderr


def test_ui_is_served_in_the_pod_behind_the_history_service_and_its_reader_role() -> None:
    off = template()
    assert _container(off)["name"] == "operator"  # one container unless ui.enabled
    assert not [
        p for s in _of_kind(off, "Service") for p in s["spec"]["ports"] if p["name"] == "ui"
    ]
    docs = template("--set", "ui.enabled=true", "--set", "watchNamespaces={analytics}")
    pod = _one(docs, "Deployment")["spec"]["template"]["spec"]
    (ui,) = [c for c in pod["containers"] if c["name"] == "ui"]
    assert ui["command"] == ["databuild"] and ui["args"][0] == "ui"
    assert "--namespace=analytics" in ui["args"] and "--address=0.0.0.0" in ui["args"]
    (service,) = [
        s for s in _of_kind(docs, "Service") if s["metadata"]["name"].endswith("-history")
    ]
    name = service["metadata"]["name"]
    assert f"--bel-url=service://databuild-system/{name}:history" in ui["args"]
    assert {"name": "ui", "containerPort": 8088, "protocol": "TCP"} in ui["ports"]
    assert {"name": "ui", "port": 8088, "targetPort": "ui", "protocol": "TCP"} in service["spec"][
        "ports"
    ]
    assert ui["securityContext"]["readOnlyRootFilesystem"] is True
    # Who may open the UI is who may read history: the same Role names its proxy.
    (reader,) = [r for r in _of_kind(docs, "Role") if r["metadata"]["name"].endswith("-reader")]
    assert {f"{name}:ui", f"{name}:8088"} <= set(reader["rules"][0]["resourceNames"])
    (binding,) = [
        b
        for b in _of_kind(docs, "RoleBinding")
        if b["roleRef"]["name"] == reader["metadata"]["name"]
    ]
    assert binding["subjects"][0]["name"] == pod["serviceAccountName"]
    explicit = template("--set", "ui.enabled=true", "--set", "ui.namespace=sales")
    assert (
        "--namespace=sales"
        in _one(explicit, "Deployment")["spec"]["template"]["spec"]["containers"][1]["args"]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["ui.enabled=true"], "ui.enabled needs ui.namespace"),
        (["ui.enabled=true", "ui.namespace=a", "history.enabled=false"], "needs history.enabled"),
        (["ui.enabled=true", "ui.namespace=a", "ui.port=8090"], "ui.port (8090) must differ"),
        (["ui.enabled=true", "ui.namespace=Not_A_Name"], "/ui/namespace"),
    ],
)
def test_ui_values_that_cannot_work_are_refused_with_a_clear_error(
    values: list[str], message: str
) -> None:
    args = [a for v in values for a in ("--set", v)]
    refused = helm(
        "template", "databuild", str(CHART), "--kube-version", kube_version(), *args, check=False
    )
    assert refused.returncode != 0
    assert message in refused.stderr, refused.stderr


def test_lease_requests_get_the_leader_election_priority_level() -> None:
    docs = template("--namespace", "ops")
    schema = _one(docs, "FlowSchema")
    assert schema["spec"]["priorityLevelConfiguration"]["name"] == "leader-election"
    [rule] = schema["spec"]["rules"]
    [subject] = rule["subjects"]
    deployment = _one(docs, "Deployment")
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    assert subject["serviceAccount"] == {"name": account, "namespace": "ops"}
    [resources] = rule["resourceRules"]
    # Only the operator's Leases: its writes to everything else keep their own level.
    assert resources["resources"] == ["leases"] and resources["namespaces"] == ["ops"]
    assert not _of_kind(template("--set", "leaderElection.flowSchema=false"), "FlowSchema")
