"""Benchmark results, the targets they are judged against, and their tables.

Pure: results go in, text comes out (a terminal table and a Markdown report).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from databuild.bench.audit import ApiCounts
from databuild.bench.machine import Machine
from databuild.bench.memory import AllocationSite
from databuild.bench.profile import Profile
from databuild.bench.stats import Summary, ratio

__all__ = [
    "BENCH_PROCESS",
    "TARGETS",
    "Cost",
    "Report",
    "ScenarioResult",
    "SideResult",
    "TargetCheck",
    "evaluate",
    "markdown",
    "text_table",
]

MiB = 2**20


@dataclass(frozen=True)
class SideResult:
    """One side (baseline or operator) of a build scenario."""

    wall_seconds: float
    partitions_built: int
    jobs: int
    first_job_seconds: float | None = None
    """From the start to the first batch Job."""
    last_created_seconds: float | None = None
    """From the start to the last batch Job's creation."""
    last_job_seconds: float | None = None
    """From the start to the last batch Job's completion."""


@dataclass
class Cost:
    """What building cost the operator: API traffic, CPU and memory."""

    partitions: int
    requests: int | None = None
    """Every request of the operator's identity (audit log)."""
    writes: int | None = None
    """Successful writes of the operator's identity (audit log)."""
    failed_writes: int | None = None
    gateway_requests: float | None = None
    """Requests counted by the operator's own API gateway (its metrics)."""
    gateway_writes: float | None = None
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    peak_rss_bytes: int | None = None
    top_writes: list[tuple[str, int]] = field(default_factory=list)
    lease_writes: int | None = None
    """Writes of the leader Lease (audit log): paid per second held, not per partition."""
    baseline_writes: int | None = None
    baseline_requests: int | None = None
    traffic: dict[str, ApiCounts] = field(default_factory=dict)
    """side -> that side's requests in the audit log (with timing)."""

    def per_partition(self, value: float | None) -> float | None:
        """``value`` divided by the partitions built."""
        return ratio(value, float(self.partitions))

    @property
    def writes_per_partition(self) -> float | None:
        """Writes per built partition: the audit log's count, else the gateway's."""
        writes = self.writes if self.writes is not None else self.gateway_writes
        return self.per_partition(writes)

    @property
    def build_writes_per_partition(self) -> float | None:
        """Writes per built partition without the Lease's renewals (audit log only)."""
        if self.writes is None or self.lease_writes is None:
            return None
        return self.per_partition(self.writes - self.lease_writes)

    @property
    def requests_per_partition(self) -> float | None:
        """Requests per built partition: the audit log's count, else the gateway's."""
        requests = self.requests if self.requests is not None else self.gateway_requests
        return self.per_partition(requests)


Kind = Literal["build", "latency"]


@dataclass
class ScenarioResult:
    """One scenario, both sides."""

    name: str
    """The scenario: wide, deep, fan, latency or wide-10k."""
    graph: str
    """The graph it built, e.g. wide-1000."""
    kind: Kind
    partitions: int
    depth: int
    baseline: SideResult | None = None
    operator: SideResult | None = None
    cost: Cost | None = None
    baseline_latency: Summary | None = None
    operator_latency: Summary | None = None
    component_cpu: dict[str, dict[str, float]] = field(default_factory=dict)
    """side -> control plane component -> CPU seconds during that side's run."""
    profile: Profile | None = None
    errors: list[str] = field(default_factory=list)
    progress: str = ""
    """How far an unfinished operator run got (e.g. for 10k partitions)."""
    memory_sites: list[AllocationSite] = field(default_factory=list)
    """The operator's biggest live allocation sites at the end (``--trace-memory``)."""

    @property
    def wall_ratio(self) -> float | None:
        """Operator wall time / baseline wall time."""
        if self.baseline is None or self.operator is None:
            return None
        return ratio(self.operator.wall_seconds, self.baseline.wall_seconds)


