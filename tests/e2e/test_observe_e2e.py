"""Seeing builds on the real control plane: ``logs``, ``wait``, history through the proxy.

kwok runs no containers; the harness has it serve every pod's log from one file (its
ClusterLogs configuration), at the node address the API server fetches ``pods/log``
from, so the CLI reads logs along the same path as on a real cluster.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from e2e_support import Scenario, free_port, jobdef
from test_helm import service_account_kubeconfig
from test_ui_e2e import CHROMIUM, _browser
from tests.manifests import want
from tests.unit.chart.helmtool import template, tool_binary

from databuild.testing._controlplane import SIMULATED_LOG_LINES

DATE = "2025-01-01"
KUBECTL = (str(tool_binary("kubectl")), "--kubeconfig")


def _cli(sc: Scenario, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "databuild.cli.main",
        "--kubeconfig",
        str(sc.cluster.kubeconfig),
        "-n",
        sc.namespace,
        *argv,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_logs_of_a_failed_build_read_through_databuild_logs(scenario: Scenario) -> None:
    sc = scenario
    sc.start_operator()
    fail = {"kwok.databuild.dev/outcome": "fail"}
    sc.apply(
        jobdef("broken", ["broken/date={date}"], labels=fail, retry={"limit": 1}),
        jobdef("fine", ["fine/date={date}"]),
        want("bad", [f"broken/date={DATE}"]),
        want("good", [f"fine/date={DATE}"]),
    )
    sc.wait_for_want("bad", "Failed")
    sc.wait_for_want("good", "Successful")  # the healthy neighbour built

    by_ref = _cli(sc, "logs", f"broken/date={DATE}")
    assert by_ref.returncode == 0, by_ref.stderr
    assert by_ref.stdout.splitlines() == list(SIMULATED_LOG_LINES)

    every = _cli(sc, "logs", "bad", "--failed", "--all-attempts", "--tail", "1")
    assert every.returncode == 0, every.stderr
    assert "attempt 1 (Failed) main" in every.stdout
    assert "attempt 2 (Failed) main" in every.stdout  # retry limit 1: two attempts
    assert every.stdout.count(SIMULATED_LOG_LINES[-1]) == 2
    assert SIMULATED_LOG_LINES[0] not in every.stdout  # --tail 1

    status = _cli(sc, "status", "bad")
    assert f"databuild logs -n {sc.namespace} " in status.stdout
    run = sc.partition(f"broken/date={DATE}")["status"]["jobRun"]
    assert f"logs: databuild logs -n {sc.namespace} {run} --failed" in status.stdout
    followed = _cli(sc, "logs", run, "-f")
    assert followed.returncode == 1  # the run Failed
    assert followed.stdout.count(SIMULATED_LOG_LINES[0]) == 1  # the last attempt only


def test_wait_on_a_want_applied_with_kubectl_exits_1_as_soon_as_it_fails(
    scenario: Scenario, tmp_path: Path
) -> None:
    sc = scenario
    sc.start_operator()
    # The failure comes after a few seconds, so `wait` is surely following by then.
    failing = {"kwok.databuild.dev/duration": "4s"}
    sc.apply(
        jobdef(
            "broken",
            ["broken/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail"},
            annotations=failing,
            retry={"limit": 0},
        ),
        jobdef("slow", ["slow/date={date}"], annotations={"kwok.databuild.dev/duration": "120s"}),
    )
    manifest = tmp_path / "wants.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                want("gitops-bad", [f"broken/date={DATE}"]),
                want("gitops-slow", [f"slow/date={DATE}"]),
            ]
        )
    )
    kubeconfig = str(sc.cluster.kubeconfig)
    applied = subprocess.run(
        [*KUBECTL, kubeconfig, "apply", "-n", sc.namespace, "-f", str(manifest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    started = time.monotonic()
    waited = _cli(sc, "wait", "gitops-bad", "gitops-slow", "--timeout", "100s")
    took = time.monotonic() - started
    assert waited.returncode == 1, waited.stderr
    assert took < 60, f"wait took {took:.0f}s: it should stop at the failure, not the slow build"
    assert "gitops-bad: Failed" in waited.stderr
    assert "Want gitops-bad   Failed" in waited.stdout
    assert "logs: databuild logs" in waited.stdout  # the hint under the failed run
    slow = sc.get("Want", "gitops-slow")
    assert slow is not None and slow["status"].get("state") != "Successful"
    # The healthy neighbour keeps building meanwhile: its run is Running.
    assert _cli(sc, "status", "gitops-slow").stdout.count("Running") >= 1


def _host_address() -> str:
    """A non-loopback address of this machine (Endpoints may not point at loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address: str = s.getsockname()[0]
    return address


def _user(sc: Scenario, name: str, roles: list[str], tmp_path: Path) -> Path:
    """A ServiceAccount bound to `roles` (Roles in the test namespace); its kubeconfig."""
    sc.kube.create(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}, sc.namespace
    )
    for role in roles:
        sc.kube.create(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": f"{name}-{role}"[:63]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": sc.namespace}],
            },
            sc.namespace,
        )
    return service_account_kubeconfig(sc.cluster, sc.kube, sc.namespace, name, tmp_path / name)


