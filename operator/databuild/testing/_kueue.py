"""Kueue, the job queueing controller, as a local process for queue tests.

`make kueue` builds its manager from the Go module once per version (hack/build-kueue.sh,
pinned in hack/versions.env) with its CRDs and webhook configurations from the same
module version, and links the cache at `.databuild/kueue`. `Kueue` runs the manager
against a cluster the way `Flux` runs Flux's controllers: CRDs installed, one process
with a Configuration file, its admission webhooks served on loopback with a certificate
of our own CA and registered with the API server by URL.
"""

from __future__ import annotations

import base64
import copy
import os
import shlex
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from databuild.testing._binaries import (
    cache_root,
    databuild_dir,
    find_project_root,
    read_versions,
)
from databuild.testing._controlplane import api_client_from_kubeconfig
from databuild.testing._pki import CertificateAuthority
from databuild.testing._ports import free_ports
from databuild.testing._process import Process, install_exit_hooks, wait_ready
from databuild.testing.demo import KubeError, apply_manifest, install_crds, request
from databuild.testing.kube import Kube

#: The namespace Kueue's manager works in (its default; it records events there).
KUEUE_NAMESPACE = "kueue-system"
#: The integrations the harness enables: Kueue manages batch Jobs, and nothing else.
FRAMEWORKS = ("batch/job",)
#: The API groups whose webhooks are registered: Kueue's own objects and batch Jobs.
#: The other integrations' webhooks (Pods, Deployments, ...) would put a
#: `failurePolicy: Fail` webhook in front of every such object in the cluster.
WEBHOOK_GROUPS = frozenset({"kueue.x-k8s.io", "batch"})
#: Where Kueue's manager reads its metrics server's certificate (fixed in its main.go).
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
#: Names the webhook configurations get in the cluster (as in Kueue's release manifests).
WEBHOOK_PREFIX = "kueue-"

_MAKE_HINT = "run `make kueue` in the project (it builds it once per version, cached)"
_ADMISSION_API = "/apis/admissionregistration.k8s.io/v1"
_WEBHOOK_PATHS = {
    "MutatingWebhookConfiguration": f"{_ADMISSION_API}/mutatingwebhookconfigurations",
    "ValidatingWebhookConfiguration": f"{_ADMISSION_API}/validatingwebhookconfigurations",
}


def _in_own_etc(etc: Path, argv: Sequence[str]) -> list[str]:
    """`argv` run with `etc`'s overlay mounted on /etc in a mount namespace of its own.

    With internal certificate management off, Kueue's manager reads its metrics
    server's certificate from the fixed path /etc/kueue/metrics/certs (no setting moves
    it) and exits when it is missing. The overlay adds that one directory for this
    process alone: the host's /etc is neither written nor seen changed, and parallel
    runs each have their own. Mounting needs root, or else an unprivileged user
    namespace (`--map-root-user`). `exec` keeps the manager in the started process, so
    stopping its process group stops it.
    """
    options = f"lowerdir=/etc,upperdir={etc / 'upper'},workdir={etc / 'work'}"
    mount = f"mount -t overlay overlay -o {shlex.quote(options)} /etc"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [
        "unshare",
        *user,
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        f'{mount} && exec "$@"',
        "kueue",
        *argv,
    ]


class KueueNotFound(RuntimeError):
    """The Kueue binary, its CRDs or its webhook manifests are not where the harness looks."""


class KueueError(RuntimeError):
    """Kueue's manager did not start or stopped."""


@dataclass(frozen=True)
class KueueBinaries:
    """Paths of Kueue's manager, its CRDs and its webhook configurations."""

    kueue: Path
    crds: Path
    webhooks: Path
    source: str


