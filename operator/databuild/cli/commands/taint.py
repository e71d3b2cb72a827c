"""``databuild taint REF`` and ``databuild retry WANT``: asking for rebuilds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from databuild.adapters.resources import API_VERSION, GROUP, TaintRequest
from databuild.cli.commands.want import add_wait_options, wait_for, want_manifest
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import check_ref
from databuild.cli.lineage import downstream_of
from databuild.cli.render import emit, parse_duration

__all__ = ["RETRY_OF_LABEL", "register", "taint_request_manifest"]

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
    t.add_argument("refs", nargs="+", metavar="REF", help="partition ref(s)")
    t.add_argument("--reason", default="marked bad by a user", help="why (kept in the log)")
    t.add_argument("--name", help="the TaintRequest's name (default: taint-xxxxx)")
    t.add_argument(
        "--wait",
        action="store_true",
        help="wait until the operator applied the request and show what it tainted",
    )
    t.add_argument("--timeout", help="with --wait: give up after this long (exit 3)")
    t.add_argument(
        "--interval", type=float, default=1.0, help="with --wait: look again this often (seconds)"
    )
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


def taint_request_manifest(refs: list[str], reason: str, name: str | None) -> dict[str, Any]:
    """A TaintRequest for ``refs`` (a generated name unless ``name`` is given)."""
    metadata: dict[str, Any] = {"name": name} if name else {"generateName": "taint-"}
    return {
        "apiVersion": API_VERSION,
        "kind": TaintRequest.KIND,
        "metadata": metadata,
        "spec": {"partitions": refs, "reason": reason},
    }


def run_taint(ctx: Context) -> int:
    """Create a TaintRequest for Live partitions; with --wait, report what it tainted.

    The request needs no right to patch Partitions, and its time is the API server's
    (its creationTimestamp): the operator taints the data Live before it, once.
    """
    refs = list(dict.fromkeys(str(check_ref(r)) for r in ctx.args.refs))
    for ref in refs:
        state = ctx.cluster.get_partition(ref).status.state or "Missing"
        if state != "Live":
            raise CliError(
                f"Partition {ref!r} is {state}: only a Live partition can be tainted "
                "(a partition that is not Live is rebuilt anyway when a Want needs it)",
                ExitCode.FAILED,
            )
    created = ctx.cluster.create_taint_request(
        taint_request_manifest(refs, ctx.args.reason, ctx.args.name)
    )
    name = created.metadata.name
    snapshot = ctx.cluster.snapshot()
    downstream = sorted({d for ref in refs for d in downstream_of(snapshot, ref)} - set(refs))
    if ctx.args.wait:
        timeout = parse_duration(ctx.args.timeout) if ctx.args.timeout else None
        found = _wait_applied(ctx, name, timeout)
        if found is None:
            ctx.note(f"taintrequest.databuild.dev/{name} not applied yet (timed out)")
            return ExitCode.EXPIRED
        created = found
    status = created.status
    if ctx.output == "table":
        ctx.print(f"taintrequest.databuild.dev/{name} created ({', '.join(refs)})")
        if ctx.args.wait:
            ctx.print(f"tainted: {', '.join(status.tainted or []) or '-'}")
            if status.not_live:
                ctx.print(f"not Live, left alone: {', '.join(status.not_live)}")
            if status.unknown:
                ctx.print(f"no such partition: {', '.join(status.unknown)}")
        if downstream:
            ctx.print(f"built (or being built) from it, rebuilt with it: {', '.join(downstream)}")
    else:
        emit(
            {
                "name": name,
                "refs": refs,
                "reason": ctx.args.reason,
                "requestedAt": created.metadata.creation_timestamp.isoformat()
                if created.metadata.creation_timestamp
                else None,
                "applied": _applied(created),
                "tainted": status.tainted or [],
                "notLive": status.not_live or [],
                "unknown": status.unknown or [],
                "downstream": downstream,
            },
            ctx.output,
            ctx.out,
        )
    return ExitCode.OK


def _applied(request: TaintRequest) -> bool:
    # Until the operator writes it, the status reads as observedGeneration 0 (a CRD
    # default, so GitOps tools see the request in progress).
    return (request.status.observed_generation or 0) >= max(request.metadata.generation, 1)


def _wait_applied(ctx: Context, name: str, timeout: timedelta | None) -> TaintRequest | None:
    """The request once the operator wrote its status; None when ``timeout`` passed."""
    deadline = ctx.clock() + timeout if timeout is not None else None
    while True:
        found = ctx.cluster.get_taint_request(name)
        if _applied(found):
            return found
        if deadline is not None and ctx.clock() >= deadline:
            return None
        ctx.sleep(ctx.args.interval)


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
        priority=old.spec.priority,
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
