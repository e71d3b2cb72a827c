"""hack/build-control-plane.sh: a cached build is a no-op, and the binaries know their versions."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from databuild.testing._binaries import read_versions

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "hack" / "build-control-plane.sh"


def _build() -> tuple[Path, float]:
    began = time.monotonic()
    result = subprocess.run(
        [str(BUILDER)], capture_output=True, text=True, timeout=3600, check=False
    )
    elapsed = time.monotonic() - began
    assert result.returncode == 0, result.stderr[-3000:]
    return Path(result.stdout.strip().splitlines()[-1]), elapsed


def test_cached_build_is_a_noop() -> None:
    bin_dir, _ = _build()  # builds whatever is missing (nothing, after `make control-plane`)
    before = {p.name: p.stat().st_mtime_ns for p in bin_dir.iterdir()}

    again, elapsed = _build()

    assert again == bin_dir
    assert elapsed < 30, f"a cached build took {elapsed:.1f}s"
    assert {p.name: p.stat().st_mtime_ns for p in bin_dir.iterdir()} == before
    assert set(before) >= {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubectl",
        "kwok",
        "helm",
    }


def _output(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def test_binaries_report_their_pinned_versions() -> None:
    versions = read_versions(REPO / "hack" / "versions.env")
    bin_dir, _ = _build()
    kube = versions["KUBE_VERSION"]

    assert f"Client Version: {kube}" in _output(str(bin_dir / "kubectl"), "version", "--client")
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert _output(str(bin_dir / component), "--version").strip() == f"Kubernetes {kube}"
    assert f'Version:"{versions["HELM_VERSION"]}"' in _output(str(bin_dir / "helm"), "version")
    assert f"etcd Version: {versions['ETCD_VERSION'].lstrip('v')}" in _output(
        str(bin_dir / "etcd"), "--version"
    )
    assert f"kwok version {versions['KWOK_VERSION']}" in _output(str(bin_dir / "kwok"), "--version")
