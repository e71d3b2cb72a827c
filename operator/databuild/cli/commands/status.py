"""``databuild status [WANT]``: Want -> Partitions -> JobRuns, with states and ages."""

from __future__ import annotations

from typing import Any

from databuild.adapters.resources import Want
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.render import emit
from databuild.cli.tree import status_data, status_tree

__all__ = ["register"]


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``status`` command."""
    p = sub.add_parser(
        "status",
        parents=[common_out],
        help="show Wants as trees of partitions and job runs",
        description="Show a Want (or every Want) as a tree: Partitions, then JobRuns.",
    )
    p.add_argument("want", nargs="?", metavar="WANT", help="the Want (default: all Wants)")
    p.add_argument(
        "--all", action="store_true", help="include Wants the operator created for upstream"
    )
    p.set_defaults(handler=run)


def _created(w: Want) -> str:
    ts = w.metadata.creation_timestamp
    return ts.isoformat() if ts else ""


def run(ctx: Context) -> int:
    """Render the tree(s)."""
    snap = ctx.cluster.snapshot()
    if ctx.args.want:
        want = snap.wants.get(ctx.args.want)
        if want is None:
            raise CliError(
                f"Want {ctx.args.want!r} not found in namespace {snap.namespace}",
                ExitCode.NOT_FOUND,
            )
        wants = [want]
    else:
        wants = sorted(snap.wants.values(), key=lambda w: (_created(w), w.metadata.name))
        if not ctx.args.all:
            wants = [w for w in wants if w.spec.source is None]
    if ctx.output != "table":
        data = [status_data(w, snap) for w in wants]
        emit(data[0] if ctx.args.want else data, ctx.output, ctx.out)
    elif not wants:
        ctx.print(f"No Wants in namespace {snap.namespace}.")
    else:
        ctx.print(status_tree(wants, snap))
    return ExitCode.OK
