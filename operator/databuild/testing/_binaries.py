"""Finding the control plane's binaries (built by `make control-plane`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: What envtest's KUBEBUILDER_ASSETS must hold at least.
CORE = ("etcd", "kube-apiserver")
#: What makes Jobs actually run: without them the harness is envtest-like.
WORKLOAD = ("kube-controller-manager", "kube-scheduler", "kwok")
#: Tools handed to users and tests when present.
TOOLS = ("kubectl", "helm")
#: The real node's binaries (optional: without them the cluster has only kwok's node).
NODE = ("kubelet", "kube-proxy")

_MAKE_HINT = "run `make control-plane` in the project (it builds them once per version, cached)"


class BinariesNotFound(RuntimeError):
    """The control plane binaries are not where the harness looks for them."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the control plane executables and where they were found."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None
    kube_scheduler: Path | None
    kwok: Path | None
    kubectl: Path | None
    helm: Path | None
    source: str
    kubelet: Path | None = None
    kube_proxy: Path | None = None

    @property
    def runs_workloads(self) -> bool:
        """Whether Jobs can run: controller-manager, scheduler and kwok are all present."""
        return None not in (self.kube_controller_manager, self.kube_scheduler, self.kwok)

    def paths(self) -> dict[str, Path]:
        """The binaries that exist, by their executable name."""
        found = {
            "etcd": self.etcd,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
            "kwok": self.kwok,
            "kubectl": self.kubectl,
            "helm": self.helm,
            "kubelet": self.kubelet,
            "kube-proxy": self.kube_proxy,
        }
        return {name: path for name, path in found.items() if path is not None}


def _executable(directory: Path, name: str) -> Path | None:
    path = directory / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory at or above `start` holding `hack/versions.env`.

    Falls back to the checkout this module lives in (an editable install), so tests
    run from a subdirectory still find the project's binaries.
    """
    here = Path(__file__).resolve()
    for base in (start or Path.cwd(), here.parent):
        for directory in (base, *base.parents):
            if (directory / "hack" / "versions.env").is_file():
                return directory
    return None


def databuild_dir(env: Mapping[str, str] | None = None, start: Path | None = None) -> Path:
    """The git-ignored state directory: `$DATABUILD_DIR`, else `<project>/.databuild`."""
    env = os.environ if env is None else env
    if env.get("DATABUILD_DIR"):
        return Path(env["DATABUILD_DIR"]).resolve()
    root = find_project_root(start)
    return (root or (start or Path.cwd())) / ".databuild"


def read_versions(path: Path) -> dict[str, str]:
    """Parse a shell `KEY=VALUE` file such as hack/versions.env."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        versions[key.strip()] = value.strip().strip("'\"")
    return versions


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """Where the build scripts cache what they build (``$DATABUILD_CACHE``, else
    ``~/.cache/databuild``, as the hack/build-*.sh scripts decide it)."""
    env = os.environ if env is None else env
    if env.get("DATABUILD_CACHE"):
        return Path(env["DATABUILD_CACHE"])
    return _home(env) / ".cache" / "databuild"


def cache_bin_dir(versions: Mapping[str, str], env: Mapping[str, str] | None = None) -> Path:
    """The builder's per-version cache directory (computed as hack/build-control-plane.sh does)."""
    root = cache_root(env)
    key = (
        f"kube-{versions['KUBE_VERSION']}_etcd-{versions['ETCD_VERSION']}"
        f"_kwok-{versions['KWOK_VERSION']}_helm-{versions['HELM_VERSION']}"
    )
    return root / "controlplane" / key / "bin"


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def _fallback_dirs(env: Mapping[str, str], start: Path | None) -> list[tuple[str, Path]]:
    """Where a full set may be, in order: explicit dir, the project's link, the cache."""
    dirs: list[tuple[str, Path]] = []
    if env.get("DATABUILD_CONTROL_PLANE_BIN"):
        dirs.append(("DATABUILD_CONTROL_PLANE_BIN", Path(env["DATABUILD_CONTROL_PLANE_BIN"])))
        return dirs  # explicit: never silently use something else
    state = databuild_dir(env, start) / "bin"
    if state.is_dir():
        dirs.append((str(state), state))
    root = find_project_root(start)
    if root is not None:
        versions = read_versions(root / "hack" / "versions.env")
        try:
            dirs.append(("the build cache", cache_bin_dir(versions, env)))
        except KeyError as missing:
            raise BinariesNotFound(f"{root / 'hack' / 'versions.env'} lacks {missing}") from None
    return dirs


def find_binaries(env: Mapping[str, str] | None = None, start: Path | None = None) -> Binaries:
    """Locate the control plane binaries.

    Order: `$KUBEBUILDER_ASSETS` (envtest's convention: a directory with at least etcd
    and kube-apiserver; the other components are taken from there or from the places
    below, and are optional), else `$DATABUILD_CONTROL_PLANE_BIN`, else the project's
    `.databuild/bin`, else the build cache computed from `hack/versions.env`. Outside
    KUBEBUILDER_ASSETS every component is required.

    Raises:
        BinariesNotFound: with what is missing, where it looked, and what to run.
    """
    env = os.environ if env is None else env
    fallbacks = _fallback_dirs(env, start)
    assets = env.get("KUBEBUILDER_ASSETS")
    if assets:
        primary = Path(assets)
        missing = [name for name in CORE if _executable(primary, name) is None]
        if missing:
            raise BinariesNotFound(
                f"KUBEBUILDER_ASSETS={assets} lacks {', '.join(missing)}: point it at a "
                "directory holding etcd and kube-apiserver, or unset it"
            )
        search = [primary] + [d for _, d in fallbacks]
        return _collect(search, f"KUBEBUILDER_ASSETS={assets}")

    looked: list[str] = []
    for label, directory in fallbacks:
        missing = [name for name in CORE + WORKLOAD if _executable(directory, name) is None]
        if not missing:
            return _collect([directory], f"{label} ({directory})")
        looked.append(f"{directory} (missing {', '.join(missing)})")
    where = "; ".join(looked) if looked else "no project with hack/versions.env found"
    raise BinariesNotFound(
        f"control plane binaries not found; looked in: {where}. To fix: {_MAKE_HINT}, "
        "or set DATABUILD_CONTROL_PLANE_BIN or KUBEBUILDER_ASSETS to a directory "
        "holding them, or DATABUILD_TEST_KUBECONFIG to use an existing cluster"
    )


def _collect(search: list[Path], source: str) -> Binaries:
    def first(name: str) -> Path | None:
        for directory in search:
            path = _executable(directory, name)
            if path is not None:
                return path
        return None

    etcd, apiserver = first("etcd"), first("kube-apiserver")
    if etcd is None or apiserver is None:
        raise BinariesNotFound(f"etcd or kube-apiserver missing in {source}; {_MAKE_HINT}")
    return Binaries(
        etcd=etcd,
        kube_apiserver=apiserver,
        kube_controller_manager=first("kube-controller-manager"),
        kube_scheduler=first("kube-scheduler"),
        kwok=first("kwok"),
        kubectl=first("kubectl"),
        helm=first("helm"),
        source=source,
        kubelet=first("kubelet"),
        kube_proxy=first("kube-proxy"),
    )
