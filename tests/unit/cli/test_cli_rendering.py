"""Rendering: the status tree, explain, and graphs, from real model objects."""

from __future__ import annotations

import json

import yaml

from databuild.cli.graph import build_graph, to_dot, to_mermaid
from databuild.cli.lineage import downstream_of, lineage_tree

from .fake import FakeCluster, cli, job_run, partition, sample, want

TREE = """\
Want daily-jan   Building   1/2 live   age 10m
├── Partition daily/date=2025-01-01   Live   8m
│   └── JobRun daily-1   Succeeded   daily   attempt 1   finished 8m ago   took 20s
└── Partition daily/date=2025-01-02   Building   9m
    └── JobRun daily-2   Running   daily   attempt 2   started 60s ago
"""


def test_status_tree_of_one_want() -> None:
    result = cli(FakeCluster.of(sample()), "status", "daily-jan")
    assert result.code == 0
    assert result.out == TREE


def test_status_of_all_wants_hides_derived_ones_unless_asked() -> None:
    cluster = FakeCluster.of(sample())
    plain = cli(cluster, "status").out
    assert "Want raw-only" in plain
    assert "Want daily-jan" in plain
    assert "derived-1" not in plain
    # Oldest first.
    assert plain.index("Want raw-only") < plain.index("Want daily-jan")
    everything = cli(cluster, "status", "--all").out
    assert "Want derived-1   Successful   1/1 live   for clean-2" in everything


def test_status_tree_shows_why_a_run_waits_or_failed() -> None:
    world = sample()
    world["job_runs"].append(
        job_run(
            "daily-3",
            "daily",
            ["daily/date=2025-01-03"],
            ["clean/date=2025-01-03"],
            "WaitingForUpstream",
        )
    )
    world["job_runs"].append(
        job_run(
            "daily-4",
            "daily",
            ["daily/date=2025-01-03"],
            [],
            "Failed",
            created=900,
            message="exit code 2",
        )
    )
    world["wants"].append(want("w3", ["daily/date=2025-01-03"], "UpstreamBuilding"))
    out = cli(FakeCluster.of(world), "status", "w3").out
    assert out.splitlines() == [
        "Want w3   UpstreamBuilding   0/1 live   age 10m",
        "└── Partition daily/date=2025-01-03   Missing   -",
        "    ├── JobRun daily-4   Failed   daily   age 15m",
        "    │   ├── message: exit code 2",
        "    │   └── logs: databuild logs -n data daily-4 --failed",
        "    └── JobRun daily-3   WaitingForUpstream   daily   age 9m",
        "        └── waiting for clean/date=2025-01-03",
    ]


def test_status_shows_a_priority_other_than_the_default() -> None:
    cluster = FakeCluster.of(sample())
    old = cluster.wants["daily-jan"]
    spec = old.spec.model_copy(update={"priority": 10})
    cluster.wants["daily-jan"] = old.model_copy(update={"spec": spec})
    assert (
        "Want daily-jan   Building   1/2 live   priority 10   age 10m" in cli(cluster, "status").out
    )
    assert "priority" not in cli(cluster, "status", "raw-only").out
    assert json.loads(cli(cluster, "status", "daily-jan", "-o", "json").out)["priority"] == 10


def test_status_json_and_yaml_parse() -> None:
    cluster = FakeCluster.of(sample())
    one = json.loads(cli(cluster, "status", "daily-jan", "-o", "json").out)
    assert one["state"] == "Building"
    assert one["progress"] == "1/2"
    building = one["partitions"][1]
    assert building["state"] == "Building"
    assert building["jobRuns"][0]["attempt"] == 2
    assert building["jobRuns"][0]["failedAttempts"] == 1
    many = yaml.safe_load(cli(cluster, "status", "-o", "yaml").out)
    assert [w["name"] for w in many] == ["raw-only", "daily-jan"]


def test_explain_shows_builder_attempts_inputs_and_lineage() -> None:
    result = cli(FakeCluster.of(sample()), "explain", "daily/date=2025-01-02")
    assert result.code == 0
    out = result.out
    assert "Built by:   JobRun daily-2 (JobDefinition daily), Running" in out
    assert "Attempts:   2 (failed: 1)" in out
    assert "#1  daily-2-1  Failed" in out
    assert "exit code 1" in out
    assert "#2  daily-2-2  Running" in out
    assert "  clean/date=2025-01-02   Live   built by clean-2" in out
    assert "  │   └── raw/date=2025-01-02   Live <- raw-2 (raw)" in out
    assert "History" not in out  # no BEL store configured


