"""A tiny run of the benchmark harness: baseline and operator on 5 partitions, and the
latency path on 2 Wants. No timing assertions: only that both sides built everything
and the results have numbers."""

from __future__ import annotations

import re
from pathlib import Path

from databuild.bench.cli import main
from databuild.testing import Cluster


def test_bench_smoke(control_plane: Cluster, tmp_path: Path) -> None:
    output = tmp_path / "results.md"
    code = main(
        [
            "--kubeconfig",
            str(control_plane.kubeconfig),
            "--quick",
            "--only",
            "wide",
            "--wide",
            "5",
            "--only",
            "latency",
            "--latency",
            "2",
            "--no-planner",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )
    text = output.read_text()
    assert code == 0, text
    assert "## Errors" not in text
    number = r"\d+\.\d+"
    # scenario | graph | partitions | depth | baseline s | operator s | ratio | writes/part
    assert re.search(
        rf"\| wide \| wide-5 \| 5 \| 1 \| {number} \| {number} \| {number} \| {number} \|", text
    ), text
    assert re.search(rf"\| latency-2 \| 2 \| operator \| {number} \|", text), text
    assert "| Kubernetes (apiserver) | v" in text
