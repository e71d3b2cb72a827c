"""The pure readers of databuild.bench: audit log, /proc, py-spy output, machine info."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from databuild.bench.audit import AuditLog, audit_policy, overlap, tally
from databuild.bench.kube import job_finished, kubeconfig_with_token
from databuild.bench.machine import parse_cpu_model, parse_mem_total
from databuild.bench.memory import install_hook, parse_sites
from databuild.bench.operator_side import job_partitions
from databuild.bench.procstat import parse_stat_cpu_ticks, parse_status_kib
from databuild.bench.profile import top_frames
from databuild.bench.session import effective_flags

OP = "system:serviceaccount:databuild-bench:operator"


def _event(verb: str, resource: str, code: int, *, user: str = OP, sub: str = "") -> str:
    ref = {"resource": resource}
    if sub:
        ref["subresource"] = sub
    return json.dumps(
        {
            "stage": "ResponseComplete",
            "verb": verb,
            "user": {"username": user},
            "objectRef": ref,
            "responseStatus": {"code": code},
        }
    )


def test_tally_counts_one_users_requests_and_successful_writes() -> None:
    lines = [
        _event("create", "jobs", 201),
        _event("patch", "partitions", 200, sub="status"),
        _event("patch", "partitions", 409, sub="status"),
        _event("watch", "wants", 200),
        _event("create", "jobs", 201, user="someone-else"),
        "",
        '{"cut short',
    ]
    counts = tally(lines, OP)
    assert counts.requests == 4
    assert counts.writes == 2
    assert counts.failed_writes == 1
    assert counts.top() == [
        ("create jobs", 1),
        ("patch partitions/status", 1),
        ("patch partitions/status (HTTP 409)", 1),
    ]
    assert ("watch wants", 1) in counts.top(writes_only=False)


def test_audit_log_counts_a_window_of_whole_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    assert log.offset() == 0
    assert log.count(0, OP).requests == 0
    log.path.write_text(_event("create", "jobs", 201) + "\n")
    mark = log.offset()
    with log.path.open("a") as f:
        f.write(_event("create", "wants", 201) + "\n" + _event("create", "pods", 201)[:20])
    counts = log.count(mark, OP)
    assert (counts.requests, counts.writes) == (1, 1)
    assert counts.top() == [("create wants", 1)]


def test_audit_policy_logs_only_the_given_users() -> None:
    policy = yaml.safe_load(audit_policy([OP, "b"]))
    assert policy["kind"] == "Policy"
    assert policy["rules"] == [{"level": "Metadata", "users": [OP, "b"]}, {"level": "None"}]
    assert set(policy["omitStages"]) == {"RequestReceived", "ResponseStarted"}


def test_proc_parsers() -> None:
    stat = "4242 (python -m (x)) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0 20 0 1 0 99 0 0"
    assert parse_stat_cpu_ticks(stat) == 200
    status = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
    assert parse_status_kib(status, "VmRSS") == 102400
    assert parse_status_kib(status, "VmHWM") == 204800
    assert parse_status_kib(status, "VmSwap") is None


def test_top_frames_self_and_inclusive() -> None:
    lines = [
        "main (/x/databuild/operator/loop.py:10);plan (/x/databuild/domain/planner.py:5) 30",
        "main (/x/databuild/operator/loop.py:11);plan (/x/databuild/domain/planner.py:7) 20",
        "main (/x/databuild/operator/loop.py:10);dumps (/usr/lib/python3.11/json/__init__.py:1) 50",
        "garbage",
    ]
    profile = top_frames(lines, 5)
    assert profile.samples == 100
    assert profile.self_frames[0] == ("plan (databuild/domain/planner.py)", 50)
    assert ("dumps (json/__init__.py)", 50) in profile.self_frames
    assert profile.inclusive_frames[0] == ("main (databuild/operator/loop.py)", 100)
    assert profile.share(50) == 0.5


def test_machine_parsers() -> None:
    assert (
        parse_cpu_model("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n") == "Some CPU @ 2.0GHz"
    )
    assert parse_cpu_model("") == "unknown"
    assert parse_mem_total("MemTotal:       24684000 kB\n") == 24684000 * 1024
    assert parse_mem_total("") is None


def test_job_helpers() -> None:
    job = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"env": [{"name": "DATABUILD_PARTITIONS", "value": '["a/b=1", "a/b=2"]'}]}
                    ]
                }
            }
        },
        "status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]},
    }
    assert job_partitions(job) == ["a/b=1", "a/b=2"]
    assert job_partitions({}) == []
    assert job_finished(job) is None
    job["status"]["conditions"].append({"type": "Complete", "status": "True"})
    assert job_finished(job) == "Complete"


def test_token_kubeconfig_keeps_the_cluster(tmp_path: Path) -> None:
    admin = tmp_path / "admin.kubeconfig"
    admin.write_text(
        yaml.safe_dump(
            {
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": "https://127.0.0.1:1",
                            "certificate-authority-data": "Q0E=",
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": "admin"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    doc = kubeconfig_with_token(admin, "secret", "bench")
    assert doc["clusters"][0]["cluster"] == {
        "server": "https://127.0.0.1:1",
        "certificate-authority-data": "Q0E=",
    }
    assert doc["users"] == [{"name": "bench", "user": {"token": "secret"}}]


def test_top_frames_can_limit_the_inclusive_list() -> None:
    lines = ["main (/x/runpy.py:1);plan (/x/databuild/domain/planner.py:5) 3"]
    profile = top_frames(lines, inclusive_in=("(databuild/",))
    assert profile.inclusive_frames == [("plan (databuild/domain/planner.py)", 3)]


def test_overlap_of_request_intervals() -> None:
    assert overlap([]) == (0, 0.0, 0.0)
    # one at a time, back to back: never two in flight
    assert overlap([(0.0, 1.0), (1.0, 2.0), (2.0, 2.5)]) == (1, 2.5, 2.5)
    most, busy, span = overlap([(0.0, 2.0), (0.5, 1.0), (0.6, 3.0), (5.0, 6.0)])
    assert (most, busy, span) == (3, 5.9, 6.0)


def test_tally_times_requests_but_not_watches() -> None:
    def timed(verb: str, start: str, end: str) -> str:
        event = json.loads(_event(verb, "jobs", 201))
        event["requestReceivedTimestamp"] = f"2026-01-01T00:00:{start}Z"
        event["stageTimestamp"] = f"2026-01-01T00:00:{end}Z"
        return json.dumps(event)

    counts = tally(
        [
            timed("create", "00.000000", "00.010000"),
            timed("create", "00.010000", "00.030000"),
            timed("watch", "00.000000", "50.000000"),
        ],
        OP,
    )
    assert counts.max_in_flight == 1
    assert counts.busy_seconds == pytest.approx(0.03)
    assert counts.span_seconds == pytest.approx(0.03)
    assert counts.mean_latency == pytest.approx(0.015)
    assert counts.mean_in_flight == pytest.approx(1.0)


def test_memory_hook_is_valid_python_and_its_output_parses(tmp_path: Path) -> None:
    install_hook(tmp_path)
    compile((tmp_path / "sitecustomize.py").read_text(), "sitecustomize.py", "exec")
    lines = [
        json.dumps({"site": "(total)", "size": 3 * 2**20, "count": 2}),
        json.dumps(
            {"site": "/x/operator/databuild/operator/store.py:42", "size": 2**20, "count": 9}
        ),
        json.dumps({"site": "/usr/lib/python3.11/json/decoder.py:353", "size": 10, "count": 1}),
    ]
    sites = parse_sites(lines)
    assert [s.site for s in sites] == [
        "(total)",
        "databuild/operator/store.py:42",
        "json/decoder.py:353",
    ]
    assert sites[1].size_bytes == 2**20
    assert sites[1].count == 9


def test_effective_flags_last_one_wins() -> None:
    defaults = {"--kube-api-qps": "20", "--concurrent-job-syncs": "5", "--kube-api-burst": "30"}
    argv = ["kcm", "--kube-api-qps=200", "--v", "2", "--kube-api-qps=300", "--kube-api-burst", "9"]
    assert effective_flags(argv, defaults) == {
        "--kube-api-qps": "300",
        "--concurrent-job-syncs": "5",
        "--kube-api-burst": "9",
    }
