"""Command-line parsing, usage errors and exit codes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import connect
from databuild.cli.main import build_parser
from databuild.cli.render import age, parse_duration, parse_time, table

from .fake import NOW, FakeCluster, cli, sample


def test_global_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["-n", "ns1", "-o", "json", "status"])
    after = parser.parse_args(["status", "-n", "ns1", "-o", "json"])
    for args in (before, after):
        assert args.namespace == "ns1"
        assert args.output == "json"
    plain = parser.parse_args(["status"])
    assert plain.namespace is None
    assert plain.output == "table"
    assert plain.kubeconfig is None


def test_kubectl_style_options() -> None:
    args = build_parser().parse_args(
        ["want", "a/b", "c/d", "--kubeconfig", "kc", "--context", "dev", "--wait", "--ttl", "2h"]
    )
    assert args.refs == ["a/b", "c/d"]
    assert args.kubeconfig == Path("kc")
    assert args.context == "dev"
    assert args.wait is True
    assert args.ttl == "2h"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["want"],
        ["status", "-o", "xml"],
        ["graph", "w", "-o", "png"],
        ["history"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    result = cli(FakeCluster(), *argv)
    assert result.code == 2
    assert "usage:" in capsys.readouterr().err


def test_an_invalid_ref_is_a_usage_error_that_says_why() -> None:
    result = cli(FakeCluster(), "want", "bad ref")
    assert result.code == ExitCode.USAGE
    assert "whitespace" in result.err


def test_an_invalid_duration_is_a_usage_error() -> None:
    result = cli(FakeCluster(), "want", "a/b", "--ttl", "soon")
    assert result.code == ExitCode.USAGE
    assert "invalid duration" in result.err


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for line in ("0  success", "1  the Want failed", "2  usage", "3  the Want expired"):
        assert line in out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_times_absolute_or_ago() -> None:
    assert parse_time("2025-01-02T11:00:00Z", NOW) == NOW - timedelta(hours=1)
    assert parse_time("2025-01-02T11:00:00", NOW) == NOW - timedelta(hours=1)
    assert parse_time("2025-01-02T12:00:00+01:00", NOW) == NOW - timedelta(hours=1)
    assert parse_time("1h", NOW) == NOW - timedelta(hours=1)
    with pytest.raises(CliError) as exc:
        parse_time("yesterday-ish", NOW)
    assert exc.value.code == ExitCode.USAGE


def test_ages_and_tables() -> None:
    assert age(NOW - timedelta(seconds=5), NOW) == "5s"
    assert age(NOW - timedelta(minutes=10), NOW) == "10m"
    assert age(NOW - timedelta(hours=5), NOW) == "5h"
    assert age(NOW - timedelta(days=3), NOW) == "3d"
    assert age(None, NOW) == "-"
    assert table(["A", "LONGER"], [["xx", "y"]]) == "A    LONGER\nxx   y"


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4, 5]


def test_not_found_exits_4() -> None:
    cluster = FakeCluster.of(sample())
    assert cli(cluster, "status", "nope").code == 4
    assert cli(cluster, "explain", "nope/x=1").code == ExitCode.NOT_FOUND
    assert cli(cluster, "graph", "nope").code == ExitCode.NOT_FOUND
    assert cli(cluster, "retry", "nope").code == ExitCode.NOT_FOUND


def test_kubeconfig_context_and_namespace(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: first}
- name: two
  context: {cluster: c, user: u}
current-context: one
"""
    )
    assert connect(kubeconfig, None, None).namespace == "first"
    assert connect(kubeconfig, "two", None).namespace == "default"
    assert connect(kubeconfig, "one", "explicit").namespace == "explicit"
    with pytest.raises(CliError) as exc:
        connect(tmp_path / "missing", None, None)
    assert exc.value.code == ExitCode.UNAVAILABLE


def test_an_unreachable_cluster_exits_5(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    result = cli(None, "--kubeconfig", str(kubeconfig), "status")
    assert result.code == 5
    assert "cannot reach the API server" in result.err
