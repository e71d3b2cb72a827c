"""The real node: containerd, kubelet and kube-proxy running real pods beside kwok's node.

Everything of the node lives in a network and mount namespace of its own, held by one
`sleep` process: the CNI bridge, the pods' addresses, the kube-proxy's and kubelet's
iptables chains (KUBE-FIREWALL among them) and every mount the kubelet and containerd
make. The only thing on the host is one veth pair linking that namespace to it (a /30
out of 100.64.0.0/10), which the kernel removes with the namespace. So two control
planes on one machine never see each other's chains, and stopping the node is killing
the processes in its namespace: the namespace, its mounts and the veth go with the
last of them.

Pods land on the real node only if they ask: it carries the label and the NoSchedule
taint of `placement()`. Images come from buildah's local storage (`make image`), through
an OCI archive into containerd's `k8s.io` namespace: no registry is involved.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from databuild.testing._process import Process

NAME = "databuild-node-0"
#: Label and NoSchedule taint of the real node: pods that ask land there, others do not.
LABEL = ("databuild.dev/node", "real")
TAINT = {"key": "databuild.dev/node", "value": "real", "effect": "NoSchedule"}
#: The pods' subnet inside the node's namespace (never routed on the host).
POD_SUBNET = "10.88.0.0/24"
#: Where the host-side /30 of each node's veth pair is taken from.
LINK_NETWORK = ipaddress.IPv4Network("100.64.0.0/16")
#: The sandbox image (hack/pause.c) in buildah's storage; hack/build-image.sh makes it.
PAUSE_REPOSITORY = "localhost/databuild-pause"
CNI_BIN_DIRS = (Path("/usr/lib/cni"), Path("/opt/cni/bin"))
HOST_TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "unshare", "nsenter", "ip")
#: `DATABUILD_REAL_NODE`: `auto` (default: start it where it can run), `1` (require it),
#: `0` (kwok only).
ENV = "DATABUILD_REAL_NODE"

CONTAINERD = "containerd"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"


class RealNodeError(RuntimeError):
    """The real node could not be started or stopped cleanly."""


def placement() -> dict[str, Any]:
    """The `nodeSelector` and `tolerations` a pod spec needs to run on the real node."""
    key, value = LABEL
    return {
        "nodeSelector": {key: value},
        "tolerations": [{"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"]}],
    }


def wanted(env: Mapping[str, str] | None = None) -> str:
    """`auto`, `on` or `off`, from `DATABUILD_REAL_NODE`."""
    raw = (os.environ if env is None else env).get(ENV, "auto").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return "on"
    if raw in ("0", "false", "no", "off"):
        return "off"
    return "auto"


def cni_bin_dir() -> Path | None:
    """Where the CNI plugins (bridge, host-local, portmap) are installed."""
    for directory in CNI_BIN_DIRS:
        if all((directory / p).is_file() for p in ("bridge", "host-local", "portmap", "loopback")):
            return directory
    return None


def unavailable(kubelet: Path | None, kube_proxy: Path | None) -> str | None:
    """Why the real node cannot run on this machine, or None when it can."""
    if sys.platform != "linux":
        return "the real node needs Linux"
    if os.geteuid() != 0:
        return "the real node needs root (network namespaces, mounts, cgroups)"
    if kubelet is None or kube_proxy is None:
        return "kubelet or kube-proxy is not built (run `make control-plane`)"
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if cni_bin_dir() is None:
        missing.append("the CNI plugins (bridge, host-local, portmap, loopback)")
    if shutil.which("iptables") is None:
        missing.append("iptables")
    if missing:
        return (
            f"missing {', '.join(missing)} (Debian: apt-get install containerd runc "
            "containernetworking-plugins iptables util-linux iproute2)"
        )
    if not Path("/sys/fs/cgroup").is_dir():
        return "no cgroup file system at /sys/fs/cgroup"
    return None


def containerd_name(image: str) -> str:
    """The name the kubelet gives `image` (buildah's `localhost/x:1` -> `docker.io/library/x:1`)."""
    name = image.removeprefix("localhost/")
    return name if "/" in name else f"docker.io/library/{name}"


def import_image(socket: Path, image: str, workdir: Path) -> str:
    """Copy `image` from buildah's storage into the containerd at `socket`; its name there.

    Through an OCI archive in `workdir` and `ctr image import`: no registry involved.
    """
    name = containerd_name(image)
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / (name.replace("/", "_").replace(":", "_") + ".tar")
    archive.unlink(missing_ok=True)
    try:
        _run(["buildah", "push", "--quiet", image, f"oci-archive:{archive}:{name}"], timeout=300)
        _run(
            ["ctr", "--address", str(socket), "-n", "k8s.io", "image", "import", str(archive)],
            timeout=300,
        )
    finally:
        archive.unlink(missing_ok=True)
    return name


def pause_image() -> tuple[str | None, str | None]:
    """The sandbox image in buildah's storage, building it when missing: (image, why not)."""
    from databuild.testing._binaries import find_project_root  # noqa: PLC0415

    if shutil.which("buildah") is None:
        return None, "buildah is not installed (the node's images come from its storage)"
    listed = _run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], check=False)
    found = sorted(line for line in listed.split() if line.startswith(PAUSE_REPOSITORY + ":"))
    root = find_project_root()
    script = root / "hack" / "build-image.sh" if root is not None else None
    if script is not None and script.is_file():
        # The script knows the current revision and builds it in a second when missing.
        out = subprocess.run(
            [str(script), "pause"], capture_output=True, text=True, timeout=300, check=False
        )
        if out.returncode != 0:
            return None, f"building the pause image failed: {out.stderr.strip()[-500:]}"
        return out.stdout.split()[-1], None
    if found:
        return found[-1], None
    return None, "no pause image in buildah's storage (hack/build-image.sh pause makes it)"


