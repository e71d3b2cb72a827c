"""Helpers for tests on the real node: require it, build and load images built here."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from databuild.testing import Cluster, ControlPlane, node

REPO = Path(__file__).resolve().parents[2]


def require_real_node(cluster: Cluster) -> ControlPlane:
    """The session's control plane, which must have a real node.

    Skipped only where the real node is turned off on purpose (`DATABUILD_REAL_NODE=0`)
    or the cluster is not the harness's; anywhere else its absence is a failure.
    """
    if not isinstance(cluster, ControlPlane):
        pytest.skip("an existing cluster: the harness did not start a real node")
    if cluster.real_node is None:
        if node.wanted() == "off":
            pytest.skip(cluster.real_node_note)
        pytest.fail(f"no real node: {cluster.real_node_note}")
    return cluster


def built_image(target: str) -> str:
    """Build (cached) one of hack/build-image.sh's images; return its buildah name."""
    out = subprocess.run(
        [str(REPO / "hack" / "build-image.sh"), target],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert out.returncode == 0, f"hack/build-image.sh {target}: {out.stderr[-3000:]}"
    return out.stdout.split()[-1]


def kubectl(plane: ControlPlane, *args: str, timeout: float = 60) -> str:
    """Run the control plane's kubectl as the admin; fail the test on an error."""
    assert plane.binaries is not None and plane.binaries.kubectl is not None
    out = subprocess.run(
        [str(plane.binaries.kubectl), f"--kubeconfig={plane.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout
