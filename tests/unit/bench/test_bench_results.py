"""databuild.bench.results and cli: targets, tables, the report and the presets."""

from __future__ import annotations

from databuild.bench.audit import ApiCounts
from databuild.bench.cli import _command, parser, sizes_from
from databuild.bench.machine import Machine
from databuild.bench.profile import Profile
from databuild.bench.results import (
    BENCH_PROCESS,
    Cost,
    Report,
    ScenarioResult,
    SideResult,
    evaluate,
    markdown,
    text_table,
)
from databuild.bench.stats import Summary
from databuild.bench.suite import FULL, QUICK

MACHINE = Machine(
    date="2026-01-01 12:00",
    cpu_model="Test CPU",
    cores=2,
    memory_bytes=8 * 2**30,
    os="Linux 6.1",
    python="3.11.9",
    kubernetes="v1.36.3",
    load_average=(1.0, 0.5, 0.25),
)


def _results() -> list[ScenarioResult]:
    wide = ScenarioResult("wide", "wide-100", "build", 100, 1)
    wide.baseline = SideResult(10.0, 100, 100)
    wide.operator = SideResult(11.0, 100, 100, last_job_seconds=10.5)
    wide.cost = Cost(
        partitions=100,
        requests=900,
        writes=830,
        lease_writes=30,
        cpu_seconds=3.25,
        rss_bytes=90 * 2**20,
        peak_rss_bytes=100 * 2**20,
        top_writes=[("create events", 300), ("patch partitions/status", 200)],
        gateway_writes=600.0,
        baseline_writes=100,
    )
    wide.cost.traffic["operator"] = ApiCounts(
        requests=10, writes=8, busy_seconds=0.1, max_in_flight=1, span_seconds=0.1
    )
    wide.component_cpu = {
        "baseline": {"kwok": 1.5, BENCH_PROCESS: 0.5},
        "operator": {"kwok": 1.75, BENCH_PROCESS: 0.4},
    }
    deep = ScenarioResult("deep", "deep-10", "build", 10, 10)
    deep.baseline = SideResult(20.0, 10, 10)
    deep.operator = SideResult(40.0, 10, 10, last_job_seconds=37.0)
    deep.profile = Profile(10, [("plan (databuild/domain/planner.py)", 6)], [("main (x.py)", 10)])
    latency = ScenarioResult("latency", "latency-20", "latency", 20, 1)
    latency.baseline_latency = Summary.of([0.01] * 20)
    latency.operator_latency = Summary.of([0.2] * 19 + [0.9])
    broken = ScenarioResult("fan", "fan-3x20", "build", 66, 3, errors=["it broke"])
    return [wide, deep, latency, broken]


def test_targets_are_checked_per_scenario() -> None:
    checks = {(c.target, c.scenario): c for c in evaluate(_results(), full=False)}
    assert checks["wall-time ratio", "wide-100"].met is True
    assert checks["wall-time ratio", "wide-100"].shown == "1.10"
    assert checks["wall-time ratio", "deep-10"].met is False
    assert checks["wall-time ratio", "fan-3x20"].met is None
    # 830 writes for 100 partitions, 30 of them Lease renewals (paid per second held).
    writes = checks["API writes per partition (Lease renewals apart)", "wide-100"]
    assert (writes.value, writes.met) == (8.0, True)
    # Without the audit log's Lease count there is no verdict, not a guess.
    deep_writes = checks.get(("API writes per partition (Lease renewals apart)", "deep-10"))
    assert deep_writes is None
    cpu = checks["operator CPU ms per partition", "wide-100"]
    assert (cpu.shown, cpu.met) == ("32.5", False)
    settle = checks["last Job done -> Wants Successful (s)", "wide-100"]
    assert (settle.shown, settle.met) == ("0.50", True)
    assert checks["last Job done -> Wants Successful (s)", "deep-10"].met is False
    assert checks["p50 Want -> Job (s)", "latency-20"].met is True
    rss = checks["operator peak RSS (MB)", "wide-10000"]
    assert rss.met is None
    assert "full bench only" in rss.shown


