"""``databuild backfill TEMPLATE... --from --to``: many Wants for a range of data times.

A backfill is a set of Wants sharing the label ``databuild.dev/backfill: <name>``. Each
step of the range (a day by default) gets its own Want, so one failing day never
cancels the others (a Failed Want stops needing its other partitions); ``--per-want``
groups several steps into one Want (at most 1,000 partitions each). Names are
deterministic (``<backfill>-<n>``), so running the same command again creates nothing
new. ``databuild retry --backfill NAME --failed`` asks again for only what failed, and
``databuild status --backfill NAME`` shows the backfill as a whole.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from databuild.adapters.labels import label_value
from databuild.adapters.resources import GROUP, MAX_WANT_PARTITIONS, Want
from databuild.cli.commands.taint import RETRY_OF_LABEL
from databuild.cli.commands.want import add_priority_option, add_wait_options, want_manifest
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Snapshot
from databuild.cli.render import emit, parse_duration
from databuild.domain.schedule import ScheduleError, render_partitions

__all__ = [
    "BACKFILL_LABEL",
    "GroupProgress",
    "plan_backfill",
    "progress_of",
    "register",
    "render_progress",
    "retry_failed",
]

BACKFILL_LABEL = f"{GROUP}/backfill"
"""On every Want of a backfill: the backfill's name."""
MAX_STEPS = 100_000
TERMINAL = frozenset({"Successful", "Failed", "Expired"})


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``backfill`` command."""
    p = sub.add_parser(
        "backfill",
        parents=[common_out],
        help="ask for a range of partitions (labelled Wants, one per step)",
        description=(
            "Create Wants for every data time from --from to --to (inclusive), filling "
            "{date}, {hour}, {minute}, {month}, {week}, {datetime} and {time:<strftime>} "
            "in each TEMPLATE, e.g. 'daily/date={date}'."
        ),
    )
    p.add_argument("templates", nargs="+", metavar="TEMPLATE", help="partition ref template")
    p.add_argument("--from", dest="start", required=True, help="first data time, e.g. 2025-01-01")
    p.add_argument("--to", dest="end", required=True, help="last data time (inclusive)")
    p.add_argument("--every", default="1d", help="step between data times (default 1d)")
    p.add_argument(
        "--per-want",
        type=int,
        default=1,
        help="steps per Want (default 1: a failing step never cancels another)",
    )
    p.add_argument("--name", help="the backfill's name (default: derived from the arguments)")
    p.add_argument("--ttl", help="expire each Want after this long, e.g. 2d")
    add_priority_option(p, "each Want's")
    add_wait_options(p)
    p.set_defaults(handler=run)


def _time(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{what} {text!r}: use a date (2025-01-01) or a time (2025-01-01T06:00:00Z)",
            ExitCode.USAGE,
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class BackfillPlan:
    """The Wants of a backfill: name -> partition refs."""

    name: str
    wants: dict[str, list[str]] = field(default_factory=dict)

    @property
    def partitions(self) -> int:
        """Partitions asked for, over all Wants."""
        return sum(len(refs) for refs in self.wants.values())


def plan_backfill(
    templates: Sequence[str],
    start: datetime,
    end: datetime,
    every: timedelta,
    *,
    per_want: int = 1,
    name: str | None = None,
) -> BackfillPlan:
    """The Wants for data times ``start, start + every, ... <= end`` (pure)."""
    if end < start:
        raise CliError("--to is before --from", ExitCode.USAGE)
    if every <= timedelta(0):
        raise CliError("--every must be positive", ExitCode.USAGE)
    if per_want < 1:
        raise CliError("--per-want must be at least 1", ExitCode.USAGE)
    steps = int((end - start) / every) + 1
    if steps > MAX_STEPS:
        raise CliError(f"{steps} steps: at most {MAX_STEPS} per backfill", ExitCode.USAGE)
    if name is None:
        key = "\0".join([*templates, start.isoformat(), end.isoformat(), str(every)])
        name = f"backfill-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    plan = BackfillPlan(name)
    group: list[str] = []
    in_group = 0
    for i in range(steps):
        try:
            refs = [str(r) for r in render_partitions(templates, start + i * every)]
        except ScheduleError as error:
            message = str(error).replace("spec.partitions", "TEMPLATE")
            raise CliError(message, ExitCode.USAGE) from None
        if group and (in_group >= per_want or len(group) + len(refs) > MAX_WANT_PARTITIONS):
            plan.wants[f"{name}-{len(plan.wants):04d}"] = group
            group, in_group = [], 0
        group.extend(r for r in refs if r not in group)
        in_group += 1
    if group:
        plan.wants[f"{name}-{len(plan.wants):04d}"] = group
    return plan


def run(ctx: Context) -> int:
    """Create the backfill's Wants (those that do not exist yet); with --wait, follow it."""
    args = ctx.args
    plan = plan_backfill(
        args.templates,
        _time(args.start, "--from"),
        _time(args.end, "--to"),
        parse_duration(args.every),
        per_want=args.per_want,
        name=args.name,
    )
    ttl = int(parse_duration(args.ttl).total_seconds()) if args.ttl else None
    existing = ctx.cluster.snapshot().wants
    created = 0
    for want_name, refs in plan.wants.items():
        if want_name in existing:
            continue  # the same command again: nothing twice
        ctx.cluster.create_want(
            want_manifest(
                refs,
                name=want_name,
                ttl_seconds=ttl,
                sla_seconds=None,
                labels={BACKFILL_LABEL: label_value(plan.name)},
                priority=args.priority,
            )
        )
        created += 1
    message = (
        f"backfill {plan.name}: {len(plan.wants)} Wants, {plan.partitions} partitions "
        f"({created} Wants created)"
    )
    if ctx.output == "table":
        ctx.print(message)
    else:
        emit(
            {"backfill": plan.name, "wants": len(plan.wants), "created": created},
            ctx.output,
            ctx.out,
        )
    if not args.wait:
        return ExitCode.OK
    timeout = parse_duration(args.timeout) if args.timeout else None
    return follow(ctx, BACKFILL_LABEL, plan.name, timeout, args.interval)


