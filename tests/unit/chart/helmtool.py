"""Finding and running the project's helm (and kubectl), built from Go modules, cached per version.

Shared by the chart, README and Helm end-to-end tests. Not a test module.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "databuild-operator"


# The hack/build-control-plane.sh component that builds each tool.
_COMPONENT = {"helm": "helm", "kubectl": "kube"}


@cache
def tool_binary(name: str) -> Path:
    """A Go-built tool (helm, kubectl): `.databuild/bin/<name>` (what `make control-plane`
    links), else the per-version cache, which `hack/build-control-plane.sh` fills (a no-op
    when cached) and names on its last line."""
    linked = ROOT / ".databuild" / "bin" / name
    if linked.is_file():
        return linked
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh"), _COMPONENT[name]],
        check=True,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    binary = Path(out.stdout.strip().splitlines()[-1]) / name
    if not binary.is_file():
        raise FileNotFoundError(f"hack/build-control-plane.sh did not produce {binary}")
    return binary


def helm_binary() -> Path:
    """The helm binary."""
    return tool_binary("helm")


@dataclass(frozen=True)
class HelmResult:
    """The outcome of one helm invocation."""

    returncode: int
    stdout: str
    stderr: str

    def documents(self) -> list[dict[str, Any]]:
        """The non-empty YAML documents on stdout (e.g. of `helm template`)."""
        return [d for d in yaml.safe_load_all(self.stdout) if d]


def helm(*args: str, kubeconfig: Path | None = None, check: bool = True) -> HelmResult:
    """Run helm with a private, throw-away config so a user's repositories and
    plugins cannot change the outcome."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HELM_CACHE_HOME": str(ROOT / ".databuild" / "helm" / "cache"),
        "HELM_CONFIG_HOME": str(ROOT / ".databuild" / "helm" / "config"),
        "HELM_DATA_HOME": str(ROOT / ".databuild" / "helm" / "data"),
    }
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    proc = subprocess.run(
        [str(helm_binary()), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    result = HelmResult(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}{proc.stdout}"
        )
    return result


def kube_version() -> str:
    """The Kubernetes version of the local control plane (hack/versions.env)."""
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "KUBE_VERSION":
            return value.strip()
    raise LookupError("KUBE_VERSION is not set in hack/versions.env")


def template(
    *args: str, release: str = "databuild", namespace: str = "databuild-system"
) -> list[dict[str, Any]]:
    """`helm template` of the chart with extra arguments; the rendered documents.

    `--kube-version` stands in for a cluster (the chart declares a minimum version)."""
    return helm(
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version(),
        *args,
    ).documents()