def kueue_cache_dir(versions: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    """The build cache's bin directory (computed as hack/build-kueue.sh does)."""
    root = cache_root(env)
    return root / "kueue" / versions["KUEUE_VERSION"] / "bin"


def find_kueue_binaries(
    env: Mapping[str, str] | None = None, start: Path | None = None
) -> KueueBinaries:
    """Locate Kueue's manager, its CRDs and its webhook manifests.

    Order: `$DATABUILD_KUEUE_BIN`, else the project's `.databuild/kueue`, else the build
    cache computed from `hack/versions.env`.

    Raises:
        KueueNotFound: with where it looked and what to run.
    """
    env = os.environ if env is None else env
    if env.get("DATABUILD_KUEUE_BIN"):
        candidates = [Path(env["DATABUILD_KUEUE_BIN"])]  # explicit: never another one
    else:
        candidates = [databuild_dir(env, start) / "kueue"]
        root = find_project_root(start)
        if root is not None:
            versions = read_versions(root / "hack" / "versions.env")
            try:
                candidates.append(kueue_cache_dir(versions, env))
            except KeyError as key:
                raise KueueNotFound(f"{root / 'hack' / 'versions.env'} lacks {key}") from None
    looked = []
    names = ("kueue", "crds", "webhook/manifests.yaml")
    for directory in candidates:
        missing = [n for n in names if not os.access(directory / n, os.R_OK)]
        if not missing:
            return KueueBinaries(
                directory / "kueue",
                directory / "crds",
                directory / "webhook" / "manifests.yaml",
                str(directory),
            )
        looked.append(f"{directory} (missing {', '.join(missing)})")
    raise KueueNotFound(f"Kueue not found; looked in: {'; '.join(looked)}. {_MAKE_HINT}")


def kueue_configuration(
    *, webhook_port: int, cert_dir: Path, metrics_port: int, health_port: int
) -> dict[str, Any]:
    """The manager's `Configuration` (config.kueue.x-k8s.io/v1beta2) for one local run.

    No leader election (one replica), no internal certificate management (the harness
    brings the certificate and registers the webhooks itself), every endpoint on loopback,
    only batch Jobs managed and only those naming a queue, and no visibility API server
    (it would need an APIService and the aggregation layer).
    """
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": KUEUE_NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "integrations": {"frameworks": list(FRAMEWORKS)},
        "featureGates": {"VisibilityOnDemand": False},
    }


