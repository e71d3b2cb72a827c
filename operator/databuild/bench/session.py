"""The benchmark's cluster and operator: start (or attach to) a control plane, set up
the identities both sides run as, and run the operator as a child process.

Both the baseline and the operator authenticate as ServiceAccounts of their own (bound
to ``cluster-admin``), so their requests can be told apart from everything else's. When
the benchmark starts the control plane, it also switches on an audit log of exactly
those two identities (see :mod:`databuild.bench.audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import databuild
from databuild.adapters.labels import OUTCOME_FINALIZER
from databuild.bench.audit import AuditLog, audit_policy
from databuild.bench.kube import ApiError, Kube, kubeconfig_with_token
from databuild.bench.memory import ENV as TRACEMALLOC_ENV
from databuild.bench.memory import install_hook
from databuild.testing import ControlPlane
from databuild.testing.demo import OperatorProcess

__all__ = [
    "BASELINE_USER",
    "OPERATOR_USER",
    "TUNED_FLAGS",
    "BenchCluster",
    "RunningOperator",
    "bench_cluster",
    "create_namespace",
    "delete_namespace",
]

IDENTITY_NAMESPACE = "databuild-bench"
OPERATOR_USER = f"system:serviceaccount:{IDENTITY_NAMESPACE}:operator"
BASELINE_USER = f"system:serviceaccount:{IDENTITY_NAMESPACE}:baseline"

#: More job controller workers than the harness's (the default, 5), so that many
#: independent Jobs are not queued behind a few workers on both sides.
TUNED_FLAGS: Mapping[str, tuple[str, ...]] = {
    "kube-controller-manager": (
        "--concurrent-job-syncs=50",
        "--concurrent-ttl-after-finished-syncs=20",
    ),
}

#: The flags that bound Job throughput, with each component's built-in default; the
#: results show the values the running components were started with.
THROUGHPUT_FLAGS: Mapping[str, Mapping[str, str]] = {
    "kube-controller-manager": {
        "--kube-api-qps": "20",
        "--kube-api-burst": "30",
        "--concurrent-job-syncs": "5",
        "--concurrent-ttl-after-finished-syncs": "5",
        "--concurrent-gc-syncs": "20",
    },
    "kube-scheduler": {"--kube-api-qps": "50", "--kube-api-burst": "100"},
    "kwok": {"--kube-api-qps": "(kwok's default)", "--kube-api-burst": "(kwok's default)"},
}


@dataclass
class BenchCluster:
    """The cluster of one benchmark session and the kubeconfigs of its identities."""

    admin_kubeconfig: Path
    operator_kubeconfig: Path
    baseline_kubeconfig: Path
    workdir: Path
    plane: ControlPlane | None = None
    audit: AuditLog | None = None
    component_flags: dict[str, dict[str, str]] = field(default_factory=dict)
    """Throughput-relevant flags per component, as run (defaults filled in)."""
    operator_source: Path | None = None
    """A copy of the ``databuild`` package every operator run imports (PYTHONPATH)."""
    operator_revision: str = "unknown"
    """The git commit the operator code came from ("+ local changes" if modified)."""

    def component_pids(self) -> dict[str, int]:
        """The control plane's processes (empty for an existing cluster)."""
        return self.plane.processes if self.plane is not None else {}


def snapshot_operator(workdir: Path) -> tuple[Path, str]:
    """Copy the ``databuild`` package, so that every operator run of a session runs the
    same code even while the checkout changes; (directory for PYTHONPATH, revision)."""
    package = Path(databuild.__file__).resolve().parent
    target = workdir / "operator-source"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(package, target / "databuild", ignore=shutil.ignore_patterns("__pycache__"))
    install_hook(target)
    return target, source_revision(package)


