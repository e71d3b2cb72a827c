"""pytest fixtures for tests against a real local control plane.

Part of the `testing` extra. A suite opts in from its conftest.py with
`pytest_plugins = ["databuild.testing.pytest_plugin"]` (no `pytest11` entry point: a
user who installed only the operator gets no harness in their pytest sessions):

- `control_plane` (session): a started `ControlPlane`, or an `ExistingCluster` when
  `DATABUILD_TEST_KUBECONFIG` names a kubeconfig. Started only when a test asks for
  it (directly or through the fixtures below).
- `kube` (session): a `databuild.testing.kube.Kube` authenticated as the admin: blocking
  requests on the product's own client (`databuild.adapters.kube`).
- `namespace` (function): the name of a fresh namespace (its `default` ServiceAccount
  already exists), deleted after the test.
- `serviceaccount_audit_log` (session): the path of the API server's audit log of
  every write made with a ServiceAccount token.

The control plane's directory (logs, kubeconfig) is under pytest's temporary
directory; the terminal summary names it and the startup time.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from databuild.testing._controlplane import Cluster, ControlPlane, ExistingCluster
from databuild.testing.kube import Kube

#: A kubeconfig of an existing cluster to test against instead of starting one.
KUBECONFIG_ENV = "DATABUILD_TEST_KUBECONFIG"
#: Label on every namespace the `namespace` fixture creates.
TEST_NAMESPACE_LABEL = "databuild.dev/test-namespace"


# What the session's control plane reported, for the terminal summary.
_STARTED = pytest.StashKey[ControlPlane]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """One line on the control plane, if the session started one: time and logs."""
    plane = config.stash.get(_STARTED, None)
    if plane is None:
        return
    ready = plane.timings.get("ready")
    took = f"ready in {ready:.1f}s" if ready is not None else "failed to start"
    terminalreporter.write_line(f"databuild control plane: {took}; logs: {plane.logs_dir}")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker, so suites with --strict-markers may use it."""
    config.addinivalue_line(
        "markers",
        "controlplane: needs the local Kubernetes control plane (databuild.testing)",
    )


def _interrupt_on_sigterm() -> None:
    """Make SIGTERM end the session the way Ctrl-C does.

    pytest records a SystemExit raised inside a test as that test's failure and goes
    on with the next one; a KeyboardInterrupt ends the session and runs the fixtures'
    teardown, which stops the control plane in order.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def control_plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """The cluster of this test session: started on first use, stopped at the end."""
    existing = os.environ.get(KUBECONFIG_ENV)
    if existing:
        path = Path(existing).expanduser()
        if not path.is_file():
            raise pytest.UsageError(f"{KUBECONFIG_ENV}={existing}: no such kubeconfig file")
        yield ExistingCluster(path)
        return
    _interrupt_on_sigterm()
    run_dir = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(run_dir=run_dir, extra_args=_write_audit(run_dir))
    request.config.stash[_STARTED] = plane
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


# One audit line per write made with a ServiceAccount token (tests that run an operator
# under a ServiceAccount of its own read who wrote what, and when, from the API server);
# admin requests, reads and watches are not logged, so the file stays small.
_AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
omitManagedFields: true
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
  verbs: ["create", "update", "patch", "delete"]
- level: None
"""
AUDIT_LOG_NAME = "serviceaccount-writes.audit.log"


def _write_audit(run_dir: Path) -> dict[str, list[str]]:
    policy = run_dir / "audit-policy.yaml"
    policy.write_text(_AUDIT_POLICY)
    return {
        "kube-apiserver": [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={run_dir / AUDIT_LOG_NAME}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",
        ]
    }


@pytest.fixture(scope="session")
def serviceaccount_audit_log(control_plane: Cluster) -> Path:
    """The API server's audit log of every write made with a ServiceAccount token (JSON
    lines, read with :class:`databuild.bench.audit.AuditLog` or ``json``); skips the test
    on an existing cluster, whose audit log is out of reach."""
    if not isinstance(control_plane, ControlPlane):
        pytest.skip("the audit log of an existing cluster is out of reach")
    return control_plane.run_dir / AUDIT_LOG_NAME


@pytest.fixture(scope="session")
def kube(control_plane: Cluster) -> Iterator[Kube]:
    """An admin :class:`~databuild.testing.kube.Kube` for the session's cluster."""
    with control_plane.api_client() as api:
        yield api


def _namespace_name(test_name: str) -> str:
    # DNS-1123 label: lowercase alphanumerics and '-', at most 63 characters.
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{slug or 'test'}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kube: Kube) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = _namespace_name(request.node.name)
    # Waits for the namespace's `default` ServiceAccount, without which pods are refused.
    kube.create_namespace(name, {TEST_NAMESPACE_LABEL: "true"})
    try:
        yield name
    finally:
        kube.delete("Namespace", None, name, missing_ok=True)
