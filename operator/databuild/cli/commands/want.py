"""``databuild want REF... [--wait]``: create a Want, optionally follow it to the end."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from databuild.adapters.resources import API_VERSION
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import check_ref
from databuild.cli.live import follow_wants
from databuild.cli.render import emit, parse_duration
from databuild.domain.limits import MAX_PRIORITY, MIN_PRIORITY

__all__ = ["add_priority_option", "register", "wait_for", "want_manifest"]


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``want`` command."""
    p = sub.add_parser(
        "want",
        parents=[common_out],
        help="ask for partitions (create a Want)",
        description="Create a Want for the given partition refs.",
    )
    p.add_argument(
        "refs", nargs="+", metavar="REF", help="partition ref, e.g. daily/date=2025-01-01"
    )
    p.add_argument("--name", help="the Want's name (default: generated, want-xxxxx)")
    p.add_argument("--ttl", help="expire the Want after this long, e.g. 2h (spec.ttlSeconds)")
    p.add_argument("--sla", help="flag the Want as late after this long (spec.slaSeconds)")
    add_priority_option(p, "the Want's")
    add_wait_options(p)
    p.set_defaults(handler=run)


def add_priority_option(p: argparse.ArgumentParser, whose: str) -> None:
    """--priority (shared with ``backfill``), checked against the schema's range."""
    p.add_argument(
        "--priority",
        type=_priority,
        help=f"{whose} spec.priority, {MIN_PRIORITY} to {MAX_PRIORITY} (default 0): "
        "higher starts first when a concurrency limit holds builds back",
    )


def _priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise argparse.ArgumentTypeError(
            f"{value} is out of range: use {MIN_PRIORITY} to {MAX_PRIORITY}"
        )
    return value


def add_wait_options(p: argparse.ArgumentParser) -> None:
    """--wait, --timeout and --interval (shared with ``retry``)."""
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the Want until it is Successful (exit 0), Failed (1) or Expired (3)",
    )
    p.add_argument("--timeout", help="with --wait: give up after this long (exit 3)")
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="with --wait: redraw at least this often, in seconds (changes arrive by watch)",
    )


def _seconds(text: str | None) -> int | None:
    if text is None:
        return None
    seconds = int(parse_duration(text).total_seconds())
    if seconds < 1:
        raise CliError(f"duration {text!r} must be at least one second", ExitCode.USAGE)
    return seconds


def want_manifest(
    refs: list[str],
    *,
    name: str | None,
    ttl_seconds: int | None,
    sla_seconds: int | None,
    labels: dict[str, str] | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """The Want to create (``metadata.generateName`` when no name is given)."""
    metadata: dict[str, Any] = {"name": name} if name else {"generateName": "want-"}
    if labels:
        metadata["labels"] = labels
    spec: dict[str, Any] = {"partitions": refs}
    if ttl_seconds is not None:
        spec["ttlSeconds"] = ttl_seconds
    if sla_seconds is not None:
        spec["slaSeconds"] = sla_seconds
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": API_VERSION, "kind": "Want", "metadata": metadata, "spec": spec}


def run(ctx: Context) -> int:
    """Create the Want; with --wait, follow it."""
    args = ctx.args
    refs = list(dict.fromkeys(str(check_ref(r)) for r in args.refs))
    manifest = want_manifest(
        refs,
        name=args.name,
        ttl_seconds=_seconds(args.ttl),
        sla_seconds=_seconds(args.sla),
        priority=args.priority,
    )
    timeout = parse_duration(args.timeout) if args.timeout else None
    created = ctx.cluster.create_want(manifest)
    name = created.metadata.name
    if not args.wait:
        if ctx.output == "table":
            ctx.print(f"want.databuild.dev/{name} created")
        else:
            emit(created.wire(), ctx.output, ctx.out)
        return ExitCode.OK
    ctx.note(f"want.databuild.dev/{name} created; waiting for it to finish")
    return wait_for(ctx, name, timeout, args.interval)


def wait_for(ctx: Context, name: str, timeout: timedelta | None, interval: float) -> int:
    """Follow the Want (on watches) until it is terminal (or `timeout`); the exit code."""
    return follow_wants(ctx, [name], timeout, interval)
