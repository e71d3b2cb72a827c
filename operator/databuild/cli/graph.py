"""``databuild graph``: the dependency graph of a Want or a partition, as Mermaid or DOT."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from databuild.cli.kube import Snapshot

__all__ = ["Graph", "build_graph", "to_dot", "to_mermaid"]

# Fill colours per partition state (the same in both formats).
_COLOURS = {
    "Live": "#c8e6c9",
    "Building": "#bbdefb",
    "Missing": "#eeeeee",
    "Failed": "#ffcdd2",
    "Tainted": "#ffe0b2",
}


@dataclass(frozen=True)
class Graph:
    """Partitions (with states) and build edges input -> output labelled by job."""

    nodes: tuple[tuple[str, str], ...]
    """(ref, state), roots (what was asked for) first."""
    edges: tuple[tuple[str, str, str], ...]
    """(input ref, output ref, JobDefinition)."""


def build_graph(snap: Snapshot, roots: Iterable[str], depth: int = 50) -> Graph:
    """The upstream graph of `roots`: every input, recursively (cycles stop the walk)."""
    nodes: dict[str, str] = {}
    edges: dict[tuple[str, str], str] = {}
    frontier = list(dict.fromkeys(roots))
    level = 0
    while frontier and level <= depth:
        nxt: list[str] = []
        for ref in frontier:
            if ref in nodes:
                continue
            part = snap.partitions.get(ref)
            nodes[ref] = (part.status.state if part is not None else None) or "Missing"
            run = snap.builder_of(ref)
            job = run.spec.job_definition if run is not None else ""
            for upstream in snap.inputs_of(ref):
                edges.setdefault((upstream, ref), job)
                nxt.append(upstream)
        frontier = nxt
        level += 1
    for upstream, _ in edges:  # inputs beyond the depth limit still get a node
        if upstream not in nodes:
            part = snap.partitions.get(upstream)
            nodes[upstream] = (part.status.state if part is not None else None) or "Missing"
    return Graph(
        tuple(nodes.items()),
        tuple((a, b, job) for (a, b), job in edges.items()),
    )


def _mermaid_text(text: str) -> str:
    return (
        text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    )


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart (left to right), one class per state."""
    ids = {ref: f"p{i}" for i, (ref, _) in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for ref, state in graph.nodes:
        lines.append(f'    {ids[ref]}["{_mermaid_text(ref)}<br/>{state}"]:::{state.lower()}')
    for a, b, job in graph.edges:
        label = f"|{_mermaid_text(job)}|" if job else ""
        lines.append(f"    {ids[a]} -->{label} {ids[b]}")
    for state, colour in _COLOURS.items():
        lines.append(f"    classDef {state.lower()} fill:{colour},stroke:#555")
    return "\n".join(lines)


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: Graph) -> str:
    """A Graphviz digraph (left to right), filled by state."""
    lines = [
        "digraph databuild {",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for ref, state in graph.nodes:
        colour = _COLOURS.get(state, "#ffffff")
        lines.append(
            f'    "{_dot_text(ref)}" [label="{_dot_text(ref)}\\n{state}", fillcolor="{colour}"];'
        )
    for a, b, job in graph.edges:
        label = f' [label="{_dot_text(job)}"]' if job else ""
        lines.append(f'    "{_dot_text(a)}" -> "{_dot_text(b)}"{label};')
    lines.append("}")
    return "\n".join(lines)