def test_explain_json() -> None:
    data = json.loads(
        cli(FakeCluster.of(sample()), "explain", "clean/date=2025-01-01", "-o", "json").out
    )
    assert data["state"] == "Live"
    assert data["builtBy"]["name"] == "clean-1"
    assert data["builtBy"]["jobDefinition"] == "clean"
    assert data["inputs"] == [{"ref": "raw/date=2025-01-01", "state": "Live", "builtBy": "raw-1"}]
    assert data["downstream"] == ["daily/date=2025-01-01"]


def test_lineage_stops_at_cycles_and_depth() -> None:
    cluster = FakeCluster.of(
        {
            "wants": [],
            "partitions": [
                partition("a/x=1", "Live", None, ["b/x=1"]),
                partition("b/x=1", "Live", None, ["a/x=1"]),
            ],
            "job_runs": [],
            "attempts": {},
        }
    )
    snap = cluster.snapshot()
    lines = lineage_tree(snap, "a/x=1")
    assert lines[-1].endswith("(cycle)")
    assert len(lines) == 3
    shallow = lineage_tree(FakeCluster.of(sample()).snapshot(), "daily/date=2025-01-01", 1)
    assert any("more inputs, use --depth" in line for line in shallow)
    assert downstream_of(snap, "a/x=1") == ["b/x=1"]


MERMAID = """\
flowchart LR
    p0["daily/date=2025-01-01<br/>Live"]:::live
    p1["clean/date=2025-01-01<br/>Live"]:::live
    p2["raw/date=2025-01-01<br/>Live"]:::live
    p1 -->|daily| p0
    p2 -->|daily| p0
    p2 -->|clean| p1
    classDef live fill:#c8e6c9,stroke:#555
    classDef building fill:#bbdefb,stroke:#555
    classDef missing fill:#eeeeee,stroke:#555
    classDef failed fill:#ffcdd2,stroke:#555
    classDef tainted fill:#ffe0b2,stroke:#555
"""

DOT = """\
digraph databuild {
    rankdir=LR;
    node [shape=box, style="rounded,filled", fontname="Helvetica"];
    "daily/date=2025-01-01" [label="daily/date=2025-01-01\\nLive", fillcolor="#c8e6c9"];
    "clean/date=2025-01-01" [label="clean/date=2025-01-01\\nLive", fillcolor="#c8e6c9"];
    "raw/date=2025-01-01" [label="raw/date=2025-01-01\\nLive", fillcolor="#c8e6c9"];
    "clean/date=2025-01-01" -> "daily/date=2025-01-01" [label="daily"];
    "raw/date=2025-01-01" -> "daily/date=2025-01-01" [label="daily"];
    "raw/date=2025-01-01" -> "clean/date=2025-01-01" [label="clean"];
}
"""


def test_graph_of_a_ref_as_mermaid_and_dot() -> None:
    cluster = FakeCluster.of(sample())
    assert cli(cluster, "graph", "daily/date=2025-01-01").out == MERMAID
    assert cli(cluster, "graph", "daily/date=2025-01-01", "-o", "dot").out == DOT


def test_graph_of_a_want_covers_all_its_partitions() -> None:
    cluster = FakeCluster.of(sample())
    data = json.loads(cli(cluster, "graph", "daily-jan", "-o", "json").out)
    refs = [n["ref"] for n in data["nodes"]]
    assert refs[:2] == ["daily/date=2025-01-01", "daily/date=2025-01-02"]
    assert len(refs) == 6
    assert {
        "from": "raw/date=2025-01-02",
        "to": "clean/date=2025-01-02",
        "jobDefinition": "clean",
    } in data["edges"]
    assert {n["state"] for n in data["nodes"]} == {"Live", "Building"}


def test_graph_keeps_every_ref_character_and_uses_safe_node_ids() -> None:
    # Every punctuation mark the ref alphabet allows, which mermaid and DOT must show
    # verbatim (quotes, brackets and '<' can no longer occur in a ref).
    ref = "q/k=a:b,c+d@e~f.g_h-i"
    snap = FakeCluster.of(
        {
            "wants": [],
            "partitions": [partition(ref, "Failed", None, [])],
            "job_runs": [],
            "attempts": {},
        }
    ).snapshot()
    graph = build_graph(snap, [ref])
    assert f'p0["{ref}<br/>Failed"]:::failed' in to_mermaid(graph)
    assert f'"{ref}" [label="{ref}\\nFailed"' in to_dot(graph)