def test_history_through_the_service_proxy_is_decided_by_rbac(
    scenario: Scenario, tmp_path: Path
) -> None:
    sc = scenario
    port = free_port()
    sc.start_operator("--bel-url", f"sqlite:///{tmp_path / 'bel.db'}", "--history-port", str(port))
    sc.apply(jobdef("fine", ["fine/date={date}"]), want("good", [f"fine/date={DATE}"]))
    sc.wait_for_want("good", "Successful")

    # The chart's Service name and reader Role, rendered for this namespace; the
    # operator runs on this host, so the Service's Endpoints point here.
    rendered = template("--show-only", "templates/history.yaml", namespace=sc.namespace)
    (role,) = [d for d in rendered if d["kind"] == "Role"]
    (service,) = [d for d in rendered if d["kind"] == "Service"]
    name = service["metadata"]["name"]
    sc.kube.create(role, sc.namespace)
    ports = [{"name": "history", "port": 8090, "targetPort": port, "protocol": "TCP"}]
    sc.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": ports},
        },
        sc.namespace,
    )
    host = _serve_from_host(sc, name, {"history": port})
    try:
        _read_history_through_the_proxy(sc, name, role["metadata"]["name"], tmp_path)
    finally:
        sc.kube.delete("Node", None, host)


def _serve_from_host(sc: Scenario, service: str, ports: dict[str, int]) -> str:
    """Point `service`'s Endpoints at `ports` of this host; the stand-in Node's name.

    The API server proxies only to addresses of pods. The operator runs on this host,
    so a stand-in pod, on a Node object no kubelet (and no kwok) manages, carries this
    host's address as its pod IP, and the Endpoints point at it. Delete the Node after.
    """
    address = _host_address()
    host = f"host-{service}-{sc.namespace}"[:63].rstrip("-")
    sc.kube.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": host}})
    try:
        _stand_in_pod(sc, host, service, address, ports)
    except BaseException:
        sc.kube.delete("Node", None, host)
        raise
    return host


def _stand_in_pod(
    sc: Scenario, host: str, service: str, address: str, ports: dict[str, int]
) -> None:
    pod = {"name": f"on-host-{service}"[:63], "namespace": sc.namespace}
    sc.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod["name"]},
            "spec": {"nodeName": host, "containers": [{"name": "op", "image": "host"}]},
        },
        sc.namespace,
    )
    sc.kube.patch(
        "Pod",
        sc.namespace,
        pod["name"],
        {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}]}},
        subresource="status",
    )
    sc.kube.create(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": service},
            "subsets": [
                {
                    "addresses": [{"ip": address, "targetRef": {"kind": "Pod", **pod}}],
                    "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports.items()],
                }
            ],
        },
        sc.namespace,
    )


def _read_history_through_the_proxy(
    sc: Scenario, name: str, reader_role: str, tmp_path: Path
) -> None:
    sc.kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "wants-reader"},
            "rules": [
                {"apiGroups": ["databuild.dev"], "resources": ["wants"], "verbs": ["get", "list"]}
            ],
        },
        sc.namespace,
    )
    reader = _user(sc, "reader", ["wants-reader", reader_role], tmp_path)
    outsider = _user(sc, "outsider", ["wants-reader"], tmp_path)
    url = f"service://{sc.namespace}/{name}:history"

    def cli(kubeconfig: Path, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "databuild.cli.main", "--kubeconfig", str(kubeconfig)]
        cmd += ["-n", sc.namespace, "--bel-url", url, *argv]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    deadline = time.monotonic() + 20
    while True:  # until the API server's caches know the Service and its endpoints
        events = cli(reader, "events", "--kind", "Want", "--name", "good", "-o", "json")
        if events.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert events.returncode == 0, events.stderr
    assert [e["to"] for e in json.loads(events.stdout)] == ["Pending", "Building", "Successful"]
    history = cli(reader, "history", "--at", "0s", "--kind", "Want")
    assert history.returncode == 0, history.stderr
    assert "good" in history.stdout and "Successful" in history.stdout

    refused = cli(outsider, "events", "--kind", "Want")
    assert refused.returncode == 5
    assert "forbidden (403)" in refused.stderr and "services/proxy" in refused.stderr
    # The refusal is the user's alone: the reader still reads, the operator still builds.
    assert cli(reader, "events", "--kind", "Want").returncode == 0
    sc.apply(want("later", ["fine/date=2025-01-02"]))
    sc.wait_for_want("later", "Successful")


