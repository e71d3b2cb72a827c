"""``databuild explain REF``: lineage — which JobRun built it, from what, when, attempts."""

from __future__ import annotations

from typing import Any

from databuild.adapters.bel import EventQuery, StoredEvent
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import check_ref
from databuild.cli.lineage import explain_data, explain_text
from databuild.cli.render import emit

__all__ = ["register"]


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``explain`` command."""
    p = sub.add_parser(
        "explain",
        parents=[common_out],
        help="how a partition was built: job run, inputs, attempts, history",
        description=(
            "Explain a partition's lineage: the JobRun that built it (JobDefinition, "
            "attempts, times), the inputs it was built from (recursively), and, when a "
            "BEL store is configured, its history."
        ),
    )
    p.add_argument("ref", metavar="REF", help="partition ref")
    p.add_argument("--depth", type=int, default=10, help="how many upstream levels to show")
    p.set_defaults(handler=run)


def _history(ctx: Context, ref: str, runs: list[str]) -> list[StoredEvent] | None:
    url = ctx.bel_url(required=False)
    if url is None:
        return None
    store = ctx.bel(url)
    try:
        ns = ctx.cluster.namespace
        found = {
            e.seq: e
            for e in store.query(EventQuery(namespace=ns, kind="Partition", ref_glob=ref))
            if ref in e.event.refs  # refs may contain glob characters: keep exact matches
        }
        for run in runs:
            for e in store.query(EventQuery(namespace=ns, kind="JobRun", name=run)):
                found[e.seq] = e
    finally:
        store.close()
    return [found[k] for k in sorted(found)]


def run(ctx: Context) -> int:
    """Explain the partition."""
    ref = str(check_ref(ctx.args.ref))
    snap = ctx.cluster.snapshot(attempts=True)
    if ref not in snap.partitions and not snap.runs_for(ref):
        raise CliError(
            f"no Partition {ref!r} in namespace {snap.namespace}: no Want has asked for it",
            ExitCode.NOT_FOUND,
        )
    runs = [r.metadata.name for r in snap.runs_for(ref)]
    history = _history(ctx, ref, runs)
    if ctx.output == "table":
        ctx.print(explain_text(snap, ref, history, ctx.args.depth))
    else:
        emit(explain_data(snap, ref, history), ctx.output, ctx.out)
    return ExitCode.OK
