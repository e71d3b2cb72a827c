"""`python -m databuild.testing.cluster up|down|status`: the local control plane in the background.

`up` starts a small supervisor process, detached from the terminal, that runs a
`ControlPlane` until `down` asks it to stop; the components die with the supervisor
however it ends. Files (under `$DATABUILD_DIR`, default `<project>/.databuild`):

- `kubeconfig`: the admin kubeconfig (what `make run` uses);
- `cluster/state.json`: supervisor and component pids, the apiserver URL, timings;
- `cluster/supervisor.log`, `cluster/run/logs/<component>.log`: logs.

`up` is idempotent (a healthy running cluster is left alone), and so is `down`.
Exit codes: 0 success (for `status`: running and healthy), 1 failure (for `status`:
not running or unhealthy), 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databuild.testing import _node
from databuild.testing._binaries import databuild_dir
from databuild.testing._controlplane import NODE_NAME, ControlPlane, ControlPlaneError
from databuild.testing._process import process_start_time, rss_bytes, tail, wait_gone

STATE_VERSION = 1


@dataclass(frozen=True)
class Layout:
    """Where `cluster` keeps its files, below one state directory."""

    root: Path

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig handed to users."""
        return self.root / "kubeconfig"

    @property
    def cluster(self) -> Path:
        """State, supervisor log and the control plane's run directory."""
        return self.root / "cluster"

    @property
    def state(self) -> Path:
        """JSON: pids (with start times), server, timings."""
        return self.cluster / "state.json"

    @property
    def supervisor_log(self) -> Path:
        """The supervisor's own output (startup errors land here)."""
        return self.cluster / "supervisor.log"

    @property
    def run_dir(self) -> Path:
        """The ControlPlane's run directory."""
        return self.cluster / "run"

    @property
    def logs(self) -> Path:
        """One log per component."""
        return self.run_dir / "logs"

    @property
    def lock(self) -> Path:
        """Serialises concurrent `up` and `down`."""
        return self.root / "cluster.lock"


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a file


def read_state(layout: Layout) -> dict[str, Any] | None:
    """The state file's content, or None when there is none (or it is unreadable)."""
    try:
        data: dict[str, Any] = json.loads(layout.state.read_text())
    except (OSError, ValueError):
        return None
    return data


def _alive(entry: dict[str, Any] | None) -> bool:
    """Whether the process recorded as {pid, start_time} is still that process."""
    if not entry:
        return False
    started = process_start_time(int(entry["pid"]))
    return started is not None and started == entry.get("start_time")


def _probe(layout: Layout, state: dict[str, Any], path: str) -> tuple[int, bytes]:
    pki = layout.run_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", int(state["apiserver_port"]), context=context, timeout=5
    )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _healthy(layout: Layout, state: dict[str, Any]) -> bool:
    if not state.get("ready") or not _alive(state.get("supervisor")):
        return False
    try:
        return _probe(layout, state, "/readyz")[0] == 200
    except (OSError, http.client.HTTPException, ssl.SSLError):
        return False


# -- up -----------------------------------------------------------------------------


def up(layout: Layout, timeout: float) -> int:
    """Start the control plane in the background unless it already runs."""
    with _locked(layout):
        state = read_state(layout)
        if state is not None and _healthy(layout, state):
            pid = state["supervisor"]["pid"]
            print(f"control plane already running: {state['server']} (supervisor pid {pid})")
            _print_where(layout)
            return 0
        if state is not None or layout.cluster.exists():
            print("cleaning up a control plane that is no longer running")
            _teardown(layout, state)
        layout.cluster.mkdir(parents=True)
        began = time.monotonic()
        with layout.supervisor_log.open("ab") as log:
            supervisor = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "databuild.testing.cluster",
                    "_serve",
                    "--timeout",
                    str(timeout),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: it outlives this command and the terminal.
                start_new_session=True,
                env={**os.environ, "DATABUILD_DIR": str(layout.root)},
            )
        deadline = began + timeout + 15
        while True:
            state = read_state(layout)
            if state is not None and state.get("ready"):
                break
            code = supervisor.poll()
            if code is not None or time.monotonic() > deadline:
                why = (
                    f"exited with code {code}"
                    if code is not None
                    else f"not ready after {timeout:.0f}s"
                )
                print(
                    f"control plane failed to start: supervisor {why}; "
                    f"last lines of {layout.supervisor_log}:\n{tail(layout.supervisor_log, 40)}",
                    file=sys.stderr,
                )
                if code is None:
                    supervisor.terminate()
                    supervisor.wait(30)
                return 1
            time.sleep(0.1)
        took = time.monotonic() - began
        server, pid = state["server"], supervisor.pid
        print(f"control plane ready in {took:.1f}s: {server} (supervisor pid {pid})")
        _print_timings(state)
        _print_where(layout)
        return 0


