"""The local control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import yaml

from databuild.testing import _node, _pki
from databuild.testing._binaries import Binaries, find_binaries
from databuild.testing._ports import free_ports
from databuild.testing._process import Process, install_exit_hooks, rss_bytes
from databuild.testing.kube import Kube

#: The one simulated node; kwok manages nodes carrying this annotation.
NODE_NAME = "kwok-node-0"
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
#: Pod IPs kwok hands out; outside the service range so addresses are unambiguous.
POD_CIDR = "10.244.0.0/16"
#: The node Lease kwok renews (every quarter of it), as a kubelet's default.
NODE_LEASE_SECONDS = 40

# Component names, in start order (stop order is the reverse).
ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KWOK = "kwok"


_PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = "address already in use"


class ControlPlaneError(RuntimeError):
    """The control plane failed to start, or a component died."""


class Cluster(Protocol):
    """What tests need from a cluster, whether the harness started it or not."""

    @property
    def kubeconfig(self) -> Path:
        """Path of an admin kubeconfig."""
        ...

    def api_client(self) -> Kube:
        """A new authenticated :class:`~databuild.testing.kube.Kube` (close it when done)."""
        ...


def api_client_from_kubeconfig(kubeconfig: Path, context: str | None = None) -> Kube:
    """A :class:`~databuild.testing.kube.Kube` for a kubeconfig file (read, never written)."""
    return Kube.from_kubeconfig(kubeconfig, context)


@dataclass(frozen=True)
class ExistingCluster:
    """A cluster somebody else runs (e.g. `DATABUILD_TEST_KUBECONFIG`): nothing to start."""

    kubeconfig: Path
    context: str | None = None

    def api_client(self) -> Kube:
        """A new authenticated :class:`~databuild.testing.kube.Kube` for the kubeconfig."""
        return api_client_from_kubeconfig(self.kubeconfig, self.context)


@dataclass
class Ports:
    """The loopback ports of one control plane."""

    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int
    """kwok's kubelet-like server: the API server reads pod logs from it."""

    @classmethod
    def allocate(cls) -> Ports:
        """Six distinct free ports."""
        return cls(*free_ports(6))


@dataclass
class _Paths:
    root: Path
    pki: Path = field(init=False)
    logs: Path = field(init=False)
    etcd_data: Path = field(init=False)
    kwok_home: Path = field(init=False)

    def __post_init__(self) -> None:
        self.pki = self.root / "pki"
        self.logs = self.root / "logs"
        self.etcd_data = self.root / "etcd-data"
        self.kwok_home = self.root / "kwok-home"


def stage_documents() -> str:
    """The kwok Stages shipped with the package, as one multi-document YAML."""
    folder = resources.files("databuild.testing").joinpath("stages")
    names = sorted(f.name for f in folder.iterdir() if f.name.endswith(".yaml"))
    return "\n---\n".join(folder.joinpath(n).read_text() for n in names)


#: What ``kubectl logs`` (and ``databuild logs``) shows for every pod on the simulated node:
#: kwok runs no containers, so it serves this file, in the CRI log format a kubelet reads.
SIMULATED_LOG_LINES = (
    "simulated pod log: kwok runs no container, so every pod shows these lines",
    "a real node serves the container's own output here",
)


def pod_log_documents(log_file: Path) -> str:
    """kwok's ClusterLogs: every pod's log is `log_file` (for ``pods/log`` requests)."""
    logs = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterLogs",
        "metadata": {"name": "every-pod"},
        "spec": {"selector": {}, "logs": [{"logsFile": str(log_file), "follow": False}]},
    }
    return yaml.safe_dump(logs)


def kubeconfig_document(
    server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user: str
) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded) for one user."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "databuild",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": "databuild", "context": {"cluster": "databuild", "user": user}}],
        "current-context": "databuild",
    }


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.write_text(text)