def test_rss_target_uses_the_run_at_scale() -> None:
    big = ScenarioResult("wide-10k", "wide-10000", "build", 10_000, 1)
    big.cost = Cost(partitions=10_000, peak_rss_bytes=250 * 2**20)
    checks = [c for c in evaluate([big], full=True) if c.target.startswith("operator peak")]
    assert [(c.shown, c.met) for c in checks] == [("250", True)]


def test_text_table_has_the_numbers() -> None:
    results = _results()
    text = text_table(results, evaluate(results, full=False))
    assert "wide-100" in text
    assert "1.10" in text
    assert "8.3" in text  # writes per partition
    assert "90 (100)" in text  # RSS (peak)
    assert "0.200" in text  # operator p50 latency
    assert "MISSED" in text
    assert "fan-3x20: it broke" in text


def test_markdown_report() -> None:
    results = _results()
    report = Report(
        title="Results",
        command="make bench-quick",
        machine=MACHINE,
        component_flags={"kube-controller-manager": {"--kube-api-qps": "200"}},
        cluster_note="A note.",
        results=results,
        checks=evaluate(results, full=False),
        planner="full plan  12.0 ms\n",
        notes=["A method."],
    )
    text = markdown(report)
    assert text.startswith("# Results\n")
    assert "| CPU | Test CPU |" in text
    assert "| kube-controller-manager | --kube-api-qps | 200 |" in text
    assert "| wide | wide-100 | 100 | 1 | 10.0 | 11.0 | 1.10 | 8.3 | 9.0 | 3.2 | 90 (100) |" in text
    assert "create events 3.00" in text
    assert "| wide-100 | operator | 10 | 8 | 10.0 | 1.00 | 1 | 0.1 |" in text
    # CPU of every process: the operator's 3.25 s beside the control plane's and the
    # bench's; 5.4 s over 11 s of wall time, 2.7 times the baseline's 2.0 s.
    assert "| wide-100 | baseline | - | - | - | - | 1.5 | - | 0.5 | 2.0 | 0.20 | - |" in text
    assert "| wide-100 | operator | - | - | - | - | 1.8 | 3.2 | 0.4 | 5.4 | 0.49 | 2.70 |" in text
    assert "full plan  12.0 ms" in text
    assert "| 60.0 | `plan (databuild/domain/planner.py)` |" in text
    assert "- fan-3x20: it broke" in text
    assert "- A method." in text
    assert "/tmp" not in text


def test_presets_and_overrides() -> None:
    assert QUICK.wide == 100 and QUICK.deep == 10 and QUICK.fan == (3, 20)
    assert QUICK.latency == 20 and QUICK.big is None
    assert FULL.wide == 1000 and FULL.deep == 50 and FULL.fan == (10, 100)
    assert FULL.latency == 50 and FULL.big == 10_000
    quick = sizes_from(parser().parse_args(["--quick"]))
    assert [name for name, _ in quick.scenarios()] == ["wide", "deep", "fan", "latency"]
    smoke = sizes_from(parser().parse_args(["--quick", "--only", "wide", "--wide", "5"]))
    assert [(name, dag.size) for name, dag in smoke.scenarios()] == [("wide", 5)]
    full = sizes_from(parser().parse_args(["--fan", "2x3", "--big", "0"]))
    assert [name for name, _ in full.scenarios()] == ["wide", "deep", "fan", "latency"]
    assert full.fan == (2, 3)


def test_command_line_in_the_report_leaves_paths_out() -> None:
    assert _command(True, ["--quick"]) == "make bench-quick"
    assert _command(False, ["--output", "/somewhere/r.md"]) == "make bench"
    assert (
        _command(True, ["--quick", "--workdir=/x", "--only", "wide"])
        == "python -m databuild.bench --quick --only wide"
    )