# ---------------------------------------------------------------------------------------
# A group of Wants as a whole (a backfill, a Schedule)
# ---------------------------------------------------------------------------------------


def members(snap: Snapshot, label: str, value: str) -> list[Want]:
    """The Wants carrying ``label: value``, oldest first."""
    wanted = label_value(value)
    found = [w for w in snap.wants.values() if w.metadata.labels.get(label) == wanted]
    return sorted(found, key=lambda w: w.metadata.name)


def _superseded(wants: Iterable[Want]) -> set[str]:
    """Wants a retry asked again for (their retry stands for them)."""
    return {w.metadata.labels[RETRY_OF_LABEL] for w in wants if RETRY_OF_LABEL in w.metadata.labels}


@dataclass(frozen=True)
class GroupProgress:
    """A group of Wants as a whole."""

    wants: dict[str, int]
    """Current (not superseded) Wants by state."""
    partitions: dict[str, int]
    """Their distinct partitions by state."""
    total: int
    not_live: list[str]
    """Refs of terminal, not Successful Wants that are not Live (what failed)."""

    @property
    def done(self) -> bool:
        """Every current Want is terminal."""
        return sum(n for s, n in self.wants.items() if s not in TERMINAL) == 0

    @property
    def successful(self) -> bool:
        """Every partition is Live."""
        return self.partitions.get("Live", 0) == self.total


