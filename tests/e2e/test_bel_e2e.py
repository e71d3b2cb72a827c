"""The operator writing the Build Event Log to a durable store, read back by the CLI.

Runs against both stores: the embedded SQLite file and a real PostgreSQL server.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from databuild.adapters.bel import EntityKey, open_store, replay_at
from databuild.testing.demo import (
    OperatorProcess,
    create_object,
    list_objects,
    wait_until,
    want_state,
)
from databuild.testing.postgres import postgres_server, postgres_url

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

__all__ = ["postgres_server", "postgres_url"]

DATE = "2025-01-01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(params=["sqlite", "postgresql"])
def bel_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bel' / 'bel.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def operator(
    control_plane: Cluster,
    namespace: str,
    crds: None,
    tmp_path: Path,
    bel_url: str,
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=Path(control_plane.kubeconfig),
        namespaces=[namespace],
        log_path=tmp_path / "operator.log",
        metrics_port=_free_port(),
        extra_args=[
            "--lease-name",
            f"databuild-{namespace}"[:63],
            "--lease-duration-seconds",
            "4",
            "--bel-url",
            bel_url,
        ],
    ).start()
    try:
        yield process
    finally:
        process.stop()


def _jobdef(name: str, outputs: list[str], inputs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {
            "outputs": outputs,
            "inputs": inputs,
            "template": {"spec": {"containers": [{"name": "main", "image": "x.invalid/j:1"}]}},
        },
    }


def _cli(control_plane: Cluster, namespace: str, bel_url: str, *argv: str) -> tuple[int, str]:
    cmd = [
        sys.executable,
        "-m",
        "databuild.cli.main",
        "--kubeconfig",
        str(control_plane.kubeconfig),
        "-n",
        namespace,
        "--bel-url",
        bel_url,
        *argv,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_every_transition_reaches_the_store_and_replays_to_the_current_states(
    operator: OperatorProcess,
    kube: Kube,
    namespace: str,
    control_plane: Cluster,
    bel_url: str,
) -> None:
    for doc in (
        _jobdef("raw", ["raw/date={date}"], []),
        _jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        {
            "apiVersion": "databuild.dev/v1alpha1",
            "kind": "Want",
            "metadata": {"name": "w"},
            "spec": {"partitions": [f"clean/date={DATE}"]},
        },
    ):
        create_object(kube, doc, namespace)

    def successful() -> bool:
        wants = list_objects(kube, "Want", namespace)
        return bool(wants) and want_state(wants[0]) == "Successful"

    wait_until(successful, timeout=90, what="Want w to be Successful", describe=operator.log_tail)
    middle = datetime.now().astimezone()

    # The writer appends in the background: wait until the store has caught up with the
    # objects' final states, then compare everything.
    store = open_store(bel_url, migrate=False)
    objects = {
        EntityKey(namespace, kind, o["metadata"]["name"]): o["status"]["state"]
        for kind in ("Want", "Partition", "JobRun")
        for o in list_objects(kube, kind, namespace)
    }

    def caught_up() -> dict[EntityKey, str] | None:
        states = replay_at(store, datetime.now().astimezone(), namespace=namespace)
        return states if states == objects else None

    try:
        states = wait_until(caught_up, timeout=30, what="the BEL to catch up")
        assert len(states) == 5  # the Want, two Partitions, two JobRuns
        runs = store.query()
        # Every event is enriched: JobRun events carry their JobDefinition and outputs.
        clean_runs = [
            s.event for s in runs if s.event.kind == "JobRun" and s.event.job_definition == "clean"
        ]
        assert [e.to_state for e in clean_runs][-1] == "Succeeded"
        assert clean_runs[-1].refs == (f"clean/date={DATE}",)
        seqs = [s.seq for s in runs]
        assert seqs == sorted(seqs)
        assert len({s.event.event_id for s in runs}) == len(runs)
    finally:
        store.close()

    code, out = _cli(control_plane, namespace, bel_url, "events", "--job", "clean", "-o", "json")
    assert code == 0, out
    assert [e["to"] for e in json.loads(out)][-1] == "Succeeded"
    code, out = _cli(
        control_plane, namespace, bel_url, "events", "--ref", "raw/*", "--kind", "Partition"
    )
    assert code == 0, out
    assert "Missing" in out and "Live" in out
    code, out = _cli(
        control_plane, namespace, bel_url, "history", "--at", middle.isoformat(), "-o", "json"
    )
    assert code == 0, out
    assert {e["name"]: e["state"] for e in json.loads(out)["entities"]}["w"] == "Successful"
    code, out = _cli(control_plane, namespace, bel_url, "explain", f"clean/date={DATE}")
    assert code == 0, out
    assert "History (Build Event Log):" in out
    assert "-> Live  Built" in out
