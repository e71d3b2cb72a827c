"""`make cluster-up` / `make cluster-down`: the control plane in the background."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from databuild.testing._controlplane import NODE_NAME, api_client_from_kubeconfig
from databuild.testing._process import wait_gone

REPO = Path(__file__).resolve().parents[2]


def _make(target: str, state: Path) -> subprocess.CompletedProcess[str]:
    # `-o .venv/.installed`: the virtualenv running this test is the one to use; never
    # let make reinstall it mid-test.
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", target],
        cwd=REPO,
        env={**os.environ, "DATABUILD_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _status(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-m", "databuild.testing.cluster", "status"],
        env={**os.environ, "DATABUILD_DIR": str(state)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cluster_up_is_idempotent_and_down_cleans_up(tmp_path: Path) -> None:
    state = tmp_path / "databuild"
    kubeconfig = state / "kubeconfig"
    try:
        up = _make("cluster-up", state)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "control plane ready in" in up.stdout
        assert str(state / "cluster" / "run" / "logs") in up.stdout

        with api_client_from_kubeconfig(kubeconfig) as api:
            node = api.get("Node", None, NODE_NAME)
        conditions = node["status"].get("conditions") or []
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        began = time.monotonic()
        again = _make("cluster-up", state)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout
        assert time.monotonic() - began < 60

        running = _status(state)
        assert running.returncode == 0, running.stdout
        assert "kube-apiserver" in running.stdout

        recorded = json.loads((state / "cluster" / "state.json").read_text())
        processes = [recorded["supervisor"], *recorded["components"].values()]
        # The supervisor and five components, plus the real node's four where it runs
        # (its namespace holder, containerd, kubelet, kube-proxy).
        assert len(processes) == 6 + (4 if recorded["real_node"] else 0)
    finally:
        down = _make("cluster-down", state)
    assert down.returncode == 0, down.stdout + down.stderr
    for entry in processes:
        assert wait_gone(entry["pid"], entry["start_time"], 30), entry
    assert not kubeconfig.exists()
    assert not (state / "cluster").exists()
    assert _status(state).returncode == 1

    again_down = _make("cluster-down", state)
    assert again_down.returncode == 0
    assert "not running" in again_down.stdout
