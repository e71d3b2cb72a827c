"""Flux (source-controller, kustomize-controller) and kstatus for GitOps tests.

`make flux` builds them from Go modules once per version (hack/build-flux.sh, pinned in
hack/versions.env) and links the cache at `.databuild/flux`. `Flux` runs the two
controllers as local processes against a cluster, the way `ControlPlane` runs its
components; `kstatus` asks the real sigs.k8s.io/cli-utils library (the one Flux's
`wait: true` uses) what it makes of objects.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from databuild.testing._binaries import (
    cache_root,
    databuild_dir,
    find_project_root,
    read_versions,
)
from databuild.testing._controlplane import api_client_from_kubeconfig
from databuild.testing._ports import free_ports
from databuild.testing._process import Process, install_exit_hooks, wait_ready
from databuild.testing.demo import apply_manifest, install_crds

#: The namespace the controllers run for (Flux's convention), where tests put their
#: GitRepository and Kustomization objects.
FLUX_NAMESPACE = "flux-system"

_MAKE_HINT = "run `make flux` in the project (it builds them once per version, cached)"


class FluxNotFound(RuntimeError):
    """The Flux binaries or the kstatus tool are not where the harness looks."""


class FluxError(RuntimeError):
    """A Flux controller did not start or stopped."""


@dataclass(frozen=True)
class FluxBinaries:
    """Paths of the Flux controllers, their CRDs and the kstatus tool."""

    source_controller: Path
    kustomize_controller: Path
    kstatus: Path
    crds: Path
    source: str


def flux_cache_dir(versions: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    """The build cache's bin directory (computed as hack/build-flux.sh does)."""
    root = cache_root(env)
    key = (
        f"source-{versions['FLUX_SOURCE_CONTROLLER_VERSION']}"
        f"_kustomize-{versions['FLUX_KUSTOMIZE_CONTROLLER_VERSION']}"
        f"_cli-utils-{versions['CLI_UTILS_VERSION']}"
    )
    return root / "flux" / key / "bin"


def _candidates(env: Mapping[str, str], start: Path | None) -> list[Path]:
    if env.get("DATABUILD_FLUX_BIN"):
        return [Path(env["DATABUILD_FLUX_BIN"])]  # explicit: never silently use another
    found = [databuild_dir(env, start) / "flux"]
    root = find_project_root(start)
    if root is not None:
        versions = read_versions(root / "hack" / "versions.env")
        try:
            found.append(flux_cache_dir(versions, env))
        except KeyError as key:
            raise FluxNotFound(f"{root / 'hack' / 'versions.env'} lacks {key}") from None
    return found


def _find(names: tuple[str, ...], env: Mapping[str, str] | None, start: Path | None) -> Path:
    env = os.environ if env is None else env
    looked = []
    for directory in _candidates(env, start):
        missing = [n for n in names if not os.access(directory / n, os.R_OK)]
        if not missing:
            return directory
        looked.append(f"{directory} (missing {', '.join(missing)})")
    raise FluxNotFound(f"Flux binaries not found; looked in: {'; '.join(looked)}. {_MAKE_HINT}")


def find_flux_binaries(
    env: Mapping[str, str] | None = None, start: Path | None = None
) -> FluxBinaries:
    """Locate the Flux controllers, their CRDs and kstatus.

    Order: `$DATABUILD_FLUX_BIN`, else the project's `.databuild/flux`, else the build
    cache computed from `hack/versions.env`.

    Raises:
        FluxNotFound: with where it looked and what to run.
    """
    directory = _find(("source-controller", "kustomize-controller", "kstatus", "crds"), env, start)
    return FluxBinaries(
        directory / "source-controller",
        directory / "kustomize-controller",
        directory / "kstatus",
        directory / "crds",
        str(directory),
    )


def find_kstatus(env: Mapping[str, str] | None = None, start: Path | None = None) -> Path:
    """Locate the kstatus tool alone (looked for where `find_flux_binaries` looks)."""
    return _find(("kstatus",), env, start) / "kstatus"


@dataclass(frozen=True)
class KStatus:
    """What kstatus computed for one object."""

    kind: str
    namespace: str
    name: str
    status: str  # InProgress | Current | Failed | Terminating | NotFound | Unknown
    message: str


