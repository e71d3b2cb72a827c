"""``databuild status [WANT]``: Want -> Partitions -> JobRuns, with states and ages."""

from __future__ import annotations

from typing import Any

from databuild.adapters.resources import Want
from databuild.adapters.schedules import SCHEDULE_LABEL
from databuild.cli.commands.backfill import BACKFILL_LABEL, members, progress_of, render_progress
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Cluster, Snapshot
from databuild.cli.live import watch_status
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
    group = p.add_mutually_exclusive_group()
    group.add_argument("--backfill", metavar="NAME", help="show a backfill as a whole")
    group.add_argument("--schedule", metavar="NAME", help="show a Schedule's Wants as a whole")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="Wants of every namespace")
    p.add_argument(
        "-w", "--watch", action="store_true", help="keep the tree up to date (on watches)"
    )
    p.add_argument(
        "--exit",
        action="store_true",
        help="with --watch and a WANT: stop when it is done (exit code as `wait`)",
    )
    p.add_argument(
        "--interval", type=float, default=1.0, help="with --watch: redraw at least this often (s)"
    )
    p.set_defaults(handler=run)


def run_group(ctx: Context, kind: str, label: str, name: str) -> int:
    """A backfill or a Schedule as a whole: its Wants by state, its partitions, failures."""
    snap = ctx.cluster.snapshot()
    wants = members(snap, label, name)
    if not wants:
        raise CliError(
            f"no Wants of {kind} {name!r} in namespace {snap.namespace}", ExitCode.NOT_FOUND
        )
    progress = progress_of(snap, wants)
    if ctx.output != "table":
        data = {
            kind: name,
            "wants": progress.wants,
            "partitions": {**progress.partitions, "total": progress.total},
            "notBuilt": progress.not_live,
        }
        emit(data, ctx.output, ctx.out)
        return ExitCode.OK
    ctx.print(render_progress(kind, name, progress))
    for want in wants:
        state = want.status.state or "Pending"
        ctx.print(f"  {want.metadata.name}  {state}  {want.status.progress or ''}".rstrip())
    if progress.not_live:
        ctx.print(f"not built: {', '.join(progress.not_live[:20])}")
    return ExitCode.OK


def _created(w: Want) -> str:
    ts = w.metadata.creation_timestamp
    return ts.isoformat() if ts else ""


def run(ctx: Context) -> int:
    """Render the tree(s)."""
    if ctx.args.backfill:
        return run_group(ctx, "backfill", BACKFILL_LABEL, ctx.args.backfill)
    if ctx.args.schedule:
        return run_group(ctx, "schedule", SCHEDULE_LABEL, ctx.args.schedule)
    if ctx.args.all_namespaces and ctx.args.want:
        raise CliError("a WANT is in one namespace: drop -A or the WANT", ExitCode.USAGE)
    if ctx.args.watch:
        if ctx.args.all_namespaces:
            raise CliError("--watch follows one namespace: drop -A", ExitCode.USAGE)
        return watch_status(ctx, [ctx.args.want] if ctx.args.want else None, ctx.args.all)
    if not ctx.args.all_namespaces:
        return _show(ctx, ctx.cluster, single=bool(ctx.args.want))
    namespaces = ctx.cluster.namespaces()
    if ctx.output != "table":
        data = [d for ns in namespaces for d in _data(ctx, ctx.cluster.in_namespace(ns))]
        emit(data, ctx.output, ctx.out)
        return ExitCode.OK
    if not namespaces:
        ctx.print("No Wants in any namespace.")
    for i, ns in enumerate(namespaces):
        ctx.print(("\n" if i else "") + f"Namespace {ns}:")
        _show(ctx, ctx.cluster.in_namespace(ns), single=False)
    return ExitCode.OK


def _wants(ctx: Context, snap: Snapshot) -> list[Want]:
    if ctx.args.want:
        want = snap.wants.get(ctx.args.want)
        if want is None:
            raise CliError(
                f"Want {ctx.args.want!r} not found in namespace {snap.namespace}",
                ExitCode.NOT_FOUND,
            )
        return [want]
    wants = sorted(snap.wants.values(), key=lambda w: (_created(w), w.metadata.name))
    if not ctx.args.all:
        wants = [w for w in wants if w.spec.source is None]
    return wants


def _data(ctx: Context, cluster: Cluster) -> list[dict[str, Any]]:
    snap = cluster.snapshot(attempts=ctx.wide)
    return [status_data(w, snap) for w in _wants(ctx, snap)]


def _show(ctx: Context, cluster: Cluster, *, single: bool) -> int:
    snap = cluster.snapshot(attempts=ctx.wide)
    wants = _wants(ctx, snap)
    if ctx.output != "table":
        data = [status_data(w, snap) for w in wants]
        emit(data[0] if single else data, ctx.output, ctx.out)
    elif not wants:
        ctx.print(f"No Wants in namespace {snap.namespace}.")
    else:
        ctx.print(status_tree(wants, snap, wide=ctx.wide))
    return ExitCode.OK