def progress_of(snap: Snapshot, wants: Sequence[Want]) -> GroupProgress:
    """Counts of a group's current Wants and of their partitions."""
    superseded = _superseded(wants)
    current = [w for w in wants if w.metadata.name not in superseded]
    by_state: Counter[str] = Counter(str(w.status.state or "Pending") for w in current)
    refs = dict.fromkeys(r for w in current for r in w.spec.partitions)
    parts: Counter[str] = Counter()
    for ref in refs:
        part = snap.partitions.get(ref)
        parts[(part.status.state if part is not None else None) or "Missing"] += 1
    not_live = [
        r
        for w in current
        if (w.status.state or "Pending") in ("Failed", "Expired")
        for r in w.spec.partitions
        if (snap.partitions.get(r) is None or snap.partitions[r].status.state != "Live")
    ]
    return GroupProgress(dict(by_state), dict(parts), len(refs), list(dict.fromkeys(not_live)))


def render_progress(kind: str, name: str, progress: GroupProgress) -> str:
    """One line: Wants by state, partitions Live out of all, failures."""
    wants = ", ".join(f"{n} {s}" for s, n in sorted(progress.wants.items())) or "no Wants"
    live = progress.partitions.get("Live", 0)
    failed = progress.partitions.get("Failed", 0)
    line = f"{kind} {name}: Wants {wants} | partitions {live}/{progress.total} Live"
    return line + (f", {failed} Failed" if failed else "")


def follow(ctx: Context, label: str, value: str, timeout: timedelta | None, interval: float) -> int:
    """Poll the group until every current Want is terminal; one aggregated progress line."""
    started = ctx.clock()
    last = ""
    while True:
        snap = ctx.cluster.snapshot()
        progress = progress_of(snap, members(snap, label, value))
        line = render_progress("backfill", value, progress)
        if line != last:
            waited = int((ctx.clock() - started).total_seconds())
            ctx.note(f"[{waited}s] {line}")
            last = line
        if progress.done:
            if progress.not_live:
                shown = ", ".join(progress.not_live[:10])
                more = len(progress.not_live) - 10
                ctx.print(f"not built: {shown}" + (f" and {more} more" if more > 0 else ""))
                ctx.print(f"ask again for only these: databuild retry --backfill {value} --failed")
            return ExitCode.OK if progress.successful else ExitCode.FAILED
        if timeout is not None and ctx.clock() - started >= timeout:
            ctx.note(f"timed out: {line}")
            return ExitCode.EXPIRED
        ctx.sleep(interval)


def retry_failed(ctx: Context, backfill: str) -> int:
    """One new Want per Failed or Expired Want of the backfill, for what is not Live."""
    snap = ctx.cluster.snapshot()
    wants = members(snap, BACKFILL_LABEL, backfill)
    if not wants:
        raise CliError(
            f"no Wants of backfill {backfill!r} in namespace {snap.namespace}", ExitCode.NOT_FOUND
        )
    superseded = _superseded(wants)
    created = []
    for want in wants:
        if want.metadata.name in superseded or want.status.state not in ("Failed", "Expired"):
            continue
        refs = [
            r
            for r in want.spec.partitions
            if snap.partitions.get(r) is None or snap.partitions[r].status.state != "Live"
        ]
        if not refs:
            continue
        manifest = want_manifest(
            refs,
            name=None,
            ttl_seconds=want.spec.ttl_seconds,
            sla_seconds=want.spec.sla_seconds,
            priority=want.spec.priority,
            labels={
                BACKFILL_LABEL: label_value(backfill),
                RETRY_OF_LABEL: want.metadata.name,
            },
        )
        manifest["metadata"]["generateName"] = f"{want.metadata.name[:50]}-retry-"
        created.append(ctx.cluster.create_want(manifest).metadata.name)
    ctx.print(
        f"backfill {backfill}: {len(created)} Wants created for what failed"
        if created
        else f"backfill {backfill}: nothing failed"
    )
    if not ctx.args.wait:
        return ExitCode.OK
    timeout = parse_duration(ctx.args.timeout) if ctx.args.timeout else None
    return follow(ctx, BACKFILL_LABEL, backfill, timeout, ctx.args.interval)
