"""The Helm chart against the local control plane, with the operator under the chart's identity.

No container really runs under kwok, so the chart's pod only becomes Ready; the operator
itself runs on the host, started with exactly the arguments and environment of the
rendered Deployment and authenticated as the chart's ServiceAccount (a TokenRequest
token). A Want completing then proves the chart's RBAC is sufficient, and the same
identity being refused elsewhere proves it is not more than that.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tests.unit.chart.helmtool import CHART, ROOT, HelmResult, helm, tool_binary

from databuild.adapters.kube import Forbidden, KubeError
from databuild.testing import Cluster, ExistingCluster
from databuild.testing.kube import KINDS, Kube

T = TypeVar("T")

GROUP, VERSION = "databuild.dev", "v1alpha1"
CRDS = {
    f"{p}.{GROUP}"
    for p in (
        "jobdefinitions",
        "wants",
        "partitions",
        "jobruns",
        "schedules",
        "taintrequests",
        "concurrencypools",
    )
}
TIMEOUT = 120.0


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = TIMEOUT,
    diagnose: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None; on timeout, say what
    `diagnose` finds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            found = f"\n{diagnose()}" if diagnose else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{found}")
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_namespace(kube: Kube, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
    return name


# The operator's namespace enforces the restricted Pod Security Standard: the API
# server's PodSecurity admission rejects the chart's pod unless it complies.
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def delete_namespace(kube: Kube, name: str) -> None:
    with contextlib.suppress(KubeError):
        kube.delete("Namespace", None, name)


class Release:
    """One Helm release of the chart in the test cluster."""

    def __init__(self, cluster: Cluster, name: str, namespace: str) -> None:
        self.cluster = cluster
        self.name = name
        self.namespace = namespace
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.history_port = free_port()

    @property
    def fullname(self) -> str:
        return f"{self.name}-databuild-operator"

    def helm(self, *args: str, check: bool = True) -> HelmResult:
        return helm(*args, kubeconfig=self.cluster.kubeconfig, check=check)

    def install(self, *values: str) -> HelmResult:
        return self._waiting(
            "install", self.name, str(CHART), "--namespace", self.namespace,
            "--wait", "--timeout", "3m",
            # Free host ports: the operator runs on this machine with the chart's args.
            "--set", f"health.port={self.health_port}",
            "--set", f"metrics.port={self.metrics_port}",
            "--set", f"history.port={self.history_port}",
            # No volume provisioner here: the BEL goes on an emptyDir, as it would on a
            # cluster without a default StorageClass.
            "--set", "bel.persistence.enabled=false",
            *values,
        )  # fmt: skip

    def upgrade(self, *values: str) -> HelmResult:
        return self._waiting(
            "upgrade", self.name, str(CHART), "--namespace", self.namespace,
            "--wait", "--timeout", "3m", "--reuse-values", *values,
        )  # fmt: skip

    def _waiting(self, *args: str) -> HelmResult:
        """A `helm --wait` command; when it fails, say what it was waiting for."""
        result = self.helm(*args, check=False)
        if result.returncode != 0:
            raise AssertionError(
                f"helm {' '.join(args[:2])} exited {result.returncode}:\n"
                f"{result.stderr}{result.stdout}\n{self.diagnosis()}"
            )
        return result

    def diagnosis(self) -> str:
        """The release namespace's pods and events, and the nodes' conditions and taints."""
        with self.cluster.api_client() as kube:
            pods = kube.list("Pod", self.namespace)
            events = kube.list("Event", self.namespace)[-20:]
            nodes = kube.list("Node")
        lines = ["pods:"]
        for pod in pods:
            status = pod.get("status") or {}
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            lines.append(
                f"  {pod['metadata']['name']} phase={status.get('phase')}"
                f" node={pod['spec'].get('nodeName')}"
                f" deleting={'deletionTimestamp' in pod['metadata']} {conditions}"
            )
        lines.append("events:")
        for event in events:
            involved = event.get("involvedObject") or {}
            lines.append(
                f"  {event.get('type')} {event.get('reason')} {involved.get('kind')}/"
                f"{involved.get('name')}: {event.get('message')}"
            )
        lines.append("nodes:")
        for node in nodes:
            node_conditions = (node.get("status") or {}).get("conditions") or []
            ready = [c for c in node_conditions if c["type"] == "Ready"]
            taints = node["spec"].get("taints") or []
            lines.append(
                f"  {node['metadata']['name']}"
                f" ready={[(c['status'], c.get('reason')) for c in ready]}"
                f" taints={[(t['key'], t['effect']) for t in taints]}"
            )
        return "\n".join(lines)

    def uninstall(self) -> HelmResult:
        return self.helm("uninstall", self.name, "--namespace", self.namespace, "--wait")

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm("get", "manifest", self.name, "--namespace", self.namespace)
        return out.documents()

    def deployment(self) -> dict[str, Any]:
        (deployment,) = [d for d in self.manifest() if d["kind"] == "Deployment"]
        return deployment

    def service_account_kubeconfig(self, kube: Kube, path: Path) -> Path:
        """A kubeconfig authenticating as the chart's ServiceAccount (TokenRequest API)."""
        sa = self.deployment()["spec"]["template"]["spec"]["serviceAccountName"]
        return service_account_kubeconfig(self.cluster, kube, self.namespace, sa, path)


