"""The benchmark's command line (``make bench``, ``make bench-quick``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from databuild.adapters.crds import render_all
from databuild.bench.kube import Kube
from databuild.bench.machine import describe_machine
from databuild.bench.results import Report, ScenarioResult, evaluate, markdown, text_table
from databuild.bench.session import TUNED_FLAGS, BenchCluster, bench_cluster
from databuild.bench.suite import FULL, QUICK, Sizes, Suite, planner_benchmark
from databuild.testing import ExistingCluster
from databuild.testing.demo import install_crds

__all__ = ["main", "parser"]

KUBECONFIG_ENV = "DATABUILD_TEST_KUBECONFIG"


def _fan(text: str) -> tuple[int, int]:
    days, _, shards = text.partition("x")
    try:
        return int(days), int(shards)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected DAYSxSHARDS such as 10x100, got {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m databuild.bench",
        description="Benchmark the operator against a zero-overhead baseline orchestrator "
        "on a local control plane (or DATABUILD_TEST_KUBECONFIG's cluster).",
    )
    p.add_argument("--quick", action="store_true", help="small graphs, under 5 minutes")
    p.add_argument(
        "--output",
        type=Path,
        help="Markdown results file (default: "
        "docs/benchmarks/results.md, or results-quick.md with --quick)",
    )
    p.add_argument(
        "--kubeconfig",
        type=Path,
        help=f"an existing cluster (default: ${KUBECONFIG_ENV}; "
        "unset: start a local control plane)",
    )
    p.add_argument(
        "--harness-defaults",
        action="store_true",
        help="keep the harness's controller-manager rate limits instead of raising them",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator with py-spy during each build scenario",
    )
    p.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: also sample waiting threads (where wall time goes)",
    )
    p.add_argument(
        "--trace-memory",
        action="store_true",
        help="run the operator under tracemalloc and report where its memory goes "
        "(slows it down: for the memory table, not for times)",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=["wide", "deep", "fan", "latency", "big"],
        help="run only these scenarios (repeatable)",
    )
    p.add_argument("--wide", type=int, help="partitions of the wide graph")
    p.add_argument("--deep", type=int, help="levels of the chain")
    p.add_argument("--fan", type=_fan, help="DAYSxSHARDS of the fan-out/fan-in graph")
    p.add_argument("--latency", type=int, help="Wants in the latency scenario")
    p.add_argument("--big", type=int, help="partitions of the cost run at scale (0: skip)")
    p.add_argument(
        "--big-timeout",
        type=float,
        default=1800.0,
        help="seconds the operator gets for the run at scale; then its progress "
        "and rate are reported",
    )
    p.add_argument(
        "--no-big-baseline", action="store_true", help="run the scale run for the operator only"
    )
    p.add_argument(
        "--planner",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run the planner benchmark (default: in the full bench only; it "
        "takes minutes on two cores)",
    )
    p.add_argument("--workdir", type=Path, help="keep logs, audit policy and profiles here")
    p.add_argument(
        "--operator-arg",
        action="append",
        default=[],
        help="extra argument for python -m databuild.operator (repeatable)",
    )
    return p


def sizes_from(args: argparse.Namespace) -> Sizes:
    """The scenario sizes: the preset, overridden by flags, filtered by --only."""
    base = QUICK if args.quick else FULL
    wide = args.wide if args.wide is not None else base.wide
    deep = args.deep if args.deep is not None else base.deep
    fan = args.fan if args.fan is not None else base.fan
    latency = args.latency if args.latency is not None else base.latency
    big = args.big if args.big is not None else base.big
    only = set(args.only or ())
    if only:
        wide = wide if "wide" in only else None
        deep = deep if "deep" in only else None
        fan = fan if "fan" in only else None
        latency = latency if "latency" in only else None
        big = big if "big" in only else None
    return Sizes(
        wide=wide or None, deep=deep or None, fan=fan, latency=latency or None, big=big or None
    )


async def _kube_version(kubeconfig: Path) -> str:
    async with Kube.from_kubeconfig(kubeconfig) as kube:
        version = await kube.request("GET", "/version")
    return str(version.get("gitVersion", "unknown"))


def _install_crds(cluster: BenchCluster) -> None:
    folder = cluster.workdir / "crds"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (folder / name).write_text(text)
    with ExistingCluster(cluster.admin_kubeconfig).api_client() as api:
        install_crds(api, folder)


def _cluster_note(cluster: BenchCluster, tuned: bool, existing: bool) -> str:
    if existing:
        return (
            "An existing cluster (`DATABUILD_TEST_KUBECONFIG`); its components' settings "
            "are its own. No audit log: API counts come from the operator's own gateway "
            "metrics (`databuild_api_*_total`), which do not count the watches."
        )
    lines = [
        "Started by `databuild.testing` (etcd, kube-apiserver, kube-controller-manager "
        "with the real job controller, kube-scheduler, kwok: a pod of a batch Job succeeds "
        "about a second after it starts). The apiserver keeps an audit log of only the "
        "operator's and the baseline's ServiceAccounts, so every request each side makes "
        "is counted (its watches included)."
    ]
    lines.append(
        "The harness runs the controller-manager and the scheduler with a client rate "
        "limit of 200 QPS (burst 400). With client-go's default of 20 QPS (burst 30) the "
        "job controller held both sides to about 3.4 Jobs/s here (100 independent Jobs: "
        "~30 s instead of ~3 s), which would hide any operator overhead behind the same "
        "queue."
    )
    if tuned:
        flags = " ".join(f for fl in TUNED_FLAGS.values() for f in fl)
        lines.append(
            f"The bench also starts the controller-manager with `{flags}` (defaults: 5); "
            "`--harness-defaults` leaves the harness's settings alone."
        )
    else:
        lines.append("The components run with the harness's settings (`--harness-defaults`).")
    lines.append("The settings the components ran with:")
    return " ".join(lines)


NOTES = [
    "Wall time: baseline, from its first Job create to the watch seeing the last Job "
    "complete; operator, from the first Want create to the watch seeing every Want "
    "Successful (so it includes discovering upstream partitions, and the status writes "
    "after the last Job).",
    "Each operator run is a fresh `python -m databuild.operator` serving a fresh "
    "namespace, warmed up with one Want before timing; start-up is not timed, its CPU and "
    "memory are (RSS is at the end of the run, peak is VmHWM).",
    "writes/part and requests/part: the operator identity's requests in the apiserver's "
    "audit log from the timed Wants' creation until the operator went quiet, divided by "
    "the partitions built (Events included).",
    "Latency: one one-partition Want at a time, 0.2 s apart; from the create request to "
    "the Job's ADDED event on a watch. The baseline's row is the same path for a Job "
    "created directly (the floor).",
]


def _default_output(quick: bool) -> Path:
    return Path("docs/benchmarks") / ("results-quick.md" if quick else "results.md")


_PATH_OPTIONS = ("--output", "--workdir", "--kubeconfig")


def _command(quick: bool, raw: Sequence[str]) -> str:
    """How the results were produced, for the report (paths left out: they are local)."""
    shown: list[str] = []
    skip = False
    for arg in raw:
        if skip:
            skip = False
            continue
        if arg in _PATH_OPTIONS:
            skip = True
            continue
        if arg.startswith(tuple(f"{o}=" for o in _PATH_OPTIONS)):
            continue
        shown.append(arg)
    if [a for a in shown if a != "--quick"]:
        return "python -m databuild.bench " + shlex.join(shown)
    return "make bench-quick" if quick else "make bench"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit code (0 also when targets are missed, 1 on errors)."""
    args = parser().parse_args(argv)
    sizes = sizes_from(args)
    existing_env = os.environ.get(KUBECONFIG_ENV)
    existing = args.kubeconfig or (Path(existing_env) if existing_env else None)
    output = args.output or _default_output(args.quick)
    keep = args.workdir is not None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="databuild-bench-"))
    command = _command(args.quick, list(argv if argv is not None else sys.argv[1:]))
    tuned = not args.harness_defaults and existing is None
    results: list[ScenarioResult] = []
    try:
        with bench_cluster(workdir, existing=existing, tuned=tuned) as cluster:
            print(f"cluster ready; work directory {workdir}", flush=True)
            _install_crds(cluster)
            kube_version = asyncio.run(_kube_version(cluster.admin_kubeconfig))
            machine = describe_machine(kube_version)
            suite = Suite(
                cluster,
                log=lambda line: print(line, flush=True),
                profile=args.profile,
                profile_idle=args.profile_idle,
                trace_memory=args.trace_memory,
                big_timeout=args.big_timeout,
                big_baseline=not args.no_big_baseline,
                operator_args=tuple(args.operator_arg),
            )
            results = asyncio.run(suite.run(sizes.scenarios()))
            note = _cluster_note(cluster, tuned, existing is not None)
            revision = cluster.operator_revision
            flags = cluster.component_flags
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    planner = ""
    notes = list(NOTES)
    if args.planner if args.planner is not None else not args.quick:
        print("planner benchmark (100,000 partitions)...", flush=True)
        planner = planner_benchmark()
    else:
        notes.append(
            "The planner benchmark (100,000 partitions, `make bench-planner`) is part of "
            "the full bench (`make bench`); the quick bench leaves it out to stay under "
            "five minutes."
        )
    checks = evaluate(results, full=not args.quick)
    report = Report(
        title="DataBuild benchmark results" + (" (quick)" if args.quick else ""),
        command=command,
        machine=machine,
        component_flags=flags,
        cluster_note=note,
        operator_revision=revision,
        results=results,
        checks=checks,
        planner=planner,
        notes=notes,
    )
    print()
    print(text_table(results, checks))
    if planner:
        print()
        print(planner.rstrip())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(markdown(report))
    print(f"\nresults written to {output}")
    return 1 if any(r.errors for r in results) else 0