#: Operator/baseline wall-time ratio limits by scenario name.
RATIO_TARGETS: Mapping[str, float] = {"wide": 1.3, "fan": 1.3, "deep": 1.1}
#: The structural floor with status subresources is 7 (Partition create and 2 status
#: writes, JobRun create and 2 status writes, the batch Job); Events included.
WRITES_PER_PARTITION_TARGET = 8.0
LATENCY_P50_TARGET = 0.5
CPU_MS_PER_PARTITION_TARGET = 10.0
#: From the last batch Job's completion to every Want Successful.
SETTLE_SECONDS_TARGET = 2.0
RSS_TARGET_BYTES = 300 * MiB
RSS_TARGET_PARTITIONS = 10_000

TARGETS: Sequence[str] = (
    "operator/baseline wall time <= 1.3 (wide, fan-in/out), <= 1.1 (deep chain)",
    f"<= {WRITES_PER_PARTITION_TARGET:g} API writes per built partition, Events included "
    "(the leader Lease's renewals, paid per second held, counted apart)",
    f"p50 Want applied -> first batch Job < {LATENCY_P50_TARGET} s",
    f"operator CPU <= {CPU_MS_PER_PARTITION_TARGET:g} ms per built partition",
    f"last batch Job completed -> every Want Successful < {SETTLE_SECONDS_TARGET:g} s",
    f"operator RSS < {RSS_TARGET_BYTES // MiB} MB at {RSS_TARGET_PARTITIONS:,} partitions",
)


@dataclass(frozen=True)
class TargetCheck:
    """One target for one scenario: the measured value and whether it was met."""

    target: str
    scenario: str
    value: float | None
    limit: float
    met: bool | None
    """``None``: not measured."""
    shown: str


def _check(target: str, scenario: str, value: float | None, limit: float, fmt: str) -> TargetCheck:
    if value is None:
        return TargetCheck(target, scenario, None, limit, None, "not measured")
    return TargetCheck(target, scenario, value, limit, value <= limit, fmt.format(value))


def evaluate(results: Sequence[ScenarioResult], *, full: bool) -> list[TargetCheck]:
    """Every target against every scenario it applies to."""
    checks: list[TargetCheck] = []
    for r in results:
        if r.kind == "build" and r.name in RATIO_TARGETS:
            checks.append(
                _check("wall-time ratio", r.graph, r.wall_ratio, RATIO_TARGETS[r.name], "{:.2f}")
            )
    for r in results:
        if r.kind == "build" and r.cost is not None:
            checks.append(
                _check(
                    "API writes per partition (Lease renewals apart)",
                    r.graph,
                    r.cost.build_writes_per_partition,
                    WRITES_PER_PARTITION_TARGET,
                    "{:.1f}",
                )
            )
    for r in results:
        if r.kind == "build" and r.cost is not None:
            cpu = r.cost.per_partition(r.cost.cpu_seconds)
            checks.append(
                _check(
                    "operator CPU ms per partition",
                    r.graph,
                    None if cpu is None else cpu * 1000,
                    CPU_MS_PER_PARTITION_TARGET,
                    "{:.1f}",
                )
            )
    for r in results:
        side = r.operator
        if r.kind == "build" and side is not None and side.last_job_seconds is not None:
            checks.append(
                _check(
                    "last Job done -> Wants Successful (s)",
                    r.graph,
                    max(0.0, side.wall_seconds - side.last_job_seconds),
                    SETTLE_SECONDS_TARGET,
                    "{:.2f}",
                )
            )
    for r in results:
        if r.kind == "latency":
            value = r.operator_latency.p50 if r.operator_latency else None
            checks.append(
                _check("p50 Want -> Job (s)", r.graph, value, LATENCY_P50_TARGET, "{:.3f}")
            )
    big = [r for r in results if r.partitions >= RSS_TARGET_PARTITIONS and r.kind == "build"]
    if big:
        for r in big:
            peak = r.cost.peak_rss_bytes if r.cost else None
            checks.append(
                _check(
                    "operator peak RSS (MB)",
                    r.graph,
                    peak / MiB if peak is not None else None,
                    RSS_TARGET_BYTES / MiB,
                    "{:.0f}",
                )
            )
    else:
        checks.append(
            TargetCheck(
                "operator peak RSS (MB)",
                f"wide-{RSS_TARGET_PARTITIONS}",
                None,
                RSS_TARGET_BYTES / MiB,
                None,
                "not run" + (" (quick bench: full bench only)" if not full else ""),
            )
        )
    return checks


