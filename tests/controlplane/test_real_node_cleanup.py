"""`cluster up` with the real node, then `cluster down`: nothing of it is left behind.

The real node's processes, iptables chains, bridge and mounts live in a network and
mount namespace of its own; the host gets one veth pair and the node's cgroups. This
starts a background control plane with the node, runs a pod there, stops it (once
cleanly and once after killing the supervisor, as a crash would) and checks the host
against what it looked like before.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from databuild.testing import api_client_from_kubeconfig, node
from databuild.testing._node import container_cgroups, namespace_pids
from databuild.testing._process import wait_gone
from tests.controlplane.jobs import wait_for

REPO = Path(__file__).resolve().parents[2]


def _cluster(command: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "databuild.testing.cluster", command],
        env={**os.environ, "DATABUILD_DIR": str(state), node.ENV: "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _host_chains() -> set[str]:
    """The iptables chains of the host's network namespace, in every table."""
    chains = set()
    for table in ("filter", "nat", "mangle"):
        out = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=True
        )
        chains |= {
            f"{table}/{line.split()[1]}"
            for line in out.stdout.splitlines()
            if line.startswith("-N")
        }
    return chains


def _links() -> set[str]:
    """The host's network interfaces."""
    return {p.name for p in Path("/sys/class/net").iterdir()}


def _mounts_under(path: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [line for line in lines if str(path) in line]


def _run_a_pod(kubeconfig: Path) -> None:
    with api_client_from_kubeconfig(kubeconfig) as api:
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "sleeper"},
            "spec": {
                **node.placement(),
                "containers": [
                    {
                        "name": "main",
                        "image": "databuild-pause-only:1",
                        "imagePullPolicy": "Never",
                    }
                ],
            },
        }
        # The sandbox (the pause image) is what makes the mounts, the veth into the
        # bridge and the shim; its container's image does not need to exist.
        api.create(pod, "default")

        def sandbox_up() -> bool | None:
            status = api.get("Pod", "default", "sleeper").get("status") or {}
            return True if status.get("podIP") else None

        wait_for("the pod's sandbox to get an address", sandbox_up, timeout=120)


@pytest.mark.parametrize("how", ["down", "crash"])
def test_cluster_down_leaves_no_process_chain_bridge_mount_or_cgroup(
    tmp_path: Path, how: str
) -> None:
    chains, links = _host_chains(), _links()
    cgroups: list[Path] = []
    up = _cluster("up", tmp_path)
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        state = json.loads((tmp_path / "cluster" / "state.json").read_text())
        real = state["real_node"]
        assert real, state.get("real_node_note")
        _run_a_pod(tmp_path / "kubeconfig")
        assert len(namespace_pids(real["netns"])) >= 5  # holder, containerd, kubelet, proxy, shim
        cgroups = container_cgroups(Path(real["directory"]))
        assert cgroups, "the pod's containers should have cgroups"
        assert real["interface"] in _links()
        # Isolation while it runs: the kube-proxy's and kubelet's chains are in the
        # node's namespace, not on the host.
        assert {c for c in _host_chains() - chains if "KUBE" in c or "CNI" in c} == set()
        if how == "crash":
            supervisor = state["supervisor"]
            os.kill(supervisor["pid"], signal.SIGKILL)
            assert wait_gone(supervisor["pid"], supervisor["start_time"], 30)
    finally:
        down = _cluster("down", tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert namespace_pids(real["netns"]) == []
    # Only what could be ours: other clusters may come and go on a shared machine.
    assert {n for n in _links() - links if n.startswith(("dbnode", "cni", "veth"))} == set()
    assert real["interface"] not in _links()
    assert {c for c in _host_chains() - chains if "KUBE" in c or "CNI" in c} == set()
    assert _mounts_under(tmp_path) == []
    assert _mounts_under(Path(real["directory"])) == []
    assert not Path(real["directory"]).exists()
    assert [c for c in cgroups if c.exists()] == []
