"""``databuild logs REF|JOBRUN|WANT``: the container logs of a build's attempts."""

from __future__ import annotations

from typing import Any

from databuild.adapters.resources import JobRun
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Snapshot, check_ref
from databuild.cli.podlogs import PodLogs, RunPod

__all__ = ["register"]

_TERMINAL_RUN = frozenset({"Succeeded", "Failed", "Cancelled"})
_FINISHED_POD = frozenset({"Succeeded", "Failed"})


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``logs`` command."""
    p = sub.add_parser(
        "logs",
        parents=[common],
        help="print the logs of a build (a partition, a JobRun or a Want)",
        description=(
            "Print the container logs of a build: for a partition ref, the JobRun that "
            "built it (or is building it); for a JobRun, that run; for a Want, every run "
            "of its partitions. By default the last attempt of each run. Logs live as long "
            "as the batch Job's pods (24 hours after it finished by default)."
        ),
    )
    p.add_argument("target", metavar="REF|JOBRUN|WANT", help="what to show the logs of")
    p.add_argument("--attempt", type=int, help="this attempt (1 is the first) instead of the last")
    p.add_argument(
        "--all-attempts", action="store_true", help="every attempt still kept, oldest first"
    )
    p.add_argument("--failed", action="store_true", help="only failed runs and failed attempts")
    p.add_argument("--tail", type=int, help="only the last N lines of each log")
    p.add_argument("-c", "--container", help="this container (default: every container)")
    p.add_argument(
        "-f", "--follow", action="store_true", help="keep printing as the build runs, to its end"
    )
    p.add_argument("--interval", type=float, default=1.0, help="with -f: seconds between checks")
    p.set_defaults(handler=run)


def _runs(snap: Snapshot, target: str) -> tuple[str, list[JobRun]]:
    """What `target` names, and its runs (oldest first)."""
    if target in snap.job_runs:
        return f"JobRun {target}", [snap.job_runs[target]]
    want = snap.wants.get(target)
    if want is not None:
        seen: dict[str, JobRun] = {}
        for ref in want.spec.partitions:
            for r in snap.runs_for(ref):
                seen[r.metadata.name] = r
        return f"Want {target}", sorted(seen.values(), key=_created)
    if "/" not in target:
        raise CliError(
            f"no JobRun or Want named {target!r} in namespace {snap.namespace} (a partition "
            "ref has at least one '/')",
            ExitCode.NOT_FOUND,
        )
    ref = str(check_ref(target))
    run = snap.builder_of(ref)
    if run is None:
        raise CliError(
            f"partition {ref!r} in namespace {snap.namespace} has no JobRun yet",
            ExitCode.NOT_FOUND,
        )
    return f"partition {ref}", [run]


def _created(run: JobRun) -> str:
    ts = run.metadata.creation_timestamp
    return ts.isoformat() if ts else ""


def _chosen(pods: list[RunPod], ctx: Context) -> list[RunPod]:
    args = ctx.args
    if args.failed:
        pods = [p for p in pods if p.phase == "Failed"]
    if args.attempt is not None:
        return [p for p in pods if p.attempt == args.attempt]
    if args.all_attempts or not pods:
        return pods
    last = max(p.attempt for p in pods)
    return [p for p in pods if p.attempt == last]


def _print_pod(ctx: Context, logs: PodLogs, run: str, pod: RunPod, header: bool) -> None:
    containers = [ctx.args.container] if ctx.args.container else list(pod.containers)
    for container in containers:
        if header or len(containers) > 1:
            ctx.print(f"==> JobRun {run} attempt {pod.attempt} ({pod.phase}) {container} <==")
        # A finished container's log no longer grows: read it whole, do not hold a stream.
        follow = ctx.args.follow and pod.phase not in _FINISHED_POD
        for line in logs.read(pod, container, tail=ctx.args.tail, follow=follow):
            ctx.print(line)
            ctx.out.flush()


def _gone(run: JobRun, ctx: Context) -> str:
    msg = f"JobRun {run.metadata.name}: no pod of "
    msg += f"attempt {ctx.args.attempt}" if ctx.args.attempt is not None else "it"
    msg += " is left"
    if run.status.state in _TERMINAL_RUN:
        msg += (
            " (its batch Jobs were deleted: finished Jobs are kept for the operator's "
            "--job-ttl-seconds, 24 hours by default)"
        )
    if ctx.args.failed:
        msg += " that failed"
    if run.status.message:
        msg += f"; its last message: {run.status.message}"
    return msg


def run(ctx: Context) -> int:
    """Print the logs."""
    args = ctx.args
    if args.tail is not None and args.tail < 0:
        raise CliError("--tail must be 0 or more", ExitCode.USAGE)
    if args.attempt is not None and args.attempt < 1:
        raise CliError("--attempt counts from 1", ExitCode.USAGE)
    snap = ctx.cluster.snapshot()
    what, runs = _runs(snap, args.target)
    if args.failed:
        runs = [r for r in runs if r.status.state == "Failed"] or (
            runs if what.startswith("JobRun") else []
        )
    if not runs:
        raise CliError(
            f"{what} has no {'failed ' if args.failed else ''}JobRun", ExitCode.NOT_FOUND
        )
    logs = ctx.cluster.pod_logs()
    if args.follow:
        if len(runs) > 1:
            names = ", ".join(r.metadata.name for r in runs[-5:])
            raise CliError(
                f"-f follows one JobRun; {what} has {len(runs)} (e.g. {names})", ExitCode.USAGE
            )
        return _follow(ctx, logs, runs[0])
    printed = 0
    header = len(runs) > 1 or args.all_attempts
    for job_run in runs:
        pods = _chosen(logs.pods(job_run.metadata.name), ctx)
        if not pods:
            ctx.note(_gone(job_run, ctx))
            continue
        for pod in pods:
            _print_pod(ctx, logs, job_run.metadata.name, pod, header)
            printed += 1
    return ExitCode.OK if printed else ExitCode.NOT_FOUND


def _follow(ctx: Context, logs: PodLogs, job_run: JobRun) -> int:
    """Stream the current attempt's log; when it ends and the run retries, the next one."""
    name = job_run.metadata.name
    done: set[str] = set()
    waiting_noted = False
    while True:
        pods = _chosen(logs.pods(name), ctx)
        todo = [p for p in pods if p.name not in done and p.phase != "Pending"]
        if todo:
            pod = todo[-1]
            _print_pod(ctx, logs, name, pod, header=True)
            done.add(pod.name)
            continue
        state = ctx.cluster.get_job_run(name).status.state
        if state in _TERMINAL_RUN or (ctx.args.attempt is not None and done):
            if not done:
                ctx.note(_gone(ctx.cluster.get_job_run(name), ctx))
                return ExitCode.NOT_FOUND
            return ExitCode.FAILED if state == "Failed" else ExitCode.OK
        if not waiting_noted:
            ctx.note(f"JobRun {name} is {state or 'Queued'}: waiting for its next attempt")
            waiting_noted = True
        ctx.sleep(ctx.args.interval)