def service_account_kubeconfig(
    cluster: Cluster, kube: Kube, namespace: str, name: str, path: Path
) -> Path:
    """A kubeconfig at ``path`` authenticating as ServiceAccount ``namespace/name`` with a
    TokenRequest token, against ``cluster``'s API server."""
    token = kube.token(namespace, name, expiration_seconds=3600)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "local", "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def api_client_for(kubeconfig: Path) -> Kube:
    return ExistingCluster(kubeconfig).api_client()


@contextlib.contextmanager
def operator_as_deployed(release: Release, kubeconfig: Path, log: Path) -> Iterator[None]:
    """Run `python -m databuild.operator` on the host with the rendered Deployment's
    arguments and environment, authenticated by `kubeconfig`."""
    container = release.deployment()["spec"]["template"]["spec"]["containers"][0]
    env = dict(os.environ)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            field = var["valueFrom"]["fieldRef"]["fieldPath"]
            env[var["name"]] = {
                "metadata.namespace": release.namespace,
                "metadata.name": f"{release.fullname}-host",
            }[field]
    env.pop("KUBECONFIG", None)
    # The pod's volumes, mapped to host directories.
    mounts = {m["mountPath"]: log.parent / m["name"] for m in container["volumeMounts"]}
    args = []
    for arg in container["args"]:
        mapped = arg
        for mount, host in mounts.items():
            mapped = mapped.replace(f"sqlite:///{mount}/", f"sqlite:///{host}/")
        args.append(mapped)
    command = [
        sys.executable, "-m", "databuild.operator", "--kubeconfig", str(kubeconfig), *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        # The chart's probes hit this endpoint; it must answer once the operator is up.
        health = f"http://127.0.0.1:{release.health_port}/healthz"

        def healthy() -> bool | None:
            assert proc.poll() is None, f"the operator exited:\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    return True if response.status == 200 else None
            except OSError:
                return None

        wait_for(f"the operator's liveness endpoint {health}", healthy, timeout=60)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def apply_pipeline(kube: Kube, namespace: str, want_name: str) -> None:
    """A two-step pipeline (raw -> summary) and a Want for one summary partition."""

    def create(body: dict[str, Any]) -> None:
        kube.create(body, namespace)

    def job(name: str, outputs: list[str], inputs: list[str]) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "JobDefinition",
            "metadata": {"name": name},
            "spec": {
                "outputs": outputs,
                "inputs": inputs,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "example.invalid/build:1"}],
                    }
                },
            },
        }

    create(job("ingest", ["raw/date={date}"], []))
    create(job("summarize", ["summary/date={date}"], ["raw/date={date}"]))
    create(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Want",
            "metadata": {"name": want_name},
            "spec": {"partitions": ["summary/date=2025-01-01"]},
        },
    )