def source_revision(path: Path) -> str:
    """``<short commit>`` of the checkout holding ``path``, ``+ local changes`` when the
    package differs from it; "unknown" outside a git checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit} + local changes" if dirty else commit


def effective_flags(argv: Sequence[str], defaults: Mapping[str, str]) -> dict[str, str]:
    """``defaults`` overridden by ``--flag=value`` / ``--flag value`` in ``argv`` (the
    last occurrence wins, as for the components' flag parser)."""
    values = dict(defaults)
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name not in values:
            continue
        if eq:
            values[name] = value
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            values[name] = argv[i + 1]
    return values


def flags_in_effect(pids: Mapping[str, int]) -> dict[str, dict[str, str]]:
    """The throughput flags of the running components, read from /proc/<pid>/cmdline."""
    effective: dict[str, dict[str, str]] = {}
    for component, defaults in THROUGHPUT_FLAGS.items():
        pid = pids.get(component)
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes() if pid is not None else b""
        except OSError:
            raw = b""
        argv = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
        effective[component] = effective_flags(argv, defaults)
    effective["kwok"]["pod stages (databuild.testing)"] = (
        "a batch Job's pod succeeds 1 s after it runs"
    )
    return effective


async def _setup_identities(admin: Path, workdir: Path) -> tuple[Path, Path]:
    """ServiceAccounts ``operator`` and ``baseline`` bound to cluster-admin; their kubeconfigs."""
    paths = []
    async with Kube.from_kubeconfig(admin) as kube:
        with contextlib.suppress(ApiError):
            await kube.request(
                "POST", "/api/v1/namespaces", {"metadata": {"name": IDENTITY_NAMESPACE}}
            )
        for name in ("operator", "baseline"):
            with contextlib.suppress(ApiError):
                await kube.request(
                    "POST",
                    f"/api/v1/namespaces/{IDENTITY_NAMESPACE}/serviceaccounts",
                    {"metadata": {"name": name}},
                )
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"databuild-bench-{name}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": name, "namespace": IDENTITY_NAMESPACE}
                ],
            }
            with contextlib.suppress(ApiError):
                await kube.request(
                    "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding
                )
            token = await kube.request(
                "POST",
                f"/api/v1/namespaces/{IDENTITY_NAMESPACE}/serviceaccounts/{name}/token",
                {
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 86400},
                },
            )
            doc = kubeconfig_with_token(
                admin, str(token["status"]["token"]), f"databuild-bench-{name}"
            )
            path = workdir / f"{name}.kubeconfig"
            path.touch(mode=0o600)
            path.write_text(yaml.safe_dump(doc))
            paths.append(path)
    return paths[0], paths[1]


@contextlib.contextmanager
def bench_cluster(
    workdir: Path, *, existing: Path | None = None, tuned: bool = True
) -> Iterator[BenchCluster]:
    """A cluster for the benchmark: ``existing`` (a kubeconfig), or a new local control
    plane (with :data:`TUNED_FLAGS` unless ``tuned`` is false, and an audit log)."""
    workdir.mkdir(parents=True, exist_ok=True)
    source, revision = snapshot_operator(workdir)
    if existing is not None:
        operator_kc, baseline_kc = asyncio.run(_setup_identities(existing, workdir))
        yield BenchCluster(
            existing,
            operator_kc,
            baseline_kc,
            workdir,
            operator_source=source,
            operator_revision=revision,
        )
        return
    policy = workdir / "audit-policy.yaml"
    policy.write_text(audit_policy([OPERATOR_USER, BASELINE_USER]))
    audit_path = workdir / "audit.log"
    extra: dict[str, list[str]] = {
        "kube-apiserver": [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={audit_path}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]
    }
    tuned_flags = dict(TUNED_FLAGS) if tuned else {}
    for component, flags in tuned_flags.items():
        extra.setdefault(component, []).extend(flags)
    plane = ControlPlane(run_dir=workdir / "control-plane", extra_args=extra)
    plane.start()
    try:
        operator_kc, baseline_kc = asyncio.run(_setup_identities(plane.kubeconfig, workdir))
        yield BenchCluster(
            plane.kubeconfig,
            operator_kc,
            baseline_kc,
            workdir,
            plane=plane,
            audit=AuditLog(audit_path),
            component_flags=flags_in_effect(plane.processes),
            operator_source=source,
            operator_revision=revision,
        )
    finally:
        plane.stop()
        audit_path.unlink(missing_ok=True)