def _run(argv: list[str], *, timeout: float = 60, check: bool = True) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise RealNodeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def _used_addresses() -> set[ipaddress.IPv4Address]:
    used: set[ipaddress.IPv4Address] = set()
    for line in _run(["ip", "-4", "-o", "addr", "show"], check=False).splitlines():
        parts = line.split()
        if "inet" in parts:
            used.add(ipaddress.IPv4Interface(parts[parts.index("inet") + 1]).ip)
    return used


@dataclass(frozen=True)
class Link:
    """The veth pair between the host and the node's namespace."""

    host_interface: str
    host_ip: str
    node_ip: str


class RealNode:
    """containerd, kubelet and kube-proxy of one real node, in a namespace of their own.

    `prepare()` creates the namespace and the veth pair (the control plane needs the
    host-side address before its apiserver starts: it listens and advertises there);
    `start()` runs the node once the apiserver is up; `stop()` removes every trace.
    """

    def __init__(
        self, run_dir: Path, logs_dir: Path, kubelet: Path, kube_proxy: Path, pause: str
    ) -> None:
        """Prepare (but do not start) a node whose files live in `run_dir`.

        `pause` is the sandbox image in buildah's storage (see `pause_image()`). The
        node's files go to a short temporary directory (`run_dir` becomes a link to it):
        the kubelet's and containerd's unix sockets live there, and a socket's path may
        not exceed 107 bytes.
        """
        self.run_dir = Path(tempfile.mkdtemp(prefix="databuild-node-"))
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        if run_dir.is_symlink() or run_dir.exists():
            run_dir.unlink()
        run_dir.symlink_to(self.run_dir)
        self.link_dir = run_dir
        self.pause = pause
        self._loaded: dict[str, str] = {}
        self.logs_dir = logs_dir
        self.kubelet = kubelet
        self.kube_proxy = kube_proxy
        self.link: Link | None = None
        #: The node's network namespace, as /proc/<pid>/ns/net reads (e.g. `net:[4026...]`).
        self.netns = ""
        self._holder: Process | None = None
        self._processes: list[Process] = []

    # -- paths ------------------------------------------------------------------------

    @property
    def socket(self) -> Path:
        """containerd's CRI socket."""
        return self.run_dir / "containerd.sock"

    @property
    def kubeconfig(self) -> Path:
        """The kubelet's kubeconfig (user `system:node:<name>`)."""
        return self.run_dir / "kubelet.kubeconfig"

    @property
    def proxy_kubeconfig(self) -> Path:
        """kube-proxy's kubeconfig (user `system:kube-proxy`)."""
        return self.run_dir / "kube-proxy.kubeconfig"

    @property
    def processes(self) -> list[Process]:
        """The node's components (containerd, kubelet, kube-proxy) once started."""
        return list(self._processes)

    @property
    def pids(self) -> dict[str, int]:
        """The node's running processes: name -> pid."""
        every = [*self._processes, *([self._holder] if self._holder else [])]
        return {p.name: p.pid for p in every if p.pid is not None and p.alive()}

    # -- namespace and link -----------------------------------------------------------

    def prepare(self) -> Link:
        """Create the node's namespace and the veth pair; return the addresses."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        holder = Process(
            "node-namespace",
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            self.logs_dir / "node-namespace.log",
        )
        holder.start()
        self._holder = holder
        # unshare execs sleep once the namespaces exist.
        deadline = time.monotonic() + 10
        pid = holder.pid
        assert pid is not None
        # Until unshare has exec'd sleep, the holder may still be in our namespace: never
        # take that one for the node's (stopping the node kills its namespace).
        while _netns_of(pid) in host_namespaces() or _comm(pid) != "sleep":
            if time.monotonic() > deadline or not holder.alive():
                raise RealNodeError(
                    f"unshare did not create the node's namespace: {holder.log_tail()}"
                )
            time.sleep(0.01)
        self.netns = _netns_of(pid)
        link = self._make_link(pid)
        self.link = link
        self._in_namespace(
            "sh",
            "-c",
            f"ip link set lo up && ip addr add {link.node_ip}/30 dev eth0 && "
            f"ip link set eth0 up && ip route add default via {link.host_ip} && "
            "sysctl -qw net.ipv4.ip_forward=1",
        )
        return link

    def _make_link(self, pid: int) -> Link:
        used = _used_addresses()
        subnets = list(LINK_NETWORK.subnets(new_prefix=30))
        start = (pid * 7919) % len(subnets)  # spread concurrent nodes over the range
        for offset in range(len(subnets)):
            subnet = subnets[(start + offset) % len(subnets)]
            host, node = list(subnet.hosts())
            if host in used or node in used:
                continue
            interface = f"dbnode{(start + offset) % len(subnets)}"
            created = subprocess.run(
                ["ip", "link", "add", interface, "type", "veth", "peer", "name", "eth0",
                 "netns", str(pid)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if created.returncode != 0:
                continue  # another node took this name meanwhile
            _run(["ip", "addr", "add", f"{host}/30", "dev", interface])
            _run(["ip", "link", "set", interface, "up"])
            return Link(interface, str(host), str(node))
        raise RealNodeError(f"no free /30 in {LINK_NETWORK} for the node's veth pair")

    def _holder_pid(self) -> int:
        """The holder's pid, checked to still hold the node's namespace (pids recycle)."""
        pid = self._holder.pid if self._holder is not None else None
        if pid is None or not self.netns or _netns_of(pid) != self.netns:
            raise RealNodeError("the node's namespace is gone (its holder process ended)")
        return pid

    def _in_namespace(self, *argv: str, timeout: float = 60, check: bool = True) -> str:
        pid = self._holder_pid()
        return _run(
            ["nsenter", "-t", str(pid), "-n", "-m", "--", *argv],
            timeout=timeout,
            check=check,
        )

    def _spawn(self, name: str, argv: list[str]) -> Process:
        pid = self._holder_pid()
        process = Process(
            name,
            ["nsenter", "-t", str(pid), "-n", "-m", "--", *argv],
            self.logs_dir / f"{name}.log",
            cwd=self.run_dir,
        )
        process.start()
        self._processes.append(process)
        return process

    # -- start ------------------------------------------------------------------------

    def start(
        self, server: str, ca_crt: Path, kubelet_pair: tuple[bytes, bytes],
        proxy_pair: tuple[bytes, bytes], ca_pem: bytes, *,
        serving_pair: tuple[bytes, bytes],
    ) -> list[Process]:  # fmt: skip
        """Start containerd (with the pause image), the kubelet and kube-proxy.

        `serving_pair` is the kubelet's serving certificate and key (PEM), issued by the
        cluster CA for the node's address: the apiserver verifies it (logs, exec).
        Returns the processes to watch; the caller waits for the Node to turn Ready.
        """
        from databuild.testing._controlplane import kubeconfig_document  # noqa: PLC0415

        assert self.link is not None, "prepare() first"
        for directory in ("containerd", "cni/net.d", "kubelet", "pod-logs"):
            (self.run_dir / directory).mkdir(parents=True, exist_ok=True)
        config = self.run_dir / "containerd.toml"
        config.write_text(self._containerd_config())
        (self.run_dir / "cni/net.d/10-databuild.conflist").write_text(self._cni_config())
        containerd = self._spawn(CONTAINERD, ["containerd", "--config", str(config)])
        self._wait_for(containerd, self.socket.exists, "its socket")
        self.load_image(self.pause)
        for path, pair, user in (
            (self.kubeconfig, kubelet_pair, f"system:node:{NAME}"),
            (self.proxy_kubeconfig, proxy_pair, "system:kube-proxy"),
        ):
            path.touch(mode=0o600)
            path.write_text(yaml.safe_dump(kubeconfig_document(server, ca_pem, *pair, user)))
        serving = (self.run_dir / "kubelet-serving.crt", self.run_dir / "kubelet-serving.key")
        serving[1].touch(mode=0o600)
        for path, pem in zip(serving, serving_pair, strict=True):
            path.write_bytes(pem)
        kubelet_config = self.run_dir / "kubelet.yaml"
        kubelet_config.write_text(yaml.safe_dump(self._kubelet_config(ca_crt, serving)))
        key, value = LABEL
        kubelet = self._spawn(
            KUBELET,
            [
                str(self.kubelet),
                f"--config={kubelet_config}",
                f"--kubeconfig={self.kubeconfig}",
                f"--root-dir={self.run_dir / 'kubelet'}",
                f"--cert-dir={self.run_dir / 'kubelet' / 'pki'}",
                f"--hostname-override={NAME}",
                f"--node-ip={self.link.node_ip}",
                f"--node-labels={key}={value}",
                "--v=1",
            ],
        )
        proxy_config = self.run_dir / "kube-proxy.yaml"
        proxy_config.write_text(yaml.safe_dump(self._proxy_config()))
        proxy = self._spawn(KUBE_PROXY, [str(self.kube_proxy), f"--config={proxy_config}"])
        return [containerd, kubelet, proxy]

    def load_image(self, image: str) -> str:
        """Copy `image` from buildah's storage into containerd; return its name there."""
        if image not in self._loaded:
            self._loaded[image] = import_image(self.socket, image, self.run_dir / "images")
        return self._loaded[image]

    def _wait_for(self, process: Process, probe: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if not process.alive():
                raise RealNodeError(f"{process.name} exited before {what}: {process.log_tail()}")
            if time.monotonic() > deadline:
                raise RealNodeError(f"{process.name}: no {what} after {timeout:.0f}s")
            time.sleep(0.05)

    def _containerd_config(self) -> str:
        state = self.run_dir / "containerd"
        cni = cni_bin_dir()
        runc_root = state / "runc"
        return f"""version = 2
root = "{state / "root"}"
state = "{state / "state"}"
# Snapshotters this node does not use: they would only log errors at start.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{state / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{containerd_name(self.pause)}"
  # The host may refuse to lower oom_score_adj; without this every sandbox fails.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}"
    conf_dir = "{self.run_dir / "cni" / "net.d"}"
"""

    def _cni_config(self) -> str:
        return json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "databuild",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        # Pods reach the apiserver through the node's address.
                        "ipMasq": True,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": str(self.run_dir / "cni" / "ipam"),
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )

    def _kubelet_config(self, ca_crt: Path, serving: tuple[Path, Path]) -> dict[str, Any]:
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # cgroup v1 without systemd: no QoS hierarchy, nothing reserved or
            # enforced; each container gets a cgroup of its own (container_cgroups()).
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "evictionHard": {},
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            # This machine refuses to lower oom_score_adj.
            "oomScoreAdj": 0,
            # The node's namespace is its own: no chains on the host, none needed here.
            "makeIPTablesUtilChains": False,
            "podLogsDir": str(self.run_dir / "pod-logs"),
            "registerWithTaints": [TAINT],
            # Issued by the cluster CA for the node's address: the apiserver verifies the
            # kubelet with --kubelet-certificate-authority (a self-signed one is refused).
            "tlsCertFile": str(serving[0]),
            "tlsPrivateKeyFile": str(serving[1]),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(ca_crt)},
            },
            # Only holders of a certificate of the cluster's CA get this far.
            "authorization": {"mode": "AlwaysAllow"},
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "serializeImagePulls": False,
            "resolvConf": "/etc/resolv.conf",
            "nodeStatusReportFrequency": "10s",
        }

    def _proxy_config(self) -> dict[str, Any]:
        return {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "clientConnection": {"kubeconfig": str(self.proxy_kubeconfig)},
            "mode": "iptables",
            "hostnameOverride": NAME,
            "clusterCIDR": POD_SUBNET,
            "oomScoreAdj": 0,
            # Zero: leave the (host-wide) conntrack table sizes alone.
            "conntrack": {"maxPerCore": 0, "min": 0},
            "healthzBindAddress": "127.0.0.1:10256",
            "metricsBindAddress": "127.0.0.1:10249",
        }

    # -- stop -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the node and remove every trace: pods, processes, namespace, cgroups."""
        kubelet = next((p for p in self._processes if p.name == KUBELET), None)
        if kubelet is not None:
            kubelet.stop()
        containerd = next((p for p in self._processes if p.name == CONTAINERD), None)
        if containerd is not None and containerd.alive():
            self._remove_containers()
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self._kill_namespace()
        if self._holder is not None:
            self._holder.stop()
            self._holder = None
        self._remove_cgroups()
        if self.link is not None:
            # Gone with the namespace; this only covers a namespace that outlived us.
            _run(["ip", "link", "delete", self.link.host_interface], check=False)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.link_dir.unlink()

    def _remove_containers(self) -> None:
        """Kill and delete every task and container, so each shim exits and cleans up."""
        ctr = ["ctr", "--address", str(self.socket), "-n", "k8s.io"]
        with contextlib.suppress(RealNodeError, subprocess.TimeoutExpired):
            for name in self._in_namespace(*ctr, "task", "list", "-q", check=False).split():
                self._in_namespace(*ctr, "task", "kill", "-s", "SIGKILL", name, check=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                tasks = self._in_namespace(*ctr, "task", "list", check=False)
                if "RUNNING" not in tasks:
                    break
                time.sleep(0.1)
            for name in self._in_namespace(*ctr, "task", "list", "-q", check=False).split():
                self._in_namespace(*ctr, "task", "delete", "-f", name, check=False)
            for name in self._in_namespace(*ctr, "container", "list", "-q", check=False).split():
                self._in_namespace(*ctr, "container", "delete", name, check=False)

    def namespace_pids(self) -> list[int]:
        """Every process in the node's network namespace (shims and pods included)."""
        return namespace_pids(self.netns) if self.netns else []

    def _kill_namespace(self) -> None:
        holder = self._holder.pid if self._holder is not None else None
        if self.netns:
            kill_namespace(self.netns, spare=holder)

    def _remove_cgroups(self) -> None:
        remove_cgroups(self.run_dir)


def _netns_of(pid: int | str) -> str:
    """A process's network namespace as its /proc link reads (`net:[4026531840]`)."""
    try:
        return str(Path(f"/proc/{pid}/ns/net").readlink())
    except OSError:
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def host_namespaces() -> set[str]:
    """The network namespaces that are never a node's: ours and init's."""
    return {ns for ns in (_netns_of("self"), _netns_of(1)) if ns}


def namespace_pids(netns: str) -> list[int]:
    """Every process whose network namespace is `netns` (as /proc/<pid>/ns/net reads).

    Raises:
        RealNodeError: `netns` is empty or the host's: a node never lives there.
    """
    if not netns or netns in host_namespaces():
        raise RealNodeError(f"refusing to act on the host's network namespace {netns!r}")
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str((entry / "ns" / "net").readlink()) == netns:
                    pids.append(int(entry.name))
    return pids


def kill_namespace(netns: str, spare: int | None = None) -> None:
    """SIGKILL every process in `netns` (but `spare`), until none is left."""
    for _ in range(5):
        stragglers = [pid for pid in namespace_pids(netns) if pid != spare]
        if not stragglers:
            return
        for pid in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def container_ids(directory: Path) -> list[str]:
    """The containers (sandboxes included) containerd ran for the node in `directory`."""
    tasks = directory / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
    return sorted(p.name for p in tasks.iterdir()) if tasks.is_dir() else []


def container_cgroups(directory: Path) -> list[Path]:
    """The cgroups of the node's containers that exist, in every hierarchy.

    Without QoS cgroups the kubelet names no parent, so containerd puts each container
    in `/k8s.io/<id>`; runc removes it when a container is deleted, this finds the
    ones a killed node left.
    """
    base = Path("/sys/fs/cgroup")
    ids = container_ids(directory)
    found = []
    for hierarchy in [base, *(h for h in base.iterdir() if h.is_dir())]:
        found += [hierarchy / "k8s.io" / i for i in ids if (hierarchy / "k8s.io" / i).is_dir()]
    return found


def remove_cgroups(directory: Path, timeout: float = 5.0) -> None:
    """Remove the cgroups of the node's containers once their killed processes are gone."""
    deadline = time.monotonic() + timeout
    while True:
        left = container_cgroups(directory)
        for cgroup in left:
            # Pods have network namespaces of their own: a node killed without deleting
            # its containers leaves their processes, found here by their cgroup.
            with contextlib.suppress(OSError, ValueError):
                for pid in (cgroup / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):  # busy until the last process has exited
                cgroup.rmdir()
        if not left or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def sweep(netns: str, interface: str, directory: str) -> None:
    """Remove what a node whose supervisor died left: processes, cgroups, veth, files."""
    if netns:
        kill_namespace(netns)
    if directory:
        remove_cgroups(Path(directory))
    if interface:
        _run(["ip", "link", "delete", interface], check=False)
    if directory and Path(directory).name.startswith("databuild-node-"):
        shutil.rmtree(directory, ignore_errors=True)
