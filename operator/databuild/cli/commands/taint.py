"""``databuild taint REF`` and ``databuild retry WANT``: asking for rebuilds."""

from __future__ import annotations

from typing import Any

from databuild.adapters.resources import GROUP
from databuild.cli.commands.want import add_wait_options, wait_for, want_manifest
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import check_ref
from databuild.cli.lineage import downstream_of
from databuild.cli.render import emit, iso, parse_duration

__all__ = ["RETRY_OF_LABEL", "TAINT_ANNOTATION", "TAINT_REQUESTED_AT_ANNOTATION", "register"]

TAINT_ANNOTATION = f"{GROUP}/taint"
"""On a Partition: the reason someone marked it bad."""
TAINT_REQUESTED_AT_ANNOTATION = f"{GROUP}/taint-requested-at"
"""On a Partition: when (RFC 3339). A Live partition whose liveSince is older is tainted;
one rebuilt after the request is not tainted again."""
RETRY_OF_LABEL = f"{GROUP}/retry-of"
"""On a Want created by ``retry``: the Want it retries."""


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``taint`` and ``retry`` commands."""
    t = sub.add_parser(
        "taint",
        parents=[common_out],
        help="mark a Live partition bad: it and what was built from it go Tainted",
        description=(
            "Mark a Live partition as bad. The operator moves it to Tainted, and with it "
            "every partition built from it (lineage), and cancels builds reading them; "
            "Wants that are not finished and need them rebuild them (retry a Successful "
            "Want to rebuild its partitions). Recorded in the Build Event Log."
        ),
    )
    t.add_argument("ref", metavar="REF", help="partition ref")
    t.add_argument("--reason", default="marked bad by a user", help="why (kept in the log)")
    t.set_defaults(handler=run_taint)

    r = sub.add_parser(
        "retry",
        parents=[common_out],
        help="ask again for the partitions of a Failed or Expired Want (or a tainted one)",
        description=(
            "Create a new Want for the partitions of a Failed or Expired Want, or of a "
            "Successful one whose partitions were tainted since (terminal states are "
            "final, so the old Want stays as the record). Failed and Tainted partitions "
            "are rebuilt for the new Want."
        ),
    )
    r.add_argument("want", nargs="?", metavar="WANT", help="the Want to retry")
    r.add_argument(
        "--backfill", metavar="NAME", help="retry a backfill's Failed and Expired Wants instead"
    )
    r.add_argument(
        "--failed",
        action="store_true",
        help="only what failed: the partitions that are not Live (required with --backfill)",
    )
    r.add_argument("--name", help="the new Want's name (default: WANT-retry-xxxxx)")
    r.add_argument("--ttl", help="the new Want's TTL (default: the old one's)")
    add_wait_options(r)
    r.set_defaults(handler=run_retry)


def run_taint(ctx: Context) -> int:
    """Annotate the Partition with the taint request."""
    ref = str(check_ref(ctx.args.ref))
    part = ctx.cluster.get_partition(ref)
    state = part.status.state or "Missing"
    if state != "Live":
        raise CliError(
            f"Partition {ref!r} is {state}: only a Live partition can be tainted "
            "(a partition that is not Live is rebuilt anyway when a Want needs it)",
            ExitCode.FAILED,
        )
    now = iso(ctx.clock())
    ctx.cluster.annotate_partition(
        part.metadata.name,
        {TAINT_ANNOTATION: ctx.args.reason, TAINT_REQUESTED_AT_ANNOTATION: now},
    )
    downstream = downstream_of(ctx.cluster.snapshot(), ref)
    if ctx.output == "table":
        ctx.print(f"partition.databuild.dev/{part.metadata.name} taint requested ({ref})")
        if downstream:
            ctx.print(f"built (or being built) from it, rebuilt with it: {', '.join(downstream)}")
    else:
        emit(
            {
                "ref": ref,
                "name": part.metadata.name,
                "reason": ctx.args.reason,
                "requestedAt": now,
                "downstream": downstream,
            },
            ctx.output,
            ctx.out,
        )
    return ExitCode.OK


def _all_live(ctx: Context, refs: list[str]) -> bool:
    for ref in refs:
        try:
            part = ctx.cluster.get_partition(ref)
        except CliError:
            return False  # no Partition (yet): not Live
        if part.status.state != "Live":
            return False
    return True


def run_retry(ctx: Context) -> int:
    """Create the retry Want; with --wait, follow it."""
    if ctx.args.backfill:
        if ctx.args.want or not ctx.args.failed:
            raise CliError("use either WANT, or --backfill NAME --failed", ExitCode.USAGE)
        # Imported here: the backfill command builds on this module's retry label.
        from databuild.cli.commands.backfill import retry_failed  # noqa: PLC0415

        return retry_failed(ctx, ctx.args.backfill)
    if not ctx.args.want:
        raise CliError("name the WANT to retry (or --backfill NAME --failed)", ExitCode.USAGE)
    old = ctx.cluster.get_want(ctx.args.want)
    state = old.status.state or "Pending"
    if state == "Successful" and not _all_live(ctx, old.spec.partitions):
        pass  # some partition was tainted since: the new Want rebuilds it
    elif state not in ("Failed", "Expired"):
        hint = (
            "its partitions are Live; taint them first to have them rebuilt"
            if state == "Successful"
            else "it is still being worked on"
        )
        raise CliError(
            f"Want {ctx.args.want!r} is {state}: only a Failed or Expired Want, or a "
            f"Successful one with partitions no longer Live, can be retried ({hint})",
            ExitCode.FAILED,
        )
    ttl = (
        int(parse_duration(ctx.args.ttl).total_seconds()) if ctx.args.ttl else old.spec.ttl_seconds
    )
    refs = list(old.spec.partitions)
    if ctx.args.failed:
        refs = [r for r in refs if not _all_live(ctx, [r])]
        if not refs:
            raise CliError(
                f"every partition of Want {old.metadata.name!r} is Live", ExitCode.FAILED
            )
    manifest = want_manifest(
        refs,
        name=ctx.args.name,
        ttl_seconds=ttl,
        sla_seconds=old.spec.sla_seconds,
        labels={RETRY_OF_LABEL: old.metadata.name},
    )
    if not ctx.args.name:
        manifest["metadata"]["generateName"] = f"{old.metadata.name[:50]}-retry-"
    created = ctx.cluster.create_want(manifest)
    name = created.metadata.name
    if not ctx.args.wait:
        if ctx.output == "table":
            ctx.print(f"want.databuild.dev/{name} created (retries {old.metadata.name})")
        else:
            emit(created.wire(), ctx.output, ctx.out)
        return ExitCode.OK
    ctx.note(f"want.databuild.dev/{name} created (retries {old.metadata.name}); waiting")
    timeout = parse_duration(ctx.args.timeout) if ctx.args.timeout else None
    return wait_for(ctx, name, timeout, ctx.args.interval)
