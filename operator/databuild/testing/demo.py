"""The demo, and the helpers it shares with end-to-end tests.

``python -m databuild.testing.demo`` (``make demo``) starts the local control plane (or
reuses the one ``make cluster-up`` started), applies ``crds/`` and the example graph in
``examples/reviews/``, runs the operator, shows progress, prints a summary of Wants,
Partitions and JobRuns, and exits 0 once every example Want is Successful, the Wants
the example Schedule catches up included (their first input is a probe that says "not
yet" once).

The helpers (:func:`apply_manifest`, :func:`install_crds`, :class:`OperatorProcess`,
:func:`wait_until`, ...) are public so users' own tests can drive the operator the same
way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

import yaml

from databuild.adapters.kube import KubeError
from databuild.adapters.resources import API_VERSION
from databuild.domain.schedule import Calendar, want_name
from databuild.testing._binaries import databuild_dir
from databuild.testing._controlplane import ControlPlane
from databuild.testing.demo_words import RealWork, real_node_socket
from databuild.testing.kube import KINDS, Kube

FIELD_MANAGER = "databuild-demo"
_T = TypeVar("_T")


def request(
    api: Kube,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str = "application/json",
    query: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One raw API request (a JSON ``body``); the decoded JSON response, or the product
    client's :class:`~databuild.adapters.kube.KubeError` with the API server's Status."""
    return api.request(method, path, body, content_type=content_type, query=query)


_CLUSTER_SCOPED = ("CustomResourceDefinition", "Namespace")


def _object_path(doc: Mapping[str, Any], namespace: str | None) -> tuple[str, str]:
    """(collection path, name) of a manifest."""
    kind = str(doc.get("kind"))
    name = str((doc.get("metadata") or {}).get("name"))
    if kind in _CLUSTER_SCOPED:
        return KINDS[kind].collection(None), name
    ns = namespace or (doc.get("metadata") or {}).get("namespace") or "default"
    return KINDS[kind].collection(str(ns)), name


def apply_manifest(
    api: Kube, doc: Mapping[str, Any], namespace: str | None = None
) -> dict[str, Any]:
    """Server-side apply one manifest (into ``namespace`` when given)."""
    doc = dict(doc)
    if namespace and doc.get("kind") not in _CLUSTER_SCOPED:
        doc["metadata"] = {**(doc.get("metadata") or {}), "namespace": namespace}
    collection, name = _object_path(doc, namespace)
    return request(
        api,
        "PATCH",
        f"{collection}/{name}",
        doc,  # JSON is YAML
        content_type="application/apply-patch+yaml",
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
    )