def _print_timings(state: dict[str, Any]) -> None:
    timings = state.get("timings") or {}
    if timings:
        print("  startup: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


def _print_where(layout: Layout) -> None:
    print(f"  kubeconfig: {layout.kubeconfig}   (export KUBECONFIG={layout.kubeconfig})")
    print(f"  logs:       {layout.logs}/<component>.log, supervisor: {layout.supervisor_log}")


# -- the supervisor -----------------------------------------------------------------


def serve(layout: Layout, timeout: float) -> int:
    """Run a ControlPlane until SIGTERM/SIGINT/SIGHUP; record it in the state file."""
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        print(f"received signal {signum}: stopping", flush=True)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)

    plane = ControlPlane(run_dir=layout.run_dir, startup_timeout=timeout)
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "supervisor": {"pid": os.getpid(), "start_time": process_start_time(os.getpid())},
        "ready": False,
    }
    _write_json(layout.state, state)
    try:
        plane.start()
    except ControlPlaneError as e:
        print(f"control plane failed to start: {e}", flush=True)
        plane.stop()
        return 1
    except Exception:
        traceback.print_exc()
        plane.stop()
        return 1
    assert plane.ports is not None
    shutil.copyfile(plane.kubeconfig, layout.kubeconfig)
    layout.kubeconfig.chmod(0o600)
    state.update(
        server=plane.server,
        apiserver_port=plane.ports.apiserver,
        run_dir=str(plane.run_dir),
        timings=plane.timings,
        started_at=time.time(),
        # What `down` needs to clean up after a supervisor that was killed.
        real_node=(
            {
                "netns": plane.real_node.netns,
                "interface": plane.real_node.link.host_interface if plane.real_node.link else "",
                "directory": str(plane.real_node.run_dir),
            }
            if plane.real_node is not None
            else None
        ),
        real_node_note=plane.real_node_note,
        components={
            name: {"pid": pid, "start_time": process_start_time(pid)}
            for name, pid in plane.processes.items()
        },
        ready=True,
    )
    _write_json(layout.state, state)
    print(f"control plane ready: {plane.server}; timings {plane.timings}", flush=True)
    reported = False
    while not stop.wait(1.0):
        try:
            plane.check()
        except ControlPlaneError as e:
            if not reported:  # keep running: the logs and the rest stay inspectable
                print(f"component died: {e}", flush=True)
                reported = True
    plane.stop()
    print("control plane stopped", flush=True)
    return 0


# -- down ---------------------------------------------------------------------------


def _teardown(layout: Layout, state: dict[str, Any] | None) -> None:
    """Stop whatever `state` recorded as running, then remove the cluster's files."""
    if state is not None:
        supervisor = state.get("supervisor")
        if _alive(supervisor):
            assert supervisor is not None
            pid, started = int(supervisor["pid"]), supervisor.get("start_time")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, started, 60):
                # The components get SIGKILL from the kernel when it dies.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, started, 10)
        for entry in (state.get("components") or {}).values():
            # Only if that very process (pid and start time) still exists.
            if _alive(entry):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry["pid"]), signal.SIGKILL)
                wait_gone(int(entry["pid"]), entry.get("start_time"), 10)
        node = state.get("real_node")
        if node:
            # Pods and containerd's shims are not the supervisor's children: they
            # outlive a supervisor that was killed, so find them by their namespace.
            _node.sweep(node["netns"], node["interface"], node["directory"])
    shutil.rmtree(layout.cluster, ignore_errors=True)
    layout.kubeconfig.unlink(missing_ok=True)


def down(layout: Layout) -> int:
    """Stop the control plane and remove its files."""
    with _locked(layout):
        state = read_state(layout)
        if state is None and not layout.cluster.exists():
            print("control plane not running")
            return 0
        began = time.monotonic()
        _teardown(layout, state)
        print(f"control plane stopped and cleaned up in {time.monotonic() - began:.1f}s")
        return 0


# -- status -------------------------------------------------------------------------


def status(layout: Layout) -> int:
    """Print whether the control plane runs, its components' pids and memory."""
    state = read_state(layout)
    if state is None:
        print("control plane not running")
        return 1
    if not _alive(state.get("supervisor")):
        print("control plane not running (stale state: run `make cluster-down`)")
        return 1
    if not state.get("ready"):
        print("control plane starting")
        return 1
    healthy = _healthy(layout, state)
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.get("started_at", 0)))
    print(
        f"control plane {'running' if healthy else 'UNHEALTHY'}: {state['server']} (since {since})"
    )
    for name, entry in (state.get("components") or {}).items():
        alive = _alive(entry)
        rss = rss_bytes(int(entry["pid"])) if alive else None
        memory = f"{rss / 2**20:7.1f} MiB" if rss is not None else "       -"
        print(f"  {name:<24} pid {entry['pid']:<8} {'up  ' if alive else 'DOWN'} {memory}")
        healthy = healthy and alive
    with contextlib.suppress(OSError, http.client.HTTPException, ssl.SSLError, ValueError):
        code, body = _probe(layout, state, f"/api/v1/nodes/{NODE_NAME}")
        if code == 200:
            conditions = json.loads(body).get("status", {}).get("conditions", [])
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
            print(f"  node {NODE_NAME}: {'Ready' if ready else 'NotReady'}")
        if state.get("real_node"):
            code, body = _probe(layout, state, f"/api/v1/nodes/{_node.NAME}")
            conditions = json.loads(body).get("status", {}).get("conditions", [])
            ready = code == 200 and any(
                c["type"] == "Ready" and c["status"] == "True" for c in conditions
            )
            print(f"  real node {_node.NAME}: {'Ready' if ready else 'NotReady'}")
    if state.get("real_node_note"):
        print(f"  {state['real_node_note']}")
    _print_where(layout)
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m databuild.testing.cluster",
        description="Run the local control plane in the background (state in $DATABUILD_DIR, "
        "default <project>/.databuild).",
    )
    parser.add_argument("command", choices=["up", "down", "status", "_serve"])
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds startup may take (default 180)"
    )
    args = parser.parse_args(argv)
    layout = Layout(databuild_dir())
    if args.command == "up":
        return up(layout, args.timeout)
    if args.command == "down":
        return down(layout)
    if args.command == "status":
        return status(layout)
    return serve(layout, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