def _f(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MiB:.0f}"


def _memory(cost: Cost | None) -> str:
    if cost is None:
        return "-"
    return f"{_mb(cost.rss_bytes)} ({_mb(cost.peak_rss_bytes)})"


_HEADERS = (
    "scenario",
    "graph",
    "partitions",
    "depth",
    "baseline s",
    "operator s",
    "ratio",
    "writes/part",
    "requests/part",
    "op CPU s",
    "op RSS MB (peak)",
)


def _rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.kind != "build":
            continue
        cost = r.cost
        rows.append(
            [
                r.name,
                r.graph,
                str(r.partitions),
                str(r.depth),
                _f(r.baseline.wall_seconds if r.baseline else None, "{:.1f}"),
                _f(r.operator.wall_seconds if r.operator else None, "{:.1f}")
                + (f" ({r.progress})" if r.progress else ""),
                _f(r.wall_ratio),
                _f(cost.writes_per_partition if cost else None, "{:.1f}"),
                _f(cost.requests_per_partition if cost else None, "{:.1f}"),
                _f(cost.cpu_seconds if cost else None, "{:.1f}"),
                _memory(cost),
            ]
        )
    return rows


_TIMELINE_HEADERS = (
    "graph",
    "side",
    "first Job created",
    "last Job created",
    "last Job completed",
    "done",
)


def _timeline_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    rows = []
    for r in results:
        for side, s in (("baseline", r.baseline), ("operator", r.operator)):
            if r.kind != "build" or s is None:
                continue
            rows.append(
                [
                    r.graph,
                    side,
                    _f(s.first_job_seconds),
                    _f(s.last_created_seconds),
                    _f(s.last_job_seconds),
                    _f(s.wall_seconds),
                ]
            )
    return rows


_LATENCY_HEADERS = ("scenario", "wants", "side", "p50 s", "p90 s", "p99 s", "max s")


def _latency_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.kind != "latency":
            continue
        for side, summary in (("baseline", r.baseline_latency), ("operator", r.operator_latency)):
            if summary is None:
                rows.append([r.graph, str(r.partitions), side, "-", "-", "-", "-"])
                continue
            rows.append(
                [
                    r.graph,
                    str(summary.count),
                    side,
                    f"{summary.p50:.3f}",
                    f"{summary.p90:.3f}",
                    f"{summary.p99:.3f}",
                    f"{summary.max:.3f}",
                ]
            )
    return rows


