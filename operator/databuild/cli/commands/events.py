"""``databuild events`` and ``databuild history --at T``: reading the Build Event Log."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from databuild.adapters.bel import (
    BelStore,
    BelStoreError,
    EventQuery,
    HistoryTruncated,
    StoredEvent,
    replay_at,
)
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.render import emit, iso, parse_time, table

__all__ = ["follow", "register"]

KINDS = ("Want", "Partition", "JobRun")


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``events`` and ``history`` commands."""
    p = sub.add_parser(
        "events",
        parents=[common_out],
        help="transitions from the Build Event Log (filter, follow)",
        description="List state transitions recorded in the Build Event Log.",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    p.add_argument("--kind", choices=KINDS, help="only this kind of entity")
    p.add_argument("--name", help="only this entity (with --kind)")
    p.add_argument("--ref", help="partition ref glob: * any characters, ? one character")
    p.add_argument("--job", help="only JobRuns of this JobDefinition")
    p.add_argument("--state", help="only transitions to this state, e.g. Failed")
    p.add_argument("--reason", action="append", help="only this reason (repeatable)")
    p.add_argument("--since", help="from this time (RFC 3339) or age (10m, 2h)")
    p.add_argument("--until", help="before this time (RFC 3339) or age")
    p.add_argument("--limit", type=int, help="at most this many events")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument(
        "--interval", type=float, default=1.0, help="with --follow: seconds between polls"
    )
    p.set_defaults(handler=run_events)

    h = sub.add_parser(
        "history",
        parents=[common_out],
        help="the states of every entity at a past time (BEL replay)",
        description="Replay the Build Event Log up to --at and show every entity's state.",
    )
    h.add_argument("--at", required=True, help="the time (RFC 3339) or age (10m, 2h)")
    h.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    h.add_argument("--kind", choices=KINDS, help="only this kind of entity")
    h.set_defaults(handler=run_history)


def _namespace(ctx: Context) -> str | None:
    if ctx.args.all_namespaces:
        return None
    return ctx.args.namespace or _context_namespace(ctx)


def _context_namespace(ctx: Context) -> str:
    # The BEL commands need no cluster, but honour the kubeconfig's namespace when
    # one is configured.
    try:
        return ctx.cluster.namespace
    except CliError:
        return "default"


def _query(ctx: Context) -> EventQuery:
    a = ctx.args
    now = ctx.clock()
    if a.name and not a.kind:
        raise CliError("--name needs --kind (names are unique per kind)", ExitCode.USAGE)
    return EventQuery(
        namespace=_namespace(ctx),
        kind=a.kind,
        name=a.name,
        ref_glob=a.ref,
        job_definition=a.job,
        state=a.state,
        since=parse_time(a.since, now) if a.since else None,
        until=parse_time(a.until, now) if a.until else None,
        limit=a.limit,
        reasons=a.reason,
    )


def _rows(events: list[StoredEvent], all_ns: bool) -> list[list[str]]:
    rows = []
    for s in events:
        e = s.event
        details = ", ".join(f"{k}={v}" for k, v in sorted(e.details.items()))
        row = [iso(e.time), e.kind, e.name, e.from_state or "-", e.to_state, e.reason, details]
        rows.append(([e.namespace] if all_ns else []) + row)
    return rows


def _headers(all_ns: bool) -> list[str]:
    base = ["TIME", "KIND", "NAME", "FROM", "TO", "REASON", "DETAILS"]
    return (["NAMESPACE"] if all_ns else []) + base


def run_events(ctx: Context) -> int:
    """List (and follow) events."""
    query = _query(ctx)
    store = ctx.bel(ctx.bel_url(required=True) or "")
    try:
        if ctx.args.follow:
            return follow(ctx, store, query)
        found = _read(store, query)
        if ctx.output == "table":
            if not found:
                ctx.note("No events.")
            else:
                ctx.print(
                    table(_headers(ctx.args.all_namespaces), _rows(found, ctx.args.all_namespaces))
                )
        else:
            emit([s.to_dict() for s in found], ctx.output, ctx.out)
    finally:
        store.close()
    return ExitCode.OK


def _read(store: BelStore, query: EventQuery) -> list[StoredEvent]:
    try:
        return store.query(query)
    except BelStoreError as e:
        raise CliError(f"reading the BEL store: {e}", ExitCode.UNAVAILABLE) from None


def follow(ctx: Context, store: BelStore, query: EventQuery, max_polls: int | None = None) -> int:
    """Print matching events as they are appended (JSON lines with -o json), until
    interrupted (or `max_polls` polls, for tests)."""
    after = 0
    limit = query.limit
    printed = 0
    polls = 0
    header = ctx.output == "table"
    while max_polls is None or polls < max_polls:
        polls += 1
        batch = _read(store, dataclasses.replace(query, after_seq=after, limit=None))
        for s in batch:
            after = s.seq
            if ctx.output == "json":
                ctx.print(json.dumps(s.to_dict()))
            elif ctx.output == "yaml":
                emit([s.to_dict()], "yaml", ctx.out)
            else:
                rows = _rows([s], ctx.args.all_namespaces)
                text = table(_headers(ctx.args.all_namespaces), rows)
                lines = text.splitlines()
                ctx.print(lines[1] if not header else text)
                header = False
            printed += 1
            if limit is not None and printed >= limit:
                return ExitCode.OK
        ctx.out.flush()
        if max_polls is not None and polls >= max_polls:
            break
        ctx.sleep(ctx.args.interval)
    return ExitCode.OK


def run_history(ctx: Context) -> int:
    """Replay the BEL to --at."""
    at = parse_time(ctx.args.at, ctx.clock())
    ns = _namespace(ctx)
    store = ctx.bel(ctx.bel_url(required=True) or "")
    try:
        states = replay_at(store, at, namespace=ns)
    except HistoryTruncated as e:
        raise CliError(str(e), ExitCode.NOT_FOUND) from None
    except BelStoreError as e:
        raise CliError(f"reading the BEL store: {e}", ExitCode.UNAVAILABLE) from None
    finally:
        store.close()
    items = sorted(
        (k for k in states if ctx.args.kind is None or k.kind == ctx.args.kind),
        key=lambda k: (k.namespace, KINDS.index(k.kind) if k.kind in KINDS else 9, k.name),
    )
    if ctx.output == "table":
        all_ns = ctx.args.all_namespaces
        headers = (["NAMESPACE"] if all_ns else []) + ["KIND", "NAME", "STATE"]
        rows = [([k.namespace] if all_ns else []) + [k.kind, k.name, states[k]] for k in items]
        ctx.note(f"States at {iso(at)}:")
        ctx.print(table(headers, rows) if rows else "(nothing existed yet)")
    else:
        data = [
            {"namespace": k.namespace, "kind": k.kind, "name": k.name, "state": states[k]}
            for k in items
        ]
        emit({"at": iso(at), "entities": data}, ctx.output, ctx.out)
    return ExitCode.OK