def want_state(kube: Kube, namespace: str, name: str) -> str | None:
    want = kube.get("Want", namespace, name)
    return want.get("status", {}).get("state")  # type: ignore[no-any-return]


def wait_successful(kube: Kube, namespace: str, name: str, log: Path) -> None:
    def done() -> bool | None:
        state = want_state(kube, namespace, name)
        assert state not in ("Failed", "Expired"), (
            f"Want {name} is {state}:\n{log.read_text()[-4000:]}"
        )
        return True if state == "Successful" else None

    wait_for(f"Want {namespace}/{name} to become Successful", done)


def partitions(kube: Kube, namespace: str) -> dict[str, str]:
    items = kube.list("Partition", namespace)
    return {p["spec"]["ref"]: p.get("status", {}).get("state") for p in items}


def crds_present(kube: Kube) -> set[str]:
    names = {c["metadata"]["name"] for c in kube.list("CustomResourceDefinition")}
    return names & CRDS


def forbidden(call: Callable[[], object]) -> bool:
    try:
        call()
    except KubeError as e:
        return e.status == 403
    return False


def assert_never_forbidden(log: Path) -> None:
    """RBAC never refused the operator anything (its watches included).

    Only authorization denials count ("User ... cannot VERB resource ..."): a 403 for
    writing into a namespace that is being deleted is the API server's lifecycle check.
    """
    denials = sorted(
        set(
            re.findall(
                r"cannot \w+ resource \\?\"[^\"\\]+\\?\" in API group \\?\"[^\"\\]*\\?\"",
                log.read_text(),
            )
        )
    )
    assert not denials, "the chart's RBAC refused the operator:\n" + "\n".join(denials)


def pod_ready(kube: Kube, release: Release) -> bool | None:
    pods = kube.list(
        "Pod", release.namespace, label_selector=f"app.kubernetes.io/instance={release.name}"
    )
    for pod in pods:
        for condition in (pod.get("status") or {}).get("conditions") or []:
            if condition["type"] == "Ready" and condition["status"] == "True":
                return True
    return None


def want_crd_version(kube: Kube) -> dict[str, Any]:
    """The served version of the Want CRD."""
    crd = kube.get("CustomResourceDefinition", None, f"wants.{GROUP}")
    version: dict[str, Any] = crd["spec"]["versions"][0]
    return version


def printer_columns(kube: Kube) -> list[str]:
    """The names of the Want CRD's printer columns."""
    return [c["name"] for c in want_crd_version(kube)["additionalPrinterColumns"]]