async def create_namespace(kube: Kube, name: str, timeout: float = 30.0) -> None:
    """Create a namespace and wait for its ``default`` ServiceAccount (pods need it)."""
    await kube.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    deadline = time.monotonic() + timeout
    while True:
        try:
            await kube.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default")
            return
        except ApiError as error:
            if error.status != 404 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def delete_namespace(kube: Kube, name: str, timeout: float = 600.0) -> bool:
    """Delete a namespace and wait until it is gone (so the next scenario starts on a
    quiet control plane); whether it went within ``timeout``."""
    with contextlib.suppress(ApiError):
        await kube.request(
            "DELETE", f"/api/v1/namespaces/{name}", {"propagationPolicy": "Background"}
        )
    # The scenario's operator has stopped, maybe right after its last Want turned
    # Successful and before it let its batch Jobs go: their outcome finalizer would hold
    # the namespace for ever. A bench namespace is thrown away, so release them here.
    await _release_outcome_finalizers(kube, name)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await kube.request("GET", f"/api/v1/namespaces/{name}")
        except ApiError as error:
            if error.status == 404:
                return True
            raise
        await asyncio.sleep(0.5)
    return False


async def _release_outcome_finalizers(kube: Kube, namespace: str) -> None:
    try:
        jobs = await kube.request("GET", f"/apis/batch/v1/namespaces/{namespace}/jobs")
    except ApiError:
        return
    for job in jobs.get("items") or []:
        finalizers = job["metadata"].get("finalizers") or []
        if OUTCOME_FINALIZER not in finalizers:
            continue
        kept = [f for f in finalizers if f != OUTCOME_FINALIZER]
        with contextlib.suppress(ApiError):
            await kube.request(
                "PATCH",
                f"/apis/batch/v1/namespaces/{namespace}/jobs/{job['metadata']['name']}",
                {"metadata": {"finalizers": kept or None}},
                content_type="application/merge-patch+json",
            )


def _free_ports(count: int) -> list[int]:
    """``count`` loopback ports free right now (the kernel's choice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class RunningOperator:
    """``python -m databuild.operator`` serving one namespace, as the operator identity."""

    cluster: BenchCluster
    namespace: str
    log_path: Path
    extra_args: tuple[str, ...] = ()
    trace_memory_to: Path | None = None
    """Run with tracemalloc; SIGUSR1 writes the biggest allocation sites here."""
    process: OperatorProcess | None = None
    metrics_port: int = 0
    health_port: int = 0

    def start(self) -> RunningOperator:
        """Start the process (from the session's snapshot of the code, if any)."""
        self.metrics_port, self.health_port = _free_ports(2)
        self.process = OperatorProcess(
            kubeconfig=self.cluster.operator_kubeconfig,
            namespaces=[self.namespace],
            log_path=self.log_path,
            metrics_port=self.metrics_port,
            extra_args=[
                # A Lease of its own in its namespace: no other operator to wait for.
                "--lease-name",
                "databuild-bench",
                "--lease-namespace",
                self.namespace,
                "--health-port",
                str(self.health_port),
                *self.extra_args,
            ],
            env=self._env(),
        ).start()
        return self

    def _env(self) -> dict[str, str]:
        env = {}
        if self.cluster.operator_source is not None:
            env["PYTHONPATH"] = str(self.cluster.operator_source)
        if self.trace_memory_to is not None:
            env[TRACEMALLOC_ENV] = str(self.trace_memory_to)
        return env

    @property
    def pid(self) -> int | None:
        """The operator's process id."""
        if self.process is None or self.process.process is None:
            return None
        return self.process.process.pid

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.alive

    def metrics(self) -> dict[str, float]:
        """The operator's Prometheus metrics (empty when they cannot be read)."""
        if self.process is None:
            return {}
        try:
            return self.process.metrics()
        except (OSError, urllib.error.URLError, ValueError):
            return {}

    def log_tail(self, lines: int = 40) -> str:
        """The end of the operator's log."""
        return self.process.log_tail(lines) if self.process is not None else ""

    def stop(self) -> None:
        """SIGTERM (then SIGKILL) the operator."""
        if self.process is not None:
            self.process.stop(timeout=15)


def gateway_counts(metrics: Mapping[str, float]) -> tuple[float, float] | None:
    """(requests, writes) the operator's gateway reported, if it exports them."""
    requests = [v for k, v in metrics.items() if k.startswith("databuild_api_requests_total{")]
    writes = [v for k, v in metrics.items() if k.startswith("databuild_api_writes_total{")]
    if not requests and not writes:
        return None
    return sum(requests), sum(writes)