# Every started, not yet stopped control plane: stopped at interpreter exit. Strong
# references: one the caller forgot is still stopped in order.
_RUNNING: set[ControlPlane] = set()


def _stop_all() -> None:
    for plane in list(_RUNNING):
        with contextlib.suppress(Exception):
            plane.stop()


class ControlPlane:
    """A real, local Kubernetes control plane run as child processes.

    Starts etcd, kube-apiserver (RBAC on, client certificates, ServiceAccount
    tokens), kube-controller-manager, kube-scheduler and kwok with one simulated
    Node, on free loopback ports, in `run_dir` (a fresh temporary directory by
    default). Pods of batch Jobs finish as the simulated-outcome annotations say
    (see `databuild.testing.outcomes`). Use it as a context manager::

        with ControlPlane() as cp:
            api = cp.api_client()
            ...

    `start()` returns once the node is Ready and the `default` ServiceAccount exists;
    any failure raises ControlPlaneError quoting the failing component's log. The
    components die with the thread that started them (even on SIGKILL), so start it
    from a long-lived thread.

    Attributes:
        run_dir: where the certificates, kubeconfigs, logs and etcd data live.
        kubeconfig: the admin kubeconfig (user `admin`, group `system:masters`),
            self-contained, written by `start()`.
        logs_dir: one `<component>.log` per component.
        binaries: the executables used.
        ports: the loopback ports in use (after `start()`).
        server: the apiserver URL (after `start()`).
        timings: seconds from `start()` until each milestone (component ready,
            `node-ready`, `ready`).
    """

    def __init__(
        self,
        run_dir: Path | str | None = None,
        binaries: Binaries | None = None,
        *,
        startup_timeout: float = 120.0,
        keep_run_dir: bool = False,
        extra_args: dict[str, list[str]] | None = None,
        real_node: bool | None = None,
    ) -> None:
        """Prepare (but do not start) a control plane.

        Args:
            run_dir: directory for its files; created if missing. Default: a new
                temporary directory, removed by `stop()` unless `keep_run_dir`.
            binaries: executables to use; default `find_binaries()`.
            startup_timeout: seconds `start()` may take in total.
            keep_run_dir: keep a temporary `run_dir` after `stop()` (logs!).
            extra_args: more command-line flags per component name, e.g.
                `{"kube-apiserver": ["--v=4"]}`.
            real_node: also run a real node (containerd, kubelet, kube-proxy; see
                `databuild.testing.node`). None (default): as `DATABUILD_REAL_NODE`
                says, `auto` unless set: where this machine can run it; otherwise
                `real_node_note` says why not.
        """
        self._owns_run_dir = run_dir is None
        self._keep_run_dir = keep_run_dir
        root = (
            Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="databuild-cp-"))
        )
        self.run_dir = root.resolve()
        self._paths = _Paths(self.run_dir)
        self.binaries = binaries
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args or {}
        self.kubeconfig = self.run_dir / "kubeconfig"
        self.logs_dir = self._paths.logs
        self.ports: Ports | None = None
        self.server = ""
        self.timings: dict[str, float] = {}
        self._processes: list[Process] = []
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.RLock()
        self._started_at = 0.0
        self._real_node_wanted = real_node
        #: The running real node, if any (after `start()`).
        self.real_node: _node.RealNode | None = None
        #: Why there is no real node, when there is none.
        self.real_node_note = ""
        self._ca: _pki.CertificateAuthority | None = None

    # -- public API -------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def processes(self) -> dict[str, int]:
        """Running components: name -> pid."""
        running = {p.name: p.pid for p in self._processes if p.pid is not None and p.alive()}
        if self.real_node is not None:
            running.update(self.real_node.pids)
        return running

    def load_image(self, image: str) -> str:
        """Import an image from buildah's local storage into the real node's containerd.

        Returns the name pods use (e.g. `docker.io/library/databuild-operator:0.1.0`
        for buildah's `localhost/databuild-operator:0.1.0`); with `imagePullPolicy:
        IfNotPresent` or `Never` nothing is pulled from anywhere.
        """
        if self.real_node is None:
            raise ControlPlaneError(f"no real node to load {image} into: {self.real_node_note}")
        return self.real_node.load_image(image)

    def rss(self) -> dict[str, int | None]:
        """Resident memory (bytes) of each running component, read from /proc."""
        return {name: rss_bytes(pid) for name, pid in self.processes.items()}

    def api_client(self) -> Kube:
        """A new :class:`~databuild.testing.kube.Kube` authenticated as the admin."""
        if not self.kubeconfig.exists():
            raise ControlPlaneError("the control plane is not started (no kubeconfig yet)")
        return api_client_from_kubeconfig(self.kubeconfig)

    def start(self) -> ControlPlane:
        """Start every component and wait until the cluster can run Jobs."""
        with self._lock:
            if self._processes:
                raise ControlPlaneError("this control plane is already started")
            install_exit_hooks(_stop_all)
            _RUNNING.add(self)
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                self._started_at = time.monotonic()
                self.timings = {}
                try:
                    self._start()
                except ControlPlaneError as e:
                    self._stop_processes()
                    # Another process may bind a port between our probe and the
                    # component's own bind: then start over on other ports.
                    if _ADDRESS_IN_USE in str(e) and attempt < _PORT_ATTEMPTS:
                        continue
                    raise
                except BaseException:
                    self._stop_processes()
                    raise
                break
        return self

    def stop(self) -> None:
        """Stop the components in reverse order; drop etcd's data, keep the logs.

        A temporary `run_dir` is removed entirely unless `keep_run_dir` was set.
        Safe to call more than once.
        """
        with self._lock:
            self._stop_processes()
            _RUNNING.discard(self)
            shutil.rmtree(self._paths.etcd_data, ignore_errors=True)
            if self._owns_run_dir and not self._keep_run_dir:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def check(self) -> None:
        """Raise ControlPlaneError if a component has died since it started."""
        processes = [*self._processes, *(self.real_node.processes if self.real_node else [])]
        for process in processes:
            code = process.exit_code()
            if code is not None:
                raise self._failure(process, f"exited with code {code}")

    def elapsed(self) -> float:
        """Seconds since `start()` was called."""
        return time.monotonic() - self._started_at

    # -- startup ----------------------------------------------------------------------

    def _deadline_left(self) -> float:
        return max(0.0, self.startup_timeout - self.elapsed())

    def _mark(self, milestone: str) -> None:
        self.timings[milestone] = round(self.elapsed(), 3)

    def _start(self) -> None:
        binaries = self.binaries = self.binaries or find_binaries()
        paths = self._paths
        for directory in (paths.pki, paths.logs, paths.kwok_home):
            directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(paths.etcd_data, ignore_errors=True)
        ports = self.ports = Ports.allocate()
        self.server = f"https://127.0.0.1:{ports.apiserver}"
        self._prepare_real_node(binaries)
        files = self._write_pki()
        self._mark("certificates")

        etcd = self._spawn(ETCD, [str(binaries.etcd), *self._etcd_args(ports)])
        self._wait(etcd, "/health", lambda: self._etcd_healthy(ports.etcd_client))
        self._mark(ETCD)

        apiserver = self._spawn(
            APISERVER, [str(binaries.kube_apiserver), *self._apiserver_args(ports, files)]
        )
        self._wait(
            apiserver, "/readyz", lambda: self._request(ports.apiserver, "/readyz")[0] == 200
        )
        self._mark(APISERVER)

        waits: list[tuple[Process, str, Callable[[], bool]]] = []
        if binaries.kube_controller_manager is not None:
            kcm = self._spawn(
                CONTROLLER_MANAGER,
                [str(binaries.kube_controller_manager), *self._kcm_args(ports, files)],
            )
            waits.append(
                (kcm, "/healthz", lambda: self._component_healthy(ports.controller_manager))
            )
        if binaries.kube_scheduler is not None:
            scheduler = self._spawn(
                SCHEDULER, [str(binaries.kube_scheduler), *self._scheduler_args(ports, files)]
            )
            waits.append((scheduler, "/healthz", lambda: self._component_healthy(ports.scheduler)))
        kwok: Process | None = None
        if binaries.kwok is not None:
            self._create_node()
            kwok = self._spawn(
                KWOK, [str(binaries.kwok), *self._kwok_args(ports, files)], kwok=True
            )
        for process, what, probe in waits:
            self._wait(process, what, probe)
            self._mark(process.name)
        if kwok is not None:
            self._wait(kwok, f"node {NODE_NAME} Ready and untainted", self._node_ready)
            self._mark("node-ready")
        if self.real_node is not None:
            self._start_real_node(files)
        if binaries.kube_controller_manager is not None:
            self._wait(
                self._process(CONTROLLER_MANAGER),
                "the `default` ServiceAccount in namespace `default`",
                lambda: (
                    self._request(
                        ports.apiserver, "/api/v1/namespaces/default/serviceaccounts/default"
                    )[0]
                    == 200
                ),
            )
        self._mark("ready")

    def _write_pki(self) -> dict[str, Path]:
        pki = self._paths.pki
        ca = _pki.CertificateAuthority()
        files: dict[str, Path] = {}
        files["ca.crt"], files["ca.key"] = ca.keypair.write(pki, "ca")
        self._ca = ca
        link = self.real_node.link if self.real_node is not None else None
        ips = _pki.APISERVER_IPS + ((link.host_ip,) if link is not None else ())
        files["apiserver.crt"], files["apiserver.key"] = ca.serving(
            "kube-apiserver", ips=ips
        ).write(pki, "apiserver")
        # The apiserver's identity towards kubelets (logs, exec).
        files["apiserver-kubelet-client.crt"], files["apiserver-kubelet-client.key"] = ca.client(
            "kube-apiserver-kubelet-client", "system:masters"
        ).write(pki, "apiserver-kubelet-client")
        files["sa.pub"], files["sa.key"] = _pki.service_account_key().write(pki, "sa")
        # The aggregation layer's front proxy, as in a real cluster: without it the
        # controller-manager and scheduler log an error about the missing
        # request-header CA every few seconds.
        front_proxy = _pki.CertificateAuthority("databuild-front-proxy-ca")
        files["front-proxy-ca.crt"], _ = front_proxy.keypair.write(pki, "front-proxy-ca")
        files["front-proxy-client.crt"], files["front-proxy-client.key"] = front_proxy.client(
            "front-proxy-client"
        ).write(pki, "front-proxy-client")
        admin = ca.client("admin", "system:masters")
        _write_private(
            self.kubeconfig,
            yaml.safe_dump(
                kubeconfig_document(
                    self.server, ca.keypair.cert_pem, admin.cert_pem, admin.key_pem, "admin"
                )
            ),
        )
        files["admin.kubeconfig"] = self.kubeconfig
        admin_crt, admin_key = admin.write(pki, "admin")
        files["admin.crt"], files["admin.key"] = admin_crt, admin_key
        # The scheduler runs as its own user with the bootstrap RBAC role, as in a real
        # cluster. The controller-manager is in system:masters instead: with its
        # bootstrap role it needs --use-service-account-credentials, which creates a
        # ServiceAccount and token per controller one after another and makes every
        # start 4-5 s slower (measured), for no difference our tests could observe.
        for name, user, group in (
            ("controller-manager", "system:kube-controller-manager", "system:masters"),
            ("scheduler", "system:kube-scheduler", None),
        ):
            pair = ca.client(user, group)
            path = pki / f"{name}.kubeconfig"
            _write_private(
                path,
                yaml.safe_dump(
                    kubeconfig_document(
                        self.server, ca.keypair.cert_pem, pair.cert_pem, pair.key_pem, user
                    )
                ),
            )
            files[f"{name}.kubeconfig"] = path
        stages = pki.parent / "kwok-stages.yaml"
        stages.write_text(stage_documents())
        files["stages"] = stages
        # kwok's kubelet-like server, so that pods/log works through the API server; the
        # API server verifies it against our CA and presents a client certificate.
        files["kwok.crt"], files["kwok.key"] = ca.serving("kwok-node").write(pki, "kwok")
        files["kubelet-client.crt"], files["kubelet-client.key"] = ca.client(
            "kube-apiserver-kubelet-client", "system:masters"
        ).write(pki, "kubelet-client")
        log_file = pki.parent / "simulated-pod.log"
        log_file.write_text(
            "".join(
                f"2025-01-01T00:00:00.000000000Z stdout F {line}\n" for line in SIMULATED_LOG_LINES
            )
        )
        files["pod-logs"] = pki.parent / "kwok-pod-logs.yaml"
        files["pod-logs"].write_text(pod_log_documents(log_file))
        context = ssl.create_default_context(cafile=str(files["ca.crt"]))
        context.load_cert_chain(str(admin_crt), str(admin_key))
        self._ssl = context
        return files

    def _args(self, name: str, args: list[str]) -> list[str]:
        return args + self.extra_args.get(name, [])

    def _etcd_args(self, ports: Ports) -> list[str]:
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return self._args(
            ETCD,
            [
                "--name=databuild",
                f"--data-dir={self._paths.etcd_data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=databuild={peer}",
                # Test data is disposable: skipping fsync makes every write cheap.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

    def _apiserver_args(self, ports: Ports, files: dict[str, Path]) -> list[str]:
        return self._args(
            APISERVER,
            [
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                *self._apiserver_address_args(),
                f"--secure-port={ports.apiserver}",
                f"--cert-dir={self.run_dir / 'apiserver-certs'}",
                f"--tls-cert-file={files['apiserver.crt']}",
                f"--tls-private-key-file={files['apiserver.key']}",
                f"--client-ca-file={files['ca.crt']}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={files['sa.pub']}",
                f"--service-account-signing-key-file={files['sa.key']}",
                f"--service-cluster-ip-range={_pki.SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--kubelet-client-certificate={files['apiserver-kubelet-client.crt']}",
                f"--kubelet-client-key={files['apiserver-kubelet-client.key']}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--requestheader-client-ca-file={files['front-proxy-ca.crt']}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={files['front-proxy-client.crt']}",
                f"--proxy-client-key-file={files['front-proxy-client.key']}",
                # Pod logs come from kwok's server, at the node's InternalIP (loopback).
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={files['ca.crt']}",
                f"--kubelet-client-certificate={files['kubelet-client.crt']}",
                f"--kubelet-client-key={files['kubelet-client.key']}",
            ],
        )

    def _apiserver_address_args(self) -> list[str]:
        if self.real_node is None or self.real_node.link is None:
            # Loopback only. The `kubernetes` Endpoints may not point at a loopback
            # address, and nothing in-cluster dials it: do not maintain them.
            return [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
            ]
        # The real node's pods reach the apiserver through the `kubernetes` Service,
        # whose endpoint is the host's end of the node's veth pair: listen there too
        # (and on loopback, which the kubeconfigs name), and publish that address.
        return [
            "--bind-address=0.0.0.0",
            f"--advertise-address={self.real_node.link.host_ip}",
            "--endpoint-reconciler-type=lease",
        ]

    # -- the real node ----------------------------------------------------------------

    def _prepare_real_node(self, binaries: Binaries) -> None:
        wanted = (
            _node.wanted()
            if self._real_node_wanted is None
            else ("on" if self._real_node_wanted else "off")
        )
        if wanted == "off":
            self.real_node_note = f"the real node is off ({_node.ENV}=0 or real_node=False)"
            return
        why = _node.unavailable(binaries.kubelet, binaries.kube_proxy)
        pause = None
        if why is None:
            pause, why = _node.pause_image()
        if why is not None or pause is None:
            if wanted == "on":
                raise ControlPlaneError(f"the real node cannot run here: {why}")
            self.real_node_note = f"kwok's simulated node only: {why}"
            print(f"databuild.testing: {self.real_node_note}", file=sys.stderr)
            return
        assert binaries.kubelet is not None and binaries.kube_proxy is not None
        node = _node.RealNode(
            self.run_dir / "node", self.logs_dir, binaries.kubelet, binaries.kube_proxy, pause
        )
        self.real_node = node
        node.prepare()
        self._mark("real-node-namespace")

    def _start_real_node(self, files: dict[str, Path]) -> None:
        node, ca = self.real_node, self._ca
        assert node is not None and node.link is not None and self.ports is not None
        assert ca is not None
        kubelet = ca.client(f"system:node:{_node.NAME}", "system:nodes")
        proxy = ca.client("system:kube-proxy")
        serving = ca.serving(_node.NAME, dns_names=(_node.NAME,), ips=(node.link.node_ip,))
        processes = node.start(
            f"https://{node.link.host_ip}:{self.ports.apiserver}",
            files["ca.crt"],
            (kubelet.cert_pem, kubelet.key_pem),
            (proxy.cert_pem, proxy.key_pem),
            ca.keypair.cert_pem,
            serving_pair=(serving.cert_pem, serving.key_pem),
        )
        kubelet_process = next(p for p in processes if p.name == _node.KUBELET)
        self._wait(
            kubelet_process,
            f"node {_node.NAME} Ready",
            lambda: self._node_ready(_node.NAME, _node.TAINT["key"]),
        )
        self._mark("real-node-ready")

    def _stop_real_node(self) -> None:
        if self.real_node is not None:
            self.real_node.stop()
            self.real_node = None

    def _kcm_args(self, ports: Ports, files: dict[str, Path]) -> list[str]:
        kubeconfig = files["controller-manager.kubeconfig"]
        return self._args(
            CONTROLLER_MANAGER,
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.controller_manager}",
                "--leader-elect=false",
                f"--root-ca-file={files['ca.crt']}",
                f"--service-account-private-key-file={files['sa.key']}",
                f"--cluster-signing-cert-file={files['ca.crt']}",
                f"--cluster-signing-key-file={files['ca.key']}",
                # See _write_pki: one identity for all controllers, for a fast start.
                "--use-service-account-credentials=false",
                f"--service-cluster-ip-range={_pki.SERVICE_CLUSTER_IP_RANGE}",
                "--controllers=*",
                # The client-side rate limit (default 20/s) is what bounds Job
                # throughput here: 50 Jobs took 14 s with it, 3 s without.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ],
        )

    def _scheduler_args(self, ports: Ports, files: dict[str, Path]) -> list[str]:
        kubeconfig = files["scheduler.kubeconfig"]
        return self._args(
            SCHEDULER,
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports.scheduler}",
                "--leader-elect=false",
                "--kube-api-qps=200",  # as for the controller-manager
                "--kube-api-burst=400",
            ],
        )

    def _kwok_args(self, ports: Ports, files: dict[str, Path]) -> list[str]:
        key, value = KWOK_NODE_ANNOTATION
        return self._args(
            KWOK,
            [
                f"--kubeconfig={files['admin.kubeconfig']}",
                f"--config={files['stages']}",
                f"--config={files['pod-logs']}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={key}={value}",
                f"--cidr={POD_CIDR}",
                # The node's address is where the API server fetches pod logs from.
                "--node-ip=127.0.0.1",
                f"--node-port={ports.kwok}",
                f"--server-address=127.0.0.1:{ports.kwok}",
                f"--tls-cert-file={files['kwok.crt']}",
                f"--tls-private-key-file={files['kwok.key']}",
                # Without a config file of kind KwokConfiguration the lease duration
                # defaults to 0: no node Lease, so the node-lifecycle controller finds
                # the Node silent every ~50 s and marks every pod on it NotReady, which
                # no stage undoes. Renew a Lease like a kubelet does.
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            ],
        )

    def _spawn(self, name: str, argv: list[str], *, kwok: bool = False) -> Process:
        env = dict(os.environ)
        if kwok:
            # kwok also loads ~/.kwok/kwok.yaml when it exists: a private HOME keeps
            # a user's kwok configuration out of the tests.
            env["HOME"] = str(self._paths.kwok_home)
        process = Process(name, argv, self.logs_dir / f"{name}.log", env=env, cwd=self.run_dir)
        process.start()
        self._processes.append(process)
        return process

    def _process(self, name: str) -> Process:
        return next(p for p in self._processes if p.name == name)

    def _failure(self, process: Process, what: str) -> ControlPlaneError:
        return ControlPlaneError(
            f"{process.name} {what}; last lines of {process.log}:\n{process.log_tail()}\n"
            f"(all logs: {self.logs_dir})"
        )

    def _wait(self, process: Process, what: str, probe: Callable[[], bool]) -> None:
        """Poll `probe` until it holds, the process dies, or the startup time is up."""
        delay = 0.02
        while True:
            code = process.exit_code()
            if code is not None:
                raise self._failure(process, f"exited with code {code} while waiting for {what}")
            with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
                if probe():
                    return
            if self._deadline_left() <= 0:
                raise self._failure(
                    process,
                    f"not ready: {what} did not hold within {self.startup_timeout:.0f}s "
                    "of the control plane's start",
                )
            time.sleep(min(delay, self._deadline_left()))
            delay = min(delay * 1.5, 0.25)

    # -- HTTP probes (stdlib only: no proxy settings apply to loopback here) -----------

    def _request(self, port: int, path: str, *, body: bytes | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=self._ssl, timeout=5)
        try:
            method = "POST" if body is not None else "GET"
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    @staticmethod
    def _etcd_healthy(port: int) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            return response.status == 200 and json.loads(response.read()).get("health") == "true"
        finally:
            connection.close()

    @staticmethod
    def _component_healthy(port: int) -> bool:
        # Their serving certificates are self-signed and generated at start: only
        # liveness is checked here, over TLS without verification.
        context = ssl._create_unverified_context()
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
        try:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            return response.status == 200 and response.read() == b"ok"
        finally:
            connection.close()

    def _create_node(self) -> None:
        assert self.ports is not None
        key, value = KWOK_NODE_ANNOTATION
        capacity = {"cpu": "1k", "memory": "1Ti", "pods": "10k", "ephemeral-storage": "1Ti"}
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {key: value, "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "spec": {},
            "status": {"allocatable": capacity, "capacity": capacity},
        }
        status, body = self._request(
            self.ports.apiserver, "/api/v1/nodes", body=json.dumps(node).encode()
        )
        if status not in (200, 201):
            raise ControlPlaneError(
                f"creating node {NODE_NAME} failed: HTTP {status}: {body[:500]!r}"
            )

    def _node_ready(self, name: str = NODE_NAME, own_taint: str | None = None) -> bool:
        """Whether node ``name`` is Ready and carries no taint but its own ``own_taint``."""
        assert self.ports is not None
        status, body = self._request(self.ports.apiserver, f"/api/v1/nodes/{name}")
        if status != 200:
            return False
        node = json.loads(body)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in node.get("status", {}).get("conditions", [])
        )
        # The node lifecycle controller taints a node until it has seen it Ready;
        # until the taint is gone the scheduler would not place a pod there.
        taints = node.get("spec", {}).get("taints") or []
        return ready and all(t.get("key") == own_taint for t in taints)

    # -- shutdown ---------------------------------------------------------------------

    def _stop_processes(self) -> None:
        self._stop_real_node()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
