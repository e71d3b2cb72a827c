"""Following Wants live: ``want --wait``, ``wait`` and ``status --watch`` share this.

On a terminal the tree of each Want (partitions, runs, durations) is redrawn in place as
the watch reports changes; otherwise a progress line is written only when it changes, so
logs of CI jobs stay short.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from datetime import timedelta

from databuild.adapters.resources import Want
from databuild.cli.context import Context
from databuild.cli.errors import ExitCode
from databuild.cli.kube import Snapshot
from databuild.cli.render import emit
from databuild.cli.tree import status_data, status_tree

__all__ = ["TERMINAL", "follow_wants", "watch_status"]

TERMINAL = {"Successful": ExitCode.OK, "Failed": ExitCode.FAILED, "Expired": ExitCode.EXPIRED}

_CLEAR = "\033[H\033[J"


def _state(want: Want) -> str:
    return want.status.state or "Pending"


def _running(want: Want, snap: Snapshot) -> int:
    wanted = set(want.spec.partitions)
    return sum(
        1
        for r in snap.job_runs.values()
        if r.status.state == "Running" and wanted & set(r.spec.partitions)
    )


def _progress(want: Want, snap: Snapshot, waited: float) -> str:
    live = want.status.progress or f"?/{len(want.spec.partitions)}"
    running = _running(want, snap)
    name, state = want.metadata.name, _state(want)
    return f"[{int(waited)}s] {name}: {state}   live {live}   running jobs {running}"


def _verdict(wants: Sequence[Want]) -> ExitCode | None:
    """The exit code once it is known: a failure at once, else when every Want is done."""
    states = [_state(w) for w in wants]
    if "Failed" in states:
        return ExitCode.FAILED
    if all(s in TERMINAL for s in states):
        return ExitCode.EXPIRED if "Expired" in states else ExitCode.OK
    return None


def follow_wants(ctx: Context, names: list[str], timeout: timedelta | None, interval: float) -> int:
    """Follow `names` until one fails (1), all are done (0, or 3 if one expired) or timeout (3)."""
    with contextlib.closing(ctx.cluster.follow(names, interval)) as snapshots:
        return _follow(ctx, names, timeout, snapshots)


def _follow(
    ctx: Context, names: list[str], timeout: timedelta | None, snapshots: Iterator[Snapshot]
) -> int:
    started = ctx.clock()
    tty = ctx.err.isatty()
    last: dict[str, str] = {}
    for snap in snapshots:
        wants = [snap.wants[n] for n in names if n in snap.wants]
        if len(wants) < len(names):
            gone = sorted(set(names) - set(snap.wants))
            ctx.note(f"Want {', '.join(gone)} was deleted while being followed")
            return ExitCode.NOT_FOUND
        waited = (ctx.clock() - started).total_seconds()
        if tty:
            ctx.err.write(_CLEAR + f"[{int(waited)}s]\n" + status_tree(wants, snap) + "\n")
            ctx.err.flush()
        else:
            for want in wants:
                line = _progress(want, snap, waited)
                if line.split("]", 1)[1] != last.get(want.metadata.name, ""):
                    ctx.note(line)
                last[want.metadata.name] = line.split("]", 1)[1]
        verdict = _verdict(wants)
        if verdict is not None:
            _final(ctx, wants, snap)
            return verdict
        if timeout is not None and waited >= timeout.total_seconds():
            states = ", ".join(f"{w.metadata.name} is {_state(w)}" for w in wants)
            ctx.note(f"timed out after {int(waited)}s: {states}")
            if ctx.output != "table":
                _emit(ctx, wants, snap)
            return ExitCode.EXPIRED
    return ExitCode.UNAVAILABLE  # the follower only ends by raising


def _emit(ctx: Context, wants: Sequence[Want], snap: Snapshot) -> None:
    data = [status_data(w, snap) for w in wants]
    emit(data[0] if len(data) == 1 else data, ctx.output, ctx.out)


def _final(ctx: Context, wants: Sequence[Want], snap: Snapshot) -> None:
    if ctx.output != "table":
        _emit(ctx, wants, snap)
        return
    ctx.print(status_tree(wants, snap))
    for want in wants:
        ready = next((c for c in want.status.conditions if c.type == "Ready"), None)
        if _state(want) != "Successful" and ready is not None and ready.message:
            ctx.print(f"{want.metadata.name}: {ready.reason}: {ready.message}")


def watch_status(ctx: Context, names: list[str] | None, include_upstream: bool) -> int:
    """``status --watch``: redraw the tree on every change until interrupted."""
    with contextlib.closing(ctx.cluster.follow(names, ctx.args.interval)) as snapshots:
        return _watch(ctx, names, include_upstream, snapshots)


def _watch(
    ctx: Context, names: list[str] | None, include_upstream: bool, snapshots: Iterator[Snapshot]
) -> int:
    tty = ctx.out.isatty()
    previous = ""
    for snap in snapshots:
        wants = sorted(snap.wants.values(), key=lambda w: w.metadata.name)
        if names is not None:
            wants = [w for w in wants if w.metadata.name in names]
        elif not include_upstream:
            wants = [w for w in wants if w.spec.source is None]
        text = status_tree(wants, snap) if wants else f"No Wants in namespace {snap.namespace}."
        if tty:
            ctx.out.write(_CLEAR + text + "\n")
            ctx.out.flush()
        elif _without_ages(text) != _without_ages(previous):
            ctx.print(text + "\n")
            ctx.out.flush()
        previous = text
        if names is not None and wants and ctx.args.exit and _verdict(wants) is not None:
            return int(_verdict(wants) or 0)
    return ExitCode.OK


def _without_ages(text: str) -> str:
    """The tree without its clock-driven parts, to print again only on real changes."""
    return re.sub(r"\b\d+[smhd]\b", "", text)