def create_object(api: Kube, doc: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """Create one object (no apply bookkeeping, so large objects fit)."""
    doc = {**doc, "metadata": {**(doc.get("metadata") or {}), "namespace": namespace}}
    collection, _ = _object_path(doc, namespace)
    return request(api, "POST", collection, doc)


def load_manifests(*paths: Path) -> list[dict[str, Any]]:
    """Every YAML document in the given files and directories (sorted by file name)."""
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    docs: list[dict[str, Any]] = []
    for file in files:
        docs.extend(d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d)
    return docs


def install_crds(api: Kube, directory: Path, timeout: float = 60.0) -> None:
    """Apply every CRD in ``directory`` and wait until the API server serves them."""
    names = []
    for doc in load_manifests(directory):
        apply_manifest(api, doc)
        names.append(doc["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = api.get("CustomResourceDefinition", None, name)
            conditions = {
                c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []
            }
            if conditions.get("Established") != "True":
                return False
        return True

    wait_until(established, timeout=timeout, what="the CRDs to be Established")


def get_object(api: Kube, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    """One object, or ``None`` if it does not exist."""
    return api.find(kind, namespace, name)


def list_objects(
    api: Kube, kind: str, namespace: str, label_selector: str | None = None
) -> list[dict[str, Any]]:
    """Every object of ``kind`` in ``namespace``, sorted by name."""
    items = api.list(kind, namespace, label_selector=label_selector)
    return sorted(items, key=lambda o: str(o["metadata"]["name"]))


def delete_object(api: Kube, kind: str, namespace: str, name: str) -> None:
    """Delete one object (dependents in the background); a missing object is fine."""
    api.delete(kind, namespace, name, missing_ok=True)


class Timeout(AssertionError):
    """A condition did not become true in time."""


def wait_until(
    predicate: Callable[[], _T | bool | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    describe: Callable[[], str] | None = None,
) -> _T:
    """Poll ``predicate`` until it returns a truthy value; raise :class:`Timeout` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe else ""
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def want_state(want: Mapping[str, Any]) -> str:
    """A Want's ``status.state`` ("" when the operator has not written it yet)."""
    return str((want.get("status") or {}).get("state") or "")


def condition(obj: Mapping[str, Any], type_: str = "Ready") -> dict[str, Any]:
    """The condition of ``type_`` in ``status.conditions`` ({} if absent)."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == type_:
            return dict(item)
    return {}


# ---------------------------------------------------------------------------------------
# The operator as a subprocess
# ---------------------------------------------------------------------------------------


@dataclass
class OperatorProcess:
    """``python -m databuild.operator`` as a child process, logging to ``log_path``.

    A subprocess is the operator as users run it, and can be SIGKILLed like a crashed
    pod. ``metrics_port`` serves Prometheus metrics, including the API writes it made.
    """

    kubeconfig: Path
    namespaces: Sequence[str]
    log_path: Path
    metrics_port: int | None = None
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> OperatorProcess:
        """Start the operator (it does not wait until the operator is ready)."""
        argv = [sys.executable, "-m", "databuild.operator", "--kubeconfig", str(self.kubeconfig)]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        if self.metrics_port is not None:
            argv += ["--metrics-port", str(self.metrics_port)]
        argv += list(self.extra_args)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        return self

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the operator, like a crash (no cleanup runs)."""
        if self.process is not None and self.alive:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the operator and wait (SIGKILL after ``timeout``); the exit code."""
        if self.process is None:
            return None
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the operator's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """Scrape the metrics endpoint: ``"name{labels}" -> value``."""
        if self.metrics_port is None:
            raise RuntimeError("the operator was started without --metrics-port")
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    values[key] = float(value)
        return values

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_writes(metrics: Mapping[str, float]) -> float:
    """Total successful API writes the operator reported, Events included."""
    return sum(v for k, v in metrics.items() if k.startswith("databuild_api_writes_total{"))


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def summary(api: Kube, namespace: str) -> str:
    """A table of the Wants, Partitions and JobRuns in ``namespace``."""
    out = []
    wants = list_objects(api, "Want", namespace)
    rows = [["WANT", "STATE", "PARTITIONS", "READY-REASON", "SOURCE"]]
    for w in wants:
        st = w.get("status") or {}
        rows.append(
            [
                w["metadata"]["name"],
                st.get("state", ""),
                st.get("progress", ""),
                condition(w).get("reason", ""),
                ((w["spec"].get("source") or {}).get("jobRun", "")),
            ]
        )
    out.append(_table(rows))
    rows = [["PARTITION", "STATE", "BUILT-BY", "INPUTS"]]
    for p in list_objects(api, "Partition", namespace):
        st = p.get("status") or {}
        inputs = st.get("inputs") or []
        shown = ", ".join(inputs[:2]) + (f" (+{len(inputs) - 2})" if len(inputs) > 2 else "")
        rows.append([p["spec"]["ref"], st.get("state", ""), st.get("jobRun", ""), shown])
    out.append(_table(rows))
    rows = [["JOBRUN", "JOB-DEFINITION", "STATE", "ATTEMPT", "REASON"]]
    for r in list_objects(api, "JobRun", namespace):
        st = r.get("status") or {}
        rows.append(
            [
                r["metadata"]["name"],
                r["spec"]["jobDefinition"],
                st.get("state", ""),
                str(st.get("attempt", "")),
                st.get("reason", ""),
            ]
        )
    out.append(_table(rows))
    return "\n\n".join(out)


__all__ = [
    "API_VERSION",
    "KubeError",
    "OperatorProcess",
    "Timeout",
    "api_writes",
    "apply_manifest",
    "condition",
    "create_object",
    "delete_object",
    "get_object",
    "install_crds",
    "list_objects",
    "load_manifests",
    "request",
    "summary",
    "wait_until",
    "want_state",
]


def _reachable(kubeconfig: Path) -> bool:
    """Whether the cluster of ``kubeconfig`` answers (within a few seconds)."""
    try:
        api = Kube.from_kubeconfig(kubeconfig, timeout=5)
    except Exception:
        return False
    try:
        api.request("GET", "/version")
    except Exception:
        return False
    finally:
        api.close()
    return True


def _project_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "crds").is_dir() and (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


@dataclass
class Progress:
    """Counts of states, as the demo prints them."""

    wants: dict[str, int]
    partitions: dict[str, int]
    runs: dict[str, int]

    def line(self) -> str:
        """One progress line."""

        def fmt(counts: dict[str, int]) -> str:
            return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "-"

        return (
            f"wants: {fmt(self.wants)} | partitions: {fmt(self.partitions)} | "
            f"job runs: {fmt(self.runs)}"
        )


def progress(api: Kube, namespace: str) -> Progress:
    """The state counts of the namespace."""

    # An object the operator has not written a status for yet is in its initial state.
    initial = {"Want": "Pending", "Partition": "Missing", "JobRun": "Queued"}

    def count(kind: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in list_objects(api, kind, namespace):
            state = str((obj.get("status") or {}).get("state") or initial[kind])
            counts[state] = counts.get(state, 0) + 1
        return counts

    return Progress(count("Want"), count("Partition"), count("JobRun"))


def run_demo(
    kubeconfig: Path,
    *,
    root: Path,
    namespace: str,
    timeout: float,
    log_dir: Path,
    out: IO[str],
    real_node: Path | None = None,
) -> int:
    """Apply the CRDs and examples into ``namespace``, run the operator, report; exit code.

    With ``real_node`` (the containerd socket of the control plane's real node) the
    example in ``examples/words/`` runs too, as real containers, and the summary shows
    the data they wrote.
    """
    api = Kube.from_kubeconfig(kubeconfig)
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=out, flush=True)

    try:
        install_crds(api, root / "crds")
        say(f"CRDs installed from {root / 'crds'}")
        apply_manifest(
            api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        docs = load_manifests(root / "examples" / "reviews")
        work = RealWork(root, real_node, namespace) if real_node is not None else None
        if work is not None:
            docs += work.prepare()
            say(f"examples/words runs on the real node (its data: {work.data})")
        wanted = [d["metadata"]["name"] for d in docs if d["kind"] == "Want"]
        for doc in docs:
            if doc["kind"] == "Schedule":
                wanted.extend(schedule_want_names(doc, datetime.now(UTC)))
        for doc in docs:
            apply_manifest(api, doc, namespace)
        say(f"applied {len(docs)} example objects into namespace {namespace}")
        with OperatorProcess(
            kubeconfig=kubeconfig,
            namespaces=[namespace],
            log_path=log_dir / "operator.log",
            metrics_port=_free_port(),
            extra_args=["--lease-name", f"databuild-demo-{namespace}"[:63]],
        ) as operator:
            say(f"operator started (log: {operator.log_path})")
            last = ""
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(0.5)
                now = progress(api, namespace)
                if now.line() != last:
                    last = now.line()
                    say(last)
                states = {
                    w["metadata"]["name"]: want_state(w)
                    for w in list_objects(api, "Want", namespace)
                }
                failed = [n for n in wanted if states.get(n) in ("Failed", "Expired")]
                if failed or all(states.get(n) == "Successful" for n in wanted):
                    break
                if not operator.alive:
                    print(operator.log_tail(), file=out)
                    say("the operator exited unexpectedly")
                    return 1
                if time.monotonic() > deadline:
                    print(f"\n{summary(api, namespace)}\n", file=out)
                    print(operator.log_tail(), file=out)
                    say(
                        f"TIMEOUT: not every example Want was Successful after {timeout:.0f}s "
                        f"(states: {states})"
                    )
                    return 1
            writes = api_writes(operator.metrics())
        built = sum(
            1
            for p in list_objects(api, "Partition", namespace)
            if (p.get("status") or {}).get("state") == "Live"
        )
        print(f"\n{summary(api, namespace)}\n", file=out)
        if work is not None:
            print(f"{work.report()}\n", file=out)
        if failed:
            say(f"FAILED: example Wants {', '.join(failed)} did not succeed")
            return 1
        say(
            f"every example Want is Successful: {built} partitions built, "
            f"{writes:.0f} API writes ({writes / max(built, 1):.1f} per partition)"
        )
        return 0
    finally:
        api.close()


def schedule_want_names(doc: Mapping[str, Any], now: datetime) -> list[str]:
    """The Wants a Schedule manifest with a ``startTime`` is due to have created by ``now``."""
    spec = doc["spec"]
    if "startTime" not in spec:
        return []
    calendar = Calendar.parse(spec["schedule"], spec.get("timeZone", "UTC"))
    start = datetime.fromisoformat(str(spec["startTime"]).replace("Z", "+00:00"))
    end = spec.get("endTime")
    last = min(now, datetime.fromisoformat(str(end).replace("Z", "+00:00"))) if end else now
    names = []
    for tick in calendar.ticks_after(start - timedelta(microseconds=1)):
        if tick > last:
            break
        names.append(want_name(doc["metadata"]["name"], tick))
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m databuild.testing.demo",
        description="Run the DataBuild demo end to end on the local control plane.",
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="use this cluster (default: the one `make cluster-up` runs, else start one)",
    )
    parser.add_argument("--namespace", help="namespace for the examples (default: a new one)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait")
    parser.add_argument("--keep", action="store_true", help="keep the namespace afterwards")
    parser.add_argument(
        "--real-node-socket",
        type=Path,
        help="containerd socket of the cluster's real node (default: the one the demo or "
        "`make cluster-up` started, if any)",
    )
    args = parser.parse_args(argv)

    root = _project_root()
    namespace = args.namespace or f"databuild-demo-{os.urandom(3).hex()}"
    started = time.monotonic()
    plane: ControlPlane | None = None
    kubeconfig: Path | None = args.kubeconfig
    if kubeconfig is None:
        candidate = databuild_dir() / "kubeconfig"
        if candidate.is_file() and _reachable(candidate):
            kubeconfig = candidate
            print(f"using the running local control plane ({candidate})", flush=True)
    log_dir = databuild_dir() / "demo"
    try:
        if kubeconfig is None:
            print(
                "starting a local control plane (etcd, kube-apiserver, "
                "kube-controller-manager, kube-scheduler, kwok) ...",
                flush=True,
            )
            plane = ControlPlane().start()
            kubeconfig = plane.kubeconfig
            print(f"control plane ready in {time.monotonic() - started:.1f}s", flush=True)
        own = plane.real_node.socket if plane is not None and plane.real_node else None
        socket = args.real_node_socket or real_node_socket(own, databuild_dir())
        if socket is None:
            print("no real node: only the simulated examples run", flush=True)
        code = run_demo(
            kubeconfig,
            root=root,
            namespace=namespace,
            timeout=args.timeout,
            log_dir=log_dir,
            out=sys.stdout,
            real_node=socket,
        )
        print(f"demo finished in {time.monotonic() - started:.1f}s", flush=True)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if plane is not None:
            plane.stop()
        elif kubeconfig is not None and not args.keep:
            with contextlib.suppress(Exception), Kube.from_kubeconfig(kubeconfig) as api:
                api.delete("Namespace", None, namespace)
        if not args.keep:
            RealWork(root, Path(), namespace).cleanup()


if __name__ == "__main__":
    sys.exit(main())