def want_spec_schema(kube: Kube) -> dict[str, Any]:
    """The schema of a Want's spec, as the API server serves it."""
    spec: dict[str, Any] = want_crd_version(kube)["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@pytest.fixture
def release(control_plane: Cluster, kube: Kube) -> Iterator[Release]:
    namespace = make_namespace(kube, "databuild-system", RESTRICTED)
    rel = Release(control_plane, f"db-{uuid.uuid4().hex[:6]}", namespace)
    try:
        yield rel
    finally:
        # A test that failed half-way leaves its release: remove it (cluster-scoped RBAC).
        if rel.helm("status", rel.name, "--namespace", namespace, check=False).returncode == 0:
            rel.uninstall()
        delete_namespace(kube, namespace)


def test_cluster_wide_install_build_upgrade_uninstall(
    release: Release, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    # Install: CRDs from the chart, the operator's pod Ready (kwok simulates it).
    notes = release.install().stdout
    assert "It watches every namespace" in notes
    assert f"rollout status deployment/{release.fullname}" in notes
    assert crds_present(kube) == CRDS
    wait_for(
        "the operator pod to be Ready", lambda: pod_ready(kube, release), diagnose=release.diagnosis
    )
    deployment = kube.get("Deployment", release.namespace, release.fullname)
    assert deployment["status"].get("readyReplicas") == 1

    # The chart's identity: everything the operator needs, and not Secrets.
    sa_kubeconfig = release.service_account_kubeconfig(kube, tmp_path / "sa.kubeconfig")
    with api_client_for(sa_kubeconfig) as sa:
        assert forbidden(lambda: sa.list("Secret", namespace))
        assert forbidden(lambda: sa.list("Secret"))
        assert forbidden(lambda: sa.get("Secret", release.namespace, "anything"))
        assert forbidden(lambda: sa.create({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": f"nope-{uuid.uuid4().hex[:6]}"}}))  # fmt: skip
        sa.list("Want")

    # The operator as the chart deploys it builds a Want end to end under that identity.
    log = tmp_path / "operator.log"
    apply_pipeline(kube, namespace, "first")
    with operator_as_deployed(release, sa_kubeconfig, log):
        wait_successful(kube, namespace, "first", log)
    built = partitions(kube, namespace)
    assert built == {"raw/date=2025-01-01": "Live", "summary/date=2025-01-01": "Live"}
    assert_never_forbidden(log)

    # Upgrade: a changed value rolls out; CRDs and the catalog are untouched.
    release.upgrade("--set", "resources.requests.cpu=150m")
    container = release.deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "150m"
    wait_for(
        "the upgraded pod to be Ready", lambda: pod_ready(kube, release), diagnose=release.diagnosis
    )
    assert crds_present(kube) == CRDS
    assert partitions(kube, namespace) == built

    # Uninstall: the operator goes, the CRDs and every Partition stay.
    release.uninstall()
    with pytest.raises(KubeError) as gone:
        kube.get("Deployment", release.namespace, release.fullname)
    assert gone.value.status == 404
    with pytest.raises(KubeError) as gone:
        kube.get("ClusterRole", None, release.fullname)
    assert gone.value.status == 404
    assert crds_present(kube) == CRDS
    assert partitions(kube, namespace) == built


def test_namespaced_mode_confines_the_operator_to_its_namespaces(
    release: Release, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    outside = make_namespace(kube, "outside")
    try:
        notes = release.install("--set", f"watchNamespaces={{{namespace}}}").stdout
        assert (
            f"It watches only these namespaces (a Role and RoleBinding in each):\n  - {namespace}\n"
            in notes
        )
        assert f"kubectl apply --namespace {namespace} -f examples/gitops/wants.yaml" in notes
        wait_for(
            "the operator pod to be Ready",
            lambda: pod_ready(kube, release),
            diagnose=release.diagnosis,
        )
        assert kube.get("Role", namespace, release.fullname)
        with pytest.raises(KubeError) as missing:
            kube.get("ClusterRole", None, release.fullname)
        assert missing.value.status == 404

        sa_kubeconfig = release.service_account_kubeconfig(kube, tmp_path / "sa.kubeconfig")
        with api_client_for(sa_kubeconfig) as sa:
            # Inside: allowed. Outside, cluster-wide, or Secrets anywhere: refused.
            sa.list("Want", namespace)
            assert forbidden(lambda: sa.list("Want", outside))
            assert forbidden(lambda: sa.list("Want"))
            assert forbidden(lambda: sa.list("Job", outside))
            assert forbidden(lambda: sa.list("Pod", outside))
            assert forbidden(lambda: sa.list("Secret", namespace))

        # A Want outside the watched namespace is left alone; the one inside completes.
        log = tmp_path / "operator.log"
        apply_pipeline(kube, namespace, "inside")
        apply_pipeline(kube, outside, "outside")
        with operator_as_deployed(release, sa_kubeconfig, log):
            wait_successful(kube, namespace, "inside", log)
            assert want_state(kube, outside, "outside") is None
        assert_never_forbidden(log)
    finally:
        delete_namespace(kube, outside)


def test_gitops_example_applied_with_kustomize_becomes_ready(
    release: Release, kube: Kube, tmp_path: Path
) -> None:
    """The README's first Want: `examples/gitops` applied as a GitOps tool would, built
    by the operator the chart deploys, and `kubectl wait --for=condition=Ready` returns."""
    kubectl = str(tool_binary("kubectl"))
    admin = {**os.environ, "KUBECONFIG": str(release.cluster.kubeconfig)}
    gitops = ROOT / "examples" / "gitops"
    wants = [
        d["metadata"]["name"]
        for d in yaml.safe_load_all((gitops / "wants.yaml").read_text())
        if d and d["kind"] == "Want"
    ]
    release.install()
    try:
        applied = subprocess.run(
            [kubectl, "apply", "--server-side", "-k", str(gitops)],
            env=admin, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        sa_kubeconfig = release.service_account_kubeconfig(kube, tmp_path / "sa.kubeconfig")
        log = tmp_path / "operator.log"
        with operator_as_deployed(release, sa_kubeconfig, log):
            for want in wants:
                waited = subprocess.run(
                    [kubectl, "wait", "--for=condition=Ready", f"--timeout={TIMEOUT:.0f}s",
                     f"want/{want}", "--namespace", "analytics"],
                    env=admin, capture_output=True, text=True, timeout=TIMEOUT + 30, check=False,
                )  # fmt: skip
                assert waited.returncode == 0, (
                    f"{waited.stdout}{waited.stderr}\n{log.read_text()[-4000:]}"
                )
                assert want_state(kube, "analytics", want) == "Successful"
        built = partitions(kube, "analytics")
        assert set(built.values()) == {"Live"}
        assert {"reviews/date=2025-01-01", "daily_summary/date=2025-01-02"} <= built.keys()
        assert_never_forbidden(log)
    finally:
        delete_namespace(kube, "analytics")


def test_managed_crds_are_upgraded_by_helm_and_kept_on_uninstall(
    release: Release, kube: Kube, tmp_path: Path
) -> None:
    """crds.managed=true: `helm upgrade` applies a CRD change; `helm uninstall` keeps them.

    The CRDs usually exist already (from crds/ or an earlier install), so the install
    adopts them (--take-ownership), as docs/install.md says for switching modes."""
    release.install("--skip-crds", "--take-ownership", "--set", "crds.managed=true")
    want_crd = kube.get("CustomResourceDefinition", None, f"wants.{GROUP}")
    assert want_crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert want_crd["metadata"]["annotations"]["meta.helm.sh/release-name"] == release.name
    original = [c["name"] for c in want_crd["spec"]["versions"][0]["additionalPrinterColumns"]]

    # A new chart version whose Want CRD gained a printer column.
    changed = tmp_path / "databuild-operator"
    shutil.copytree(CHART, changed)
    crd_file = changed / "crds" / f"{GROUP}_wants.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Since", "type": "date", "jsonPath": ".status.finishedAt"}
    )
    crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
    try:
        release.helm(
            "upgrade", release.name, str(changed), "--namespace", release.namespace,
            "--reuse-values", "--wait", "--timeout", "3m",
        )  # fmt: skip
        assert printer_columns(kube) == [*original, "Since"]
    finally:
        # Back to the repository's CRDs, for every later test of the session.
        release.upgrade()
    assert printer_columns(kube) == original

    release.uninstall()
    assert crds_present(kube) == CRDS


def test_namespace_editors_may_write_wants_but_not_the_catalog(
    release: Release, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """The built-in `edit` role, extended by the chart, lets a person write Wants."""
    release.install()
    kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "alice"}}, namespace
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-edit"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": namespace}],
        },
        namespace,
    )
    path = service_account_kubeconfig(
        release.cluster, kube, namespace, "alice", tmp_path / "alice.kubeconfig"
    )
    with api_client_for(path) as alice:
        _alice_writes_wants_only(alice, namespace)


