"""Two operators with skewed clocks never write at the same time (the API server's word).

Each operator runs under a ServiceAccount of its own, with its wall clock moved by
libfaketime (one 3 s ahead, one 3 s behind: a contender comparing wall clocks with the
holder's ``renewTime`` would take over early). The leader is frozen (SIGSTOP) for a
while so the other takes over, then thawed. From the API server's audit log: no write
of either is received while the other holds the Lease, as the Lease writes the server
accepted say. The Wants still all succeed.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Scenario, free_port, jobdef
from test_helm import service_account_kubeconfig
from tests.manifests import want

from databuild.testing.demo import OperatorProcess, request, wait_until

pytestmark = pytest.mark.e2e

LIBFAKETIME = next(
    (
        p
        for p in (
            Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
            Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
        )
        if p.is_file()
    ),
    None,
)
# The renew deadline (two thirds) leaves a third of it for a write already on its way
# when the term ends: on a loaded two-core machine that takes seconds.
LEASE_SECONDS = 9


def _identity(sc: Scenario, name: str, tmp: Path) -> Path:
    """A ServiceAccount allowed everything (leadership is under test, not RBAC)."""
    request(
        sc.kube,
        "POST",
        f"/api/v1/namespaces/{sc.namespace}/serviceaccounts",
        {"metadata": {"name": name}},
    )
    request(
        sc.kube,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": f"{sc.namespace}-{name}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": sc.namespace}],
        },
    )
    return service_account_kubeconfig(
        sc.cluster, sc.kube, sc.namespace, name, tmp / f"{name}.kubeconfig"
    )


def _operator(sc: Scenario, kubeconfig: Path, skew: str, log: Path) -> OperatorProcess:
    process = OperatorProcess(
        kubeconfig=kubeconfig,
        namespaces=[sc.namespace],
        log_path=log,
        metrics_port=free_port(),
        extra_args=[
            "--lease-name", f"leader-{sc.namespace}"[:63],
            "--lease-namespace", sc.namespace,
            "--lease-duration-seconds", str(LEASE_SECONDS),
        ],
        env={
            "LD_PRELOAD": str(LIBFAKETIME),
            "FAKETIME": skew,
            # Only the wall clock is skewed: each machine has its own monotonic clock.
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
    ).start()  # fmt: skip
    sc.operators.append(process)
    return process


def _time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _violations(audit: Path, start: int, users: set[str]) -> tuple[list[str], int, int]:
    """Writes received while another user held the Lease; and the counts of takeovers and
    of other writes seen."""
    events: list[dict[str, Any]] = []
    with audit.open("rb") as f:
        f.seek(start)
        for line in f.read().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("user", {}).get("username") in users:
                events.append(event)
    # Lease writes the server accepted, at the time it finished them: who holds it since.
    terms = sorted(
        (_time(e["stageTimestamp"]), e["user"]["username"])
        for e in events
        if e.get("objectRef", {}).get("resource") == "leases"
        and 200 <= int(e.get("responseStatus", {}).get("code", 0)) < 300
    )
    holders = [u for _, u in terms]
    takeovers = sum(1 for a, b in itertools.pairwise(holders) if a != b)
    found, writes = [], 0
    for e in events:
        if e.get("objectRef", {}).get("resource") == "leases":
            continue
        writes += 1
        received = _time(e["requestReceivedTimestamp"])
        holder = next((u for t, u in reversed(terms) if t <= received), None)
        if holder != e["user"]["username"]:
            who, when = e["user"]["username"], e["requestReceivedTimestamp"]
            found.append(f"{who} {e['verb']} {e['requestURI']} at {when}; {holder} held the Lease")
    return found, takeovers, writes


@pytest.mark.skipif(
    LIBFAKETIME is None or shutil.which("faketime") is None,
    reason="needs libfaketime (.ci/run installs it)",
)
def test_two_operators_with_skewed_clocks_never_write_at_once(
    scenario: Scenario, serviceaccount_audit_log: Path, tmp_path: Path
) -> None:
    sc = scenario
    mark = serviceaccount_audit_log.stat().st_size if serviceaccount_audit_log.exists() else 0
    ahead = _operator(sc, _identity(sc, "ahead", tmp_path), "+3s", tmp_path / "ahead.log")
    behind = _operator(sc, _identity(sc, "behind", tmp_path), "-3s", tmp_path / "behind.log")
    users = {f"system:serviceaccount:{sc.namespace}:{n}" for n in ("ahead", "behind")}
    sc.apply(
        jobdef("daily", ["daily/date={date}"], annotations={"kwok.databuild.dev/duration": "2s"}),
        *(want(f"w{d}", [f"daily/date=2025-01-{d:02}"]) for d in range(1, 5)),
    )
    for d in range(1, 5):
        sc.wait_for_want(f"w{d}", "Successful", timeout=90)
    # Freeze the leader while it is idle (its last plan's Events and finalizer patches
    # sent): a process stopped between deciding to send a write and sending it sends it
    # when thawed, whatever its term, and no client can prevent that (client-go neither;
    # status writes carry resourceVersions for this). What is under test is that no
    # write is *decided* outside a term: the contender's takeover and the thawed
    # holder's silence.
    time.sleep(3)

    def leader() -> OperatorProcess | None:
        for p in (ahead, behind):
            try:
                if p.metrics().get("databuild_leader", 0.0) == 1.0:
                    return p
            except OSError:
                continue
        return None

    frozen = wait_until(leader, timeout=30, what="a leader", describe=sc.describe)
    assert frozen.process is not None
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        sc.apply(*(want(f"v{d}", [f"daily/date=2025-02-{d:02}"]) for d in range(1, 5)))
        for d in range(1, 5):
            sc.wait_for_want(f"v{d}", "Successful", timeout=90)
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    # Thawed, it still believes in a term that lapsed long ago (by its own clock too).
    sc.apply(*(want(f"u{d}", [f"daily/date=2025-03-{d:02}"]) for d in range(1, 5)))
    for name in [f"w{d}" for d in range(1, 5)] + [f"u{d}" for d in range(1, 5)]:
        sc.wait_for_want(name, "Successful", timeout=90)
    time.sleep(2)  # the audit log is written asynchronously

    found, takeovers, writes = _violations(serviceaccount_audit_log, mark, users)
    assert takeovers >= 1, "the frozen leader was never replaced"
    assert writes > 20, f"only {writes} writes audited: is the audit log on?"
    assert not found, "\n".join(found[:20])
