"""Starting and stopping: clear errors, envtest mode, and no orphans however the parent ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from databuild.testing import ControlPlane, ControlPlaneError, find_binaries
from databuild.testing._process import process_start_time, wait_gone


@pytest.fixture(autouse=True)
def _kwok_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the control plane's own processes; the real node's start
    and clean-up (also after a killed supervisor) are tested in test_real_node*.py."""
    monkeypatch.setenv("DATABUILD_REAL_NODE", "0")


# A user's suite opts in to the harness's fixtures (the product installs no pytest plugin).
_PLUGIN = ("-p", "databuild.testing.pytest_plugin")

# Starts a control plane, reports its components' pids, then waits to be killed.
_HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from databuild.testing import ControlPlane
    plane = ControlPlane(run_dir=sys.argv[1]).start()
    tmp = Path(sys.argv[2] + ".tmp")
    tmp.write_text(json.dumps(plane.processes))
    tmp.replace(sys.argv[2])
    time.sleep(600)
    """
)


def _start_holder(tmp_path: Path) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    pids_file = tmp_path / "pids.json"
    with (tmp_path / "holder.log").open("wb") as log:
        holder = _spawn_holder(tmp_path, pids_file, log)
    deadline = time.monotonic() + 120
    while not pids_file.exists():
        assert holder.poll() is None, (tmp_path / "holder.log").read_text()
        assert time.monotonic() < deadline, "the control plane did not start"
        time.sleep(0.2)
    pids: dict[str, int] = json.loads(pids_file.read_text())
    assert set(pids) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }
    return holder, pids


def _spawn_holder(tmp_path: Path, pids_file: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path / "run"), str(pids_file)],
        stdout=subprocess.DEVNULL,
        stderr=log,
        # SIGINT is ignored in processes started in the background by a shell; the
        # holder must see it as a terminal's Ctrl-C would deliver it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )


@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"]
)
def test_no_orphans_when_the_parent_ends(tmp_path: Path, how: signal.Signals) -> None:
    holder, pids = _start_holder(tmp_path)
    started = {name: process_start_time(pid) for name, pid in pids.items()}

    holder.send_signal(how)
    holder.wait(60)

    for name, pid in pids.items():
        assert wait_gone(pid, started[name], 30), f"{name} (pid {pid}) outlived its parent"


def test_failed_start_quotes_the_component_log_and_leaves_nothing_running(tmp_path: Path) -> None:
    plane = ControlPlane(
        run_dir=tmp_path, extra_args={"kube-apiserver": ["--no-such-flag=1"]}, startup_timeout=60
    )
    with pytest.raises(ControlPlaneError) as error:
        plane.start()
    message = str(error.value)
    assert "kube-apiserver exited with code" in message
    assert "no-such-flag" in message  # the tail of its log
    assert str(tmp_path / "logs") in message
    assert plane.processes == {}


def test_kubebuilder_assets_with_only_etcd_and_apiserver(tmp_path: Path) -> None:
    full = find_binaries()
    assets = tmp_path / "assets"
    assets.mkdir()
    for name, path in (("etcd", full.etcd), ("kube-apiserver", full.kube_apiserver)):
        (assets / name).symlink_to(path)
    empty = tmp_path / "empty"
    env = {
        "KUBEBUILDER_ASSETS": str(assets),
        # Nowhere else to find the rest: envtest's two components only.
        "DATABUILD_DIR": str(empty),
        "DATABUILD_CACHE": str(empty),
        "HOME": str(empty),
    }
    binaries = find_binaries(env=env, start=tmp_path)
    assert binaries.kube_controller_manager is None
    assert not binaries.runs_workloads

    with ControlPlane(run_dir=tmp_path / "run", binaries=binaries) as plane:
        assert set(plane.processes) == {"etcd", "kube-apiserver"}
        with plane.api_client() as api:
            names = {n["metadata"]["name"] for n in api.list("Namespace")}
        assert "kube-system" in names
    assert plane.processes == {}


def test_existing_cluster_from_environment(control_plane: ControlPlane, tmp_path: Path) -> None:
    """With DATABUILD_TEST_KUBECONFIG the plugin starts nothing and uses that cluster."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            """
            from databuild.testing import ExistingCluster

            def test_inner(control_plane, kube, namespace):
                assert isinstance(control_plane, ExistingCluster)
                kube.create(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello"}},
                    namespace,
                )
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_PLUGIN, str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "DATABUILD_TEST_KUBECONFIG": str(control_plane.kubeconfig)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_sigterm_ends_a_pytest_session_and_its_control_plane(tmp_path: Path) -> None:
    pids_file = tmp_path / "pids.json"
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import json, time
            from pathlib import Path

            def test_runs_long(control_plane):
                tmp = Path({str(pids_file)!r} + ".tmp")
                tmp.write_text(json.dumps(control_plane.processes))
                tmp.replace({str(pids_file)!r})
                time.sleep(300)

            def test_never_reached():
                pass
            """
        )
    )
    with (tmp_path / "inner.log").open("wb") as log:
        inner = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *_PLUGIN,
                str(tmp_path),
            ],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while not pids_file.exists():
        assert inner.poll() is None, (tmp_path / "inner.log").read_text()
        assert time.monotonic() < deadline, "the control plane did not start"
        time.sleep(0.2)
    pids: dict[str, int] = json.loads(pids_file.read_text())
    started = {name: process_start_time(pid) for name, pid in pids.items()}

    inner.send_signal(signal.SIGTERM)
    inner.wait(60)

    output = (tmp_path / "inner.log").read_text()
    assert "KeyboardInterrupt" in output
    assert "test_never_reached" not in output and "passed" not in output
    for name, pid in pids.items():
        assert wait_gone(pid, started[name], 5), f"{name} (pid {pid}) outlived the session"