def _alice_writes_wants_only(alice: Kube, namespace: str) -> None:
    want = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Want",
        "metadata": {"name": "by-alice"},
        "spec": {"partitions": ["raw/date=2025-01-01"]},
    }

    def created() -> bool | None:
        # The controller-manager aggregates the chart's rules into `edit` asynchronously.
        try:
            alice.create(want, namespace)
        except Forbidden:
            return None
        return True

    wait_for("alice (edit) to be allowed to create a Want", created, timeout=60)
    alice.list("Partition", namespace)
    partition = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Partition",
        "metadata": {"name": "forged"},
        "spec": {"ref": "raw/date=2025-01-01"},
    }
    assert forbidden(lambda: alice.create(partition, namespace)), (
        "the catalog is the operator's to write"
    )


def test_a_new_optional_crd_field_rolls_out_through_managed_crds_keeping_every_object(
    release: Release, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    """crds.managed=true, as a GitOps pipeline upgrades a release: a chart whose Want CRD
    gained an optional field updates the CRD on the server, every Want, JobDefinition,
    Partition and JobRun survives unchanged, and the field is stored afterwards (the
    running operator ignores fields it does not know, so it builds such a Want)."""
    release.install("--skip-crds", "--take-ownership", "--set", "crds.managed=true")
    sa_kubeconfig = release.service_account_kubeconfig(kube, tmp_path / "sa.kubeconfig")
    log = tmp_path / "operator.log"
    apply_pipeline(kube, namespace, "first")

    def objects() -> dict[tuple[str, str], tuple[str, str, Any]]:
        """(plural, name) -> (uid, state, spec) of every object in the namespace."""
        out = {}
        for kind in ("JobDefinition", "Want", "Partition", "JobRun"):
            plural = KINDS[kind].plural
            for o in kube.list(kind, namespace):
                state = (o.get("status") or {}).get("state", "")
                out[plural, o["metadata"]["name"]] = (o["metadata"]["uid"], state, o["spec"])
        return out

    noted = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Want",
        "metadata": {"name": "noted"},
        "spec": {"partitions": ["summary/date=2025-01-02"], "note": "for the weekly report"},
    }
    with operator_as_deployed(release, sa_kubeconfig, log):
        wait_successful(kube, namespace, "first", log)
        wait_for(
            "the operator to write its last status",
            lambda: (
                all(
                    (j.get("status") or {}).get("state") == "Succeeded"
                    for j in kube.list("JobRun", namespace)
                )
                or None
            ),
        )
        before = objects()
        assert {p for p, _ in before} == {"jobdefinitions", "wants", "partitions", "jobruns"}
        # Today the field is unknown: the API server prunes it.
        dry = kube.create(noted, namespace, query=[("dryRun", "All")])
        assert "note" not in dry["spec"]

        # The next chart version: the Want CRD gained an optional spec.note.
        changed = tmp_path / "databuild-operator"
        shutil.copytree(CHART, changed)
        crd_file = changed / "crds" / f"{GROUP}_wants.yaml"
        crd = yaml.safe_load(crd_file.read_text())
        spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert "note" not in spec_schema["properties"]
        spec_schema["properties"]["note"] = {"type": "string", "maxLength": 256}
        crd_file.write_text(yaml.safe_dump(crd, sort_keys=False))
        try:
            release.helm(
                "upgrade", release.name, str(changed), "--namespace", release.namespace,
                "--reuse-values", "--wait", "--timeout", "3m",
            )  # fmt: skip
            assert want_spec_schema(kube)["properties"]["note"]["type"] == "string"
            # Nothing lost or replaced: the same objects, specs and states.
            assert objects() == before
            kube.create(noted, namespace)
            stored = kube.get("Want", namespace, "noted")
            assert stored["spec"]["note"] == "for the weekly report"
            wait_successful(kube, namespace, "noted", log)
            # The new field is validated like any other.
            too_long = {**noted, "metadata": {"name": "too-long"}}
            too_long["spec"] = {**noted["spec"], "note": "x" * 300}
            with pytest.raises(KubeError) as rejected:
                kube.create(too_long, namespace)
            assert rejected.value.status == 422
            assert "spec.note" in str(rejected.value)
        finally:
            # Back to the repository's CRDs, for every later test of the session.
            kube.delete("Want", namespace, "noted")
            release.upgrade()
    assert "note" not in want_spec_schema(kube)["properties"]
    assert_never_forbidden(log)
