"""Helpers for end-to-end tests: a namespace with its operator, and manifests."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from databuild.testing.demo import (
    OperatorProcess,
    create_object,
    get_object,
    list_objects,
    summary,
    wait_until,
    want_state,
)

if TYPE_CHECKING:
    from databuild.testing import Cluster
    from databuild.testing.kube import Kube

TERMINAL = {"Successful", "Failed", "Expired"}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Scenario:
    """One test's namespace, its operator, and helpers to drive and inspect them."""

    def __init__(self, kube: Kube, namespace: str, cluster: Cluster, log_dir: Path) -> None:
        self.kube = kube
        self.namespace = namespace
        self.cluster = cluster
        self.log_dir = log_dir
        self.operators: list[OperatorProcess] = []

    def start_operator(self, *extra: str, also: Sequence[str] = ()) -> OperatorProcess:
        """Start an operator for this namespace and the namespaces ``also`` (each restart
        logs to the same file)."""
        process = OperatorProcess(
            kubeconfig=Path(self.cluster.kubeconfig),
            namespaces=[self.namespace, *also],
            log_path=self.log_dir / "operator.log",
            metrics_port=free_port(),
            extra_args=[
                "--lease-name",
                f"databuild-{self.namespace}"[:63],
                "--lease-duration-seconds",
                "4",
                *extra,
            ],
        ).start()
        self.operators.append(process)
        return process

    @property
    def operator(self) -> OperatorProcess:
        """The most recently started operator."""
        return self.operators[-1]

    def apply(self, *docs: dict[str, Any]) -> None:
        """Create objects in the namespace."""
        for doc in docs:
            create_object(self.kube, doc, self.namespace)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """One object of the namespace, or None."""
        return get_object(self.kube, kind, self.namespace, name)

    def list(self, kind: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` in the namespace."""
        return list_objects(self.kube, kind, self.namespace)

    def describe(self) -> str:
        """The namespace's Wants, Partitions and JobRuns, and the operator's last log lines."""
        tail = self.operator.log_tail(40) if self.operators else ""
        return f"{summary(self.kube, self.namespace)}\n--- operator log ---\n{tail}"

    def wait_for_want(self, name: str, state: str, timeout: float = 60) -> dict[str, Any]:
        """Wait until Want ``name`` is in ``state``; fail early if it ends elsewhere."""

        def check() -> dict[str, Any] | None:
            want = self.get("Want", name)
            if want is None:
                return None
            current = want_state(want)
            if current == state:
                return want
            if current in TERMINAL:
                raise AssertionError(
                    f"Want {name} ended {current}, expected {state}\n{self.describe()}"
                )
            return None

        return wait_until(
            check, timeout=timeout, what=f"Want {name} to be {state}", describe=self.describe
        )

    def partition(self, ref: str) -> dict[str, Any]:
        """The Partition of ``ref``."""
        for part in self.list("Partition"):
            if part["spec"]["ref"] == ref:
                return part
        raise AssertionError(f"no Partition for {ref}\n{self.describe()}")

    def runs_of(self, job_definition: str) -> list[dict[str, Any]]:
        """The JobRuns of one JobDefinition."""
        return [r for r in self.list("JobRun") if r["spec"]["jobDefinition"] == job_definition]

    def wait_for_event(self, name: str, reason: str, timeout: float = 15) -> dict[str, Any]:
        """Wait for a Kubernetes Event with ``reason`` about ``name`` (Events are posted
        after the status writes of a plan, so they may trail the state a test saw)."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.events(name) if e["reason"] == reason), None)

        return wait_until(
            find, timeout=timeout, what=f"a {reason} Event on {name}", describe=self.describe
        )

    def events(self, name: str) -> list[dict[str, Any]]:
        """Kubernetes Events about the object ``name``."""
        return [
            e
            for e in list_objects(self.kube, "Event", self.namespace)
            if e["involvedObject"]["name"] == name
        ]


def jobdef(
    name: str,
    outputs: list[str],
    inputs: list[str] | None = None,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A JobDefinition whose pods kwok simulates as ``labels``/``annotations`` say."""
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": name},
        "spec": {
            "outputs": outputs,
            "inputs": inputs or [],
            "template": {
                "metadata": {"labels": labels or {}, "annotations": annotations or {}},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "example.invalid/job:1", "args": ["build"]}
                    ]
                },
            },
            **spec,
        },
    }
