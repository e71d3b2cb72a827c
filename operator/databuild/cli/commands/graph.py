"""``databuild graph WANT|REF -o mermaid|dot``: the dependency graph."""

from __future__ import annotations

from typing import Any

from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.graph import build_graph, to_dot, to_mermaid
from databuild.cli.kube import check_ref
from databuild.cli.render import emit

__all__ = ["register"]


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``graph`` command."""
    p = sub.add_parser(
        "graph",
        parents=[common],
        help="the dependency graph of a Want or partition (Mermaid or DOT)",
        description=(
            "Print the upstream dependency graph of a Want (its partitions) or of one "
            "partition: nodes are partitions with their states, edges point from an input "
            "to what was built from it, labelled with the JobDefinition."
        ),
    )
    p.add_argument("target", metavar="WANT|REF", help="a Want's name or a partition ref")
    p.add_argument(
        "-o",
        "--output",
        choices=("mermaid", "dot", "json"),
        default="mermaid",
        help="graph format (default mermaid)",
    )
    p.add_argument("--depth", type=int, default=50, help="how many upstream levels to follow")
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    """Print the graph."""
    snap = ctx.cluster.snapshot()
    target = ctx.args.target
    want = snap.wants.get(target)
    if want is not None:
        roots = list(want.spec.partitions)
    else:
        ref = str(check_ref(target))
        if ref not in snap.partitions and not snap.runs_for(ref):
            raise CliError(
                f"{target!r} is neither a Want nor a known partition in namespace {snap.namespace}",
                ExitCode.NOT_FOUND,
            )
        roots = [ref]
    graph = build_graph(snap, roots, ctx.args.depth)
    if ctx.args.output == "dot":
        ctx.print(to_dot(graph))
    elif ctx.args.output == "mermaid":
        ctx.print(to_mermaid(graph))
    else:
        data = {
            "nodes": [{"ref": ref, "state": state} for ref, state in graph.nodes],
            "edges": [{"from": a, "to": b, "jobDefinition": j} for a, b, j in graph.edges],
        }
        emit(data, "json", ctx.out)
    return ExitCode.OK