def webhook_configurations(
    manifests: Iterable[Mapping[str, Any]], base_url: str, ca_bundle: bytes
) -> list[dict[str, Any]]:
    """Kueue's webhook configurations, pointed at a manager outside the cluster.

    Each webhook's `clientConfig.service` (Kueue's in-cluster Service) becomes
    `clientConfig.url` = `base_url` + its path, trusted through `ca_bundle` (PEM);
    webhooks for API groups outside `WEBHOOK_GROUPS` are left out, and the
    configurations are renamed with `WEBHOOK_PREFIX`.
    """
    out = []
    for manifest in manifests:
        if manifest.get("kind") not in _WEBHOOK_PATHS:
            continue
        doc = copy.deepcopy(dict(manifest))
        webhooks = []
        for webhook in doc.get("webhooks") or []:
            groups = {g for rule in webhook.get("rules") or [] for g in rule.get("apiGroups") or []}
            if not groups or not groups <= WEBHOOK_GROUPS:
                continue
            service = webhook["clientConfig"]["service"]
            webhook["clientConfig"] = {
                "url": base_url.rstrip("/") + service["path"],
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
            webhooks.append(webhook)
        doc["metadata"] = {"name": WEBHOOK_PREFIX + str(doc["metadata"]["name"])}
        doc["webhooks"] = webhooks
        out.append(doc)
    return out


class Kueue:
    """Kueue's manager running against one cluster.

    `start()` installs Kueue's CRDs (from the same module version) and the
    `kueue-system` namespace, starts the manager with a Configuration file (see
    `kueue_configuration`), waits for its `/readyz` (which answers once the webhook
    server listens) and registers its webhooks by URL; `stop()` removes the webhook
    configurations first (they fail closed: without the manager no batch Job could be
    created), then stops the manager. The CRDs stay. The manager acts as the
    kubeconfig's user (the cluster admin in tests). Process handling is
    `ControlPlane`'s: own session, log in `logs_dir`, killed with the starting thread.
    """

    def __init__(
        self,
        kubeconfig: Path,
        binaries: KueueBinaries | None = None,
        run_dir: Path | None = None,
        *,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.binaries = binaries or find_kueue_binaries()
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="databuild-kueue-"))
        self.logs_dir = self.run_dir / "logs"
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        self.process: Process | None = None
        self.health_port = 0
        self.webhook_port = 0
        self.timings: dict[str, float] = {}
        self._webhooks: list[dict[str, Any]] = []

    def __enter__(self) -> Kueue:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Install the CRDs and the namespace, start the manager, wait until it is
        ready, then register its webhooks."""
        begin = time.monotonic()
        with api_client_from_kubeconfig(self.kubeconfig) as api:
            install_crds(api, self.binaries.crds)
            namespace = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": KUEUE_NAMESPACE},
            }
            apply_manifest(api, namespace)
        self.timings["crds"] = time.monotonic() - begin
        install_exit_hooks(self.stop)
        self.webhook_port, metrics_port, self.health_port = free_ports(3)
        ca = CertificateAuthority("databuild-kueue-webhook-ca")
        cert_dir = self.run_dir / "certs"
        cert_dir.mkdir(parents=True, exist_ok=True)
        # controller-runtime's webhook server reads tls.crt and tls.key from certDir.
        serving = ca.serving("kueue-webhook", dns_names=("localhost",), ips=("127.0.0.1",))
        serving.write(cert_dir, "tls")
        etc = self._metrics_certificate(ca)
        config = self.run_dir / "configuration.yaml"
        config.write_text(
            yaml.safe_dump(
                kueue_configuration(
                    webhook_port=self.webhook_port,
                    cert_dir=cert_dir,
                    metrics_port=metrics_port,
                    health_port=self.health_port,
                )
            )
        )
        manager = [str(self.binaries.kueue), f"--config={config}", *self.extra_args]
        self.process = Process(
            "kueue",
            _in_own_etc(etc, manager),
            self.logs_dir / "kueue.log",
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            cwd=self.run_dir,
        )
        try:
            self.process.start()
            self._wait_ready()
            self.timings["ready"] = time.monotonic() - begin
            manifests = [d for d in yaml.safe_load_all(self.binaries.webhooks.read_text()) if d]
            self._webhooks = webhook_configurations(
                manifests, f"https://127.0.0.1:{self.webhook_port}", ca.keypair.cert_pem
            )
            with api_client_from_kubeconfig(self.kubeconfig) as api:
                for doc in self._webhooks:
                    self._apply_webhook(api, doc)
            self.timings["webhooks"] = time.monotonic() - begin
        except BaseException:
            self.stop()
            raise

    def _metrics_certificate(self, ca: CertificateAuthority) -> Path:
        """An overlay for /etc holding the metrics server's certificate (see
        `_in_own_etc`); returns the overlay's directory."""
        etc = self.run_dir / "etc"
        certs = etc / "upper" / METRICS_CERT_DIR.relative_to("/etc")
        certs.mkdir(parents=True, exist_ok=True)
        (etc / "work").mkdir(exist_ok=True)
        ca.serving("kueue-metrics", dns_names=("localhost",), ips=("127.0.0.1",)).write(
            certs, "tls"
        )
        return etc

    @staticmethod
    def _apply_webhook(api: Kube, doc: Mapping[str, Any]) -> None:
        name = doc["metadata"]["name"]
        request(
            api,
            "PATCH",
            f"{_WEBHOOK_PATHS[doc['kind']]}/{name}",
            doc,  # JSON is YAML
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", "databuild-kueue-harness"), ("force", "true")],
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        wait_ready(self.process, "kueue", url, self.startup_timeout, KueueError)

    def check(self) -> None:
        """Raise KueueError if the manager has stopped."""
        if self.process is not None and not self.process.alive():
            raise KueueError(
                f"kueue exited with {self.process.exit_code()}; its log:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the manager's log."""
        if self.process is None:
            return ""
        return f"--- kueue ({self.process.log}) ---\n{self.process.log_tail(lines)}"

    def stop(self) -> None:
        """Remove the webhook configurations, then stop the manager; idempotent."""
        webhooks, self._webhooks = self._webhooks, []
        if webhooks:
            try:
                with api_client_from_kubeconfig(self.kubeconfig) as api:
                    for doc in webhooks:
                        try:
                            request(
                                api,
                                "DELETE",
                                f"{_WEBHOOK_PATHS[doc['kind']]}/{doc['metadata']['name']}",
                            )
                        except KubeError as error:
                            if error.status != 404:
                                raise
            except (KubeError, OSError):
                pass  # the cluster is gone (stopped before us): nothing to unregister
        if self.process is not None:
            self.process.stop()