def test_ui_through_the_service_proxy_is_decided_by_rbac(
    scenario: Scenario, tmp_path: Path
) -> None:
    """The chart's in-cluster UI: page, script and JSON through the real service proxy."""
    sc = scenario
    history_port, ui_port = free_port(), free_port()
    sc.start_operator(
        "--bel-url", f"sqlite:///{tmp_path / 'bel.db'}", "--history-port", str(history_port)
    )
    sc.apply(jobdef("fine", ["fine/date={date}"]), want("good", [f"fine/date={DATE}"]))
    sc.wait_for_want("good", "Successful")

    rendered = template(
        "--show-only",
        "templates/history.yaml",
        "--set",
        "ui.enabled=true",
        "--set",
        f"ui.namespace={sc.namespace}",
        namespace=sc.namespace,
    )
    (role,) = [d for d in rendered if d["kind"] == "Role"]
    (service,) = [d for d in rendered if d["kind"] == "Service"]
    name = service["metadata"]["name"]
    sc.kube.create(role, sc.namespace)
    targets = {"history": history_port, "ui": ui_port}
    for port in service["spec"]["ports"]:  # the host's ports stand in for the pod's
        port["targetPort"] = targets[port["name"]]
    service["spec"].pop("selector")
    sc.kube.create(service, sc.namespace)
    # The UI as the chart runs it: its events through the proxy, from the history API.
    log = (tmp_path / "ui.log").open("w")  # read it when the test fails
    ui = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "databuild.cli.main",
            "--kubeconfig",
            str(sc.cluster.kubeconfig),
            "ui",
            f"--namespace={sc.namespace}",
            f"--bel-url=service://{sc.namespace}/{name}:history",
            "--address=0.0.0.0",
            f"--port={ui_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    host = _serve_from_host(sc, name, targets)
    try:
        _open_the_ui_through_the_proxy(sc, name, role["metadata"]["name"], tmp_path)
    finally:
        ui.terminate()
        ui.wait(timeout=10)
        log.close()
        sc.kube.delete("Node", None, host)


def _open_the_ui_through_the_proxy(
    sc: Scenario, name: str, reader_role: str, tmp_path: Path
) -> None:
    reader = _user(sc, "reader", [reader_role], tmp_path)
    outsider = _user(sc, "outsider", [], tmp_path)
    prefix = f"/api/v1/namespaces/{sc.namespace}/services/{name}:ui/proxy/"

    def get(kubeconfig: Path, path: str) -> subprocess.CompletedProcess[str]:
        cmd = [*KUBECTL, str(kubeconfig), "get", "--raw", prefix + path]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    deadline = time.monotonic() + 30
    while True:  # until the UI listens and the API server knows the Service's endpoints
        page = get(reader, "")
        if page.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.returncode == 0, page.stderr
    assert '<script src="app.js">' in page.stdout and 'href="app.css"' in page.stdout
    assert "async function get(" in get(reader, "app.js").stdout
    wants = json.loads(get(reader, "api/wants").stdout)
    assert [(w["name"], w["state"]) for w in wants["wants"]] == [("good", "Successful")]
    grid = get(reader, "api/grid")
    assert grid.returncode == 0 and f"date={DATE}" in grid.stdout
    # Events: UI -> API server -> the operator's history API, with the UI's credentials.
    events = json.loads(get(reader, "api/events?kind=Want&name=good").stdout)
    assert [e["to"] for e in events["events"]] == ["Pending", "Building", "Successful"]
    if CHROMIUM is not None:  # a real browser, its fetches relative to the proxy's prefix
        _browse_through_kubectl_proxy(reader, prefix, tmp_path)

    refused = get(outsider, "")
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower()
    assert get(outsider, "api/wants").returncode != 0
    # The refusal is the outsider's alone: the reader still reads, the operator still builds.
    assert get(reader, "api/wants").returncode == 0
    sc.apply(want("later", ["fine/date=2025-01-02"]))
    sc.wait_for_want("later", "Successful")
    names = {w["name"] for w in json.loads(get(reader, "api/wants").stdout)["wants"]}
    assert names == {"good", "later"}


def _browse_through_kubectl_proxy(kubeconfig: Path, prefix: str, tmp_path: Path) -> None:
    port = free_port()
    log = (tmp_path / "kubectl-proxy.log").open("w")
    proxy = subprocess.Popen(
        [*KUBECTL, str(kubeconfig), "proxy", f"--port={port}"], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "kubectl proxy did not start"
                time.sleep(0.3)
        base = f"http://127.0.0.1:{port}{prefix}"
        wants = _browser(base + "#/wants", tmp_path)
        assert 'data-loaded="wants"' in wants and ">good<" in wants
        events = _browser(base + "#/events", tmp_path)
        assert 'data-loaded="events"' in events and ">AllPartitionsLive<" in events
    finally:
        proxy.terminate()
        proxy.wait(timeout=10)
        log.close()