def _plain(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    table = [list(headers), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _md(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _verdict(check: TargetCheck) -> str:
    if check.met is None:
        return "-"
    return "met" if check.met else "MISSED"


def text_table(results: Sequence[ScenarioResult], checks: Sequence[TargetCheck]) -> str:
    """The results for a terminal."""
    parts = [_plain(_HEADERS, _rows(results))]
    latency = _latency_rows(results)
    if latency:
        parts.append(_plain(_LATENCY_HEADERS, latency))
    parts.append(
        _plain(
            ("target", "scenario", "measured", "limit", "verdict"),
            [[c.target, c.scenario, c.shown, f"{c.limit:g}", _verdict(c)] for c in checks],
        )
    )
    errors = [f"{r.graph}: {e}" for r in results for e in r.errors]
    if errors:
        parts.append("errors:\n" + "\n".join(f"  {e}" for e in errors))
    return "\n\n".join(parts)


@dataclass
class Report:
    """Everything a results file says."""

    title: str
    command: str
    machine: Machine
    component_flags: Mapping[str, Mapping[str, str]]
    cluster_note: str
    results: list[ScenarioResult]
    checks: list[TargetCheck]
    planner: str = ""
    notes: list[str] = field(default_factory=list)
    operator_revision: str = "unknown"


def markdown(report: Report) -> str:
    """The Markdown results file."""
    out = [f"# {report.title}", ""]
    out += [
        f"Produced by `{report.command}` on {report.machine.date} UTC, operator code at "
        f"{report.operator_revision} (one copy for the whole session). Every scenario runs "
        "the baseline (a zero-overhead asyncio orchestrator creating the same batch Jobs "
        "directly) and the operator one after the other on the same control plane, so "
        "the ratios are what to compare across machines; absolute times are noisy.",
        "",
        "## Machine",
        "",
        _md(("", ""), [list(row) for row in report.machine.lines()]),
        "",
        "## Control plane",
        "",
        report.cluster_note,
        "",
    ]
    if report.component_flags:
        rows = [
            [component, flag, value]
            for component, flags in report.component_flags.items()
            for flag, value in flags.items()
        ]
        out += [_md(("component", "setting", "value"), rows), ""]
    out += ["## Results", "", _md(_HEADERS, _rows(report.results)), ""]
    timeline = _timeline_rows(report.results)
    if timeline:
        out += [
            "### Timeline (seconds from the start of each side)",
            "",
            _md(_TIMELINE_HEADERS, timeline),
            "",
        ]
    latency = _latency_rows(report.results)
    if latency:
        out += ["### Want applied -> first batch Job", "", _md(_LATENCY_HEADERS, latency), ""]
    out += [
        "## Targets",
        "",
        _md(
            ("target", "scenario", "measured", "limit", "verdict"),
            [[c.target, c.scenario, c.shown, f"{c.limit:g}", _verdict(c)] for c in report.checks],
        ),
        "",
    ]
    costs = [r for r in report.results if r.cost is not None and r.cost.top_writes]
    if costs:
        out += ["## Where the operator's writes go", ""]
        for r in costs:
            assert r.cost is not None
            per = ", ".join(
                f"{what} {n / max(1, r.cost.partitions):.2f}" for what, n in r.cost.top_writes
            )
            extra = ""
            if r.cost.gateway_writes is not None:
                extra = (
                    f" (the operator's gateway counted "
                    f"{r.cost.gateway_writes / max(1, r.cost.partitions):.2f} writes/partition)"
                )
            base = ""
            if r.cost.baseline_writes is not None:
                base = (
                    f"; the baseline wrote "
                    f"{r.cost.baseline_writes / max(1, r.cost.partitions):.2f}/partition"
                )
            out.append(f"- **{r.graph}**, per partition: {per}{extra}{base}.")
        out.append("")
    traffic_rows = []
    for r in report.results:
        for side, t in r.cost.traffic.items() if r.cost else ():
            traffic_rows.append(
                [
                    r.graph,
                    side,
                    str(t.requests),
                    str(t.writes),
                    _f(t.mean_latency * 1000 if t.mean_latency is not None else None, "{:.1f}"),
                    _f(t.mean_in_flight),
                    str(t.max_in_flight),
                    _f(t.span_seconds, "{:.1f}"),
                ]
            )
    if traffic_rows:
        out += [
            "## API requests as the apiserver saw them",
            "",
            "From the audit log (watches left out): how long requests took at the apiserver, "
            "and how many of each side's requests were in flight at once. A mean of about 1 "
            "in flight means the side waited for each request before sending the next.",
            "",
            _md(
                (
                    "graph",
                    "side",
                    "requests",
                    "writes",
                    "mean latency ms",
                    "mean in flight",
                    "max in flight",
                    "span s",
                ),
                traffic_rows,
            ),
            "",
        ]
    cpu_rows = _cpu_rows(report.results)
    if cpu_rows:
        out += [
            "## CPU seconds during each run",
            "",
            "Every process of the run: the control plane's components, the operator, and the "
            "bench's own process (the baseline orchestrator runs in it; on both sides it "
            "watches for the end). *cores busy* is their sum over the side's wall time: near "
            "the machine's cores, the run was bound by CPU, and the wall-time ratio follows "
            "the CPU ratio (*all / baseline*) more than the operator's latency.",
            "",
            _md(
                (
                    "graph",
                    "side",
                    *_COMPONENTS,
                    "operator",
                    BENCH_PROCESS,
                    "all",
                    "cores busy",
                    "all / baseline",
                ),
                cpu_rows,
            ),
            "",
        ]
    if report.planner:
        out += [
            "## Planner (pure domain, 100,000 partitions)",
            "",
            "`python -m databuild.domain.bench` (`make bench-planner`):",
            "",
            "```",
            report.planner.rstrip(),
            "```",
            "",
        ]
    profiles = [r for r in report.results if r.profile is not None and r.profile.samples]
    if profiles:
        out += ["## Operator profiles (py-spy)", ""]
        for r in profiles:
            assert r.profile is not None
            p = r.profile
            out += [
                f"### {r.graph} ({p.samples} samples)",
                "",
                _md(
                    ("self %", "frame"),
                    [[f"{100 * p.share(n):.1f}", f"`{f}`"] for f, n in p.self_frames],
                ),
                "",
                _md(
                    ("inclusive %", "frame"),
                    [[f"{100 * p.share(n):.1f}", f"`{f}`"] for f, n in p.inclusive_frames],
                ),
                "",
            ]
    traced = [r for r in report.results if r.memory_sites]
    if traced:
        out += ["## Operator memory by allocation site (tracemalloc)", ""]
        for r in traced:
            total = r.memory_sites[0]
            out += [
                f"### {r.graph}: {total.size_bytes / MiB:.0f} MiB traced in {total.count} sites",
                "",
                _md(
                    ("MiB", "blocks", "site"),
                    [
                        [f"{s.size_bytes / MiB:.1f}", str(s.count), f"`{s.site}`"]
                        for s in r.memory_sites[1:16]
                    ],
                ),
                "",
            ]
    errors = [f"- {r.graph}: {e}" for r in report.results for e in r.errors]
    if errors:
        out += ["## Errors", "", *errors, ""]
    if report.notes:
        out += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(out).rstrip() + "\n"


_COMPONENTS = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")
BENCH_PROCESS = "bench process"
"""The bench's own CPU during a side's run, kept beside the control plane's components."""


def _cpu_rows(results: Sequence[ScenarioResult]) -> list[list[str]]:
    """Per scenario and side: CPU seconds of every process, their sum, and how busy the
    machine was (the sum over the side's wall time)."""
    rows = []
    for r in results:
        totals: dict[str, float] = {}
        for side, components in r.component_cpu.items():
            own = r.cost.cpu_seconds if side == "operator" and r.cost else None
            total = sum(components.values()) + (own or 0.0)
            totals[side] = total
            wall = r.baseline if side == "baseline" else r.operator
            rows.append(
                [
                    r.graph,
                    side,
                    *(_f(components.get(c), "{:.1f}") for c in _COMPONENTS),
                    _f(own, "{:.1f}"),
                    _f(components.get(BENCH_PROCESS), "{:.1f}"),
                    f"{total:.1f}",
                    _f(ratio(total, wall.wall_seconds) if wall else None),
                    _f(ratio(total, totals.get("baseline")) if side == "operator" else None),
                ]
            )
    return rows
