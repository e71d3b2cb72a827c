"""``databuild want REF... [--wait]``: create a Want, optionally follow it to the end."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from databuild.adapters.resources import API_VERSION, Want
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import check_ref
from databuild.cli.render import emit, parse_duration
from databuild.cli.tree import status_data, status_tree

__all__ = ["register", "wait_for", "want_manifest"]

TERMINAL = {"Successful": ExitCode.OK, "Failed": ExitCode.FAILED, "Expired": ExitCode.EXPIRED}


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
    add_wait_options(p)
    p.set_defaults(handler=run)


def add_wait_options(p: argparse.ArgumentParser) -> None:
    """--wait, --timeout and --interval (shared with ``retry``)."""
    p.add_argument(
        "--wait",
        action="store_true",
        help="follow the Want until it is Successful (exit 0), Failed (1) or Expired (3)",
    )
    p.add_argument("--timeout", help="with --wait: give up after this long (exit 3)")
    p.add_argument("--interval", type=float, default=1.0, help="with --wait: seconds between polls")


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
    return {"apiVersion": API_VERSION, "kind": "Want", "metadata": metadata, "spec": spec}


def run(ctx: Context) -> int:
    """Create the Want; with --wait, follow it."""
    args = ctx.args
    refs = list(dict.fromkeys(str(check_ref(r)) for r in args.refs))
    manifest = want_manifest(
        refs, name=args.name, ttl_seconds=_seconds(args.ttl), sla_seconds=_seconds(args.sla)
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


def _progress(want: Want, running: int, waited: float) -> str:
    live = want.status.progress or f"?/{len(want.spec.partitions)}"
    state = want.status.state or "Pending"
    name = want.metadata.name
    return f"[{int(waited)}s] {name}: {state}   live {live}   running jobs {running}"


def wait_for(ctx: Context, name: str, timeout: timedelta | None, interval: float) -> int:
    """Poll the Want until it is terminal (or `timeout`); render progress; exit code."""
    started = ctx.clock()
    tty = ctx.err.isatty()
    last = ""
    while True:
        snap = ctx.cluster.snapshot()
        want = snap.wants.get(name) or ctx.cluster.get_want(name)
        wanted = set(want.spec.partitions)
        running = sum(
            1
            for r in snap.job_runs.values()
            if r.status.state == "Running" and wanted & set(r.spec.partitions)
        )
        waited = (ctx.clock() - started).total_seconds()
        line = _progress(want, running, waited)
        state = want.status.state or "Pending"
        if tty:
            ctx.err.write("\r\033[K" + line)
            ctx.err.flush()
        elif line.split("]", 1)[1] != last.split("]", 1)[-1]:
            ctx.note(line)
        last = line
        if state in TERMINAL:
            if tty:
                ctx.err.write("\n")
            _final(ctx, want, snap)
            return TERMINAL[state]
        if timeout is not None and waited >= timeout.total_seconds():
            if tty:
                ctx.err.write("\n")
            ctx.note(f"timed out after {int(waited)}s: Want {name} is still {state}")
            if ctx.output != "table":
                emit(status_data(want, snap), ctx.output, ctx.out)
            return ExitCode.EXPIRED
        ctx.sleep(interval)


def _final(ctx: Context, want: Want, snap: Any) -> None:
    if ctx.output != "table":
        emit(status_data(want, snap), ctx.output, ctx.out)
        return
    ctx.print(status_tree([want], snap))
    ready = next((c for c in want.status.conditions if c.type == "Ready"), None)
    if want.status.state != "Successful" and ready is not None and ready.message:
        ctx.print(f"{ready.reason}: {ready.message}")