def kstatus(objects: Iterable[Mapping[str, Any]], binary: Path | None = None) -> list[KStatus]:
    """kstatus's verdict (`status.Compute` of sigs.k8s.io/cli-utils) on each object, in order.

    Objects are what the API server returns (with `kind` set); the tool is the one
    `make flux` builds unless `binary` is given.
    """
    tool = binary or find_kstatus()
    items = [dict(o) for o in objects]
    done = subprocess.run(
        [str(tool)],
        input=json.dumps({"kind": "List", "items": items}).encode(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tool} exited {done.returncode}: {done.stderr.decode().strip()}")
    return [
        KStatus(v["kind"], v["namespace"], v["name"], v["status"], v["message"])
        for v in map(json.loads, done.stdout.decode().splitlines())
    ]


class Flux:
    """source-controller and kustomize-controller running against one cluster.

    `start()` installs Flux's CRDs (from the same module versions), the `flux-system`
    namespace and both controllers; `stop()` stops them (the CRDs stay). Artifacts are
    served on a loopback port and advertised there, so the kustomize-controller on
    the same host can fetch them. The controllers act as the kubeconfig's user (the
    cluster admin in tests). Process handling is `ControlPlane`'s: own session, logs
    in `logs_dir`, killed with the starting thread (`PR_SET_PDEATHSIG`).
    """

    def __init__(
        self,
        kubeconfig: Path,
        binaries: FluxBinaries | None = None,
        run_dir: Path | None = None,
        *,
        extra_args: Mapping[str, list[str]] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.binaries = binaries or find_flux_binaries()
        self._own_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="databuild-flux-"))
        self.logs_dir = self.run_dir / "logs"
        self.extra_args = dict(extra_args or {})
        self.startup_timeout = startup_timeout
        self.processes: dict[str, Process] = {}
        self.health_ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Flux:
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
        """Install the CRDs and the namespace, then start both controllers and wait
        until each answers its readiness endpoint."""
        begin = time.monotonic()
        with api_client_from_kubeconfig(self.kubeconfig) as api:
            for component in sorted(self.binaries.crds.iterdir()):
                install_crds(api, component)
            namespace = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": FLUX_NAMESPACE},
            }
            apply_manifest(api, namespace)
        self.timings["crds"] = time.monotonic() - begin
        install_exit_hooks(self.stop)
        storage = self.run_dir / "artifacts"
        storage.mkdir(parents=True, exist_ok=True)
        (art, *ports) = free_ports(5)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "RUNTIME_NAMESPACE": FLUX_NAMESPACE,
        }
        common = ["--enable-leader-election=false", "--log-level=debug", "--events-addr="]
        argv = {
            "source-controller": [
                str(self.binaries.source_controller),
                *common,
                f"--storage-path={storage}",
                f"--storage-addr=127.0.0.1:{art}",
                f"--storage-adv-addr=127.0.0.1:{art}",
                f"--metrics-addr=127.0.0.1:{ports[0]}",
                f"--health-addr=127.0.0.1:{ports[1]}",
            ],
            "kustomize-controller": [
                str(self.binaries.kustomize_controller),
                *common,
                f"--metrics-addr=127.0.0.1:{ports[2]}",
                f"--health-addr=127.0.0.1:{ports[3]}",
            ],
        }
        self.health_ports = {"source-controller": ports[1], "kustomize-controller": ports[3]}
        try:
            for name, args in argv.items():
                process = Process(
                    name,
                    [*args, *self.extra_args.get(name, [])],
                    self.logs_dir / f"{name}.log",
                    env=env,
                    cwd=self.run_dir,
                )
                self.processes[name] = process
                process.start()
            for name in argv:
                self._wait_healthy(name)
                self.timings[name] = time.monotonic() - begin
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, name: str) -> None:
        url = f"http://127.0.0.1:{self.health_ports[name]}/readyz"
        wait_ready(self.processes[name], name, url, self.startup_timeout, FluxError)

    def check(self) -> None:
        """Raise FluxError if a controller has stopped."""
        for name, process in self.processes.items():
            if not process.alive():
                raise FluxError(
                    f"{name} exited with {process.exit_code()}; its log:\n{process.log_tail()}"
                )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of both controllers' logs."""
        return "\n".join(
            f"--- {name} ({p.log}) ---\n{p.log_tail(lines)}" for name, p in self.processes.items()
        )

    def stop(self) -> None:
        """Stop both controllers (kustomize-controller first); idempotent."""
        for process in reversed(list(self.processes.values())):
            process.stop()
        if self._own_dir:
            shutil.rmtree(self.run_dir / "artifacts", ignore_errors=True)
