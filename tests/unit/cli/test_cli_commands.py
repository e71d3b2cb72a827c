"""Commands that write (want, taint, retry), --wait, and the BEL commands."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from databuild.adapters.bel import BelEvent, open_store
from databuild.adapters.resources import Want
from databuild.cli.errors import ExitCode

from .fake import NOW, FakeCluster, cli, sample


def test_want_creates_a_want_with_a_generated_name() -> None:
    cluster = FakeCluster()
    result = cli(cluster, "want", "a/x=1", "b/x=1", "a/x=1", "--ttl", "2h", "--sla", "30m")
    assert result.code == 0
    assert result.out == "want.databuild.dev/want-abcde created\n"
    (manifest,) = cluster.created
    assert manifest["metadata"] == {"generateName": "want-"}
    assert manifest["spec"] == {
        "partitions": ["a/x=1", "b/x=1"],
        "ttlSeconds": 7200,
        "slaSeconds": 1800,
    }
    assert manifest["apiVersion"] == "databuild.dev/v1alpha1"


def test_want_with_a_name_and_json_output() -> None:
    cluster = FakeCluster()
    result = cli(cluster, "want", "a/x=1", "--name", "mine", "-o", "json")
    assert json.loads(result.out)["metadata"]["name"] == "mine"


def test_want_priority_is_set_and_checked_before_anything_is_created(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = FakeCluster()
    assert cli(cluster, "want", "a/x=1", "--priority", "-5").code == 0
    assert cluster.created[0]["spec"]["priority"] == -5
    result = cli(cluster, "want", "a/x=2", "--priority", "5000")
    assert result.code == ExitCode.USAGE
    assert "--priority: 5000 is out of range: use -1000 to 1000" in capsys.readouterr().err
    assert len(cluster.created) == 1


def _progressing(states: list[str]) -> FakeCluster:
    """A cluster whose Want 'w' moves through `states`, one per poll."""
    cluster = FakeCluster()
    remaining = list(states)

    def advance(c: FakeCluster) -> None:
        if not remaining or "w" not in c.wants:
            return
        state = remaining.pop(0)
        old = c.wants["w"]
        status = old.status.model_copy(update={"state": state, "progress": "0/1"})
        c.wants["w"] = old.model_copy(update={"status": status})

    cluster.on_snapshot = advance
    return cluster


@pytest.mark.parametrize(
    ("final", "code"),
    [("Successful", ExitCode.OK), ("Failed", ExitCode.FAILED), ("Expired", ExitCode.EXPIRED)],
)
def test_want_wait_exit_code_tells_the_terminal_state(final: str, code: ExitCode) -> None:
    cluster = _progressing(["Pending", "Building", "Building", final])
    result = cli(cluster, "want", "a/x=1", "--name", "w", "--wait")
    assert result.code == code
    assert cluster.snapshots == 4
    assert "w: Building" in result.err  # progress on stderr
    assert f"Want w   {final}" in result.out  # the final tree on stdout


def test_want_wait_json_prints_the_final_status() -> None:
    cluster = _progressing(["Building", "Successful"])
    result = cli(cluster, "want", "a/x=1", "--name", "w", "--wait", "-o", "json")
    assert result.code == 0
    assert json.loads(result.out)["state"] == "Successful"


def test_want_wait_times_out_with_exit_3() -> None:
    cluster = _progressing(["Building"] * 100)
    clock = iter(NOW + timedelta(seconds=i) for i in range(1000))
    result = cli(
        cluster,
        "want",
        "a/x=1",
        "--name",
        "w",
        "--wait",
        "--timeout",
        "5s",
        clock=lambda: next(clock),
    )
    assert result.code == ExitCode.EXPIRED
    assert "timed out" in result.err
    assert cluster.snapshots < 10


def test_want_wait_prints_a_progress_line_only_when_it_changes() -> None:
    cluster = _progressing(["Building", "Building", "Building", "Successful"])
    result = cli(cluster, "want", "a/x=1", "--name", "w", "--wait")
    assert result.err.count("w: Building") == 1


def test_taint_creates_a_request_and_names_what_follows() -> None:
    cluster = FakeCluster.of(sample())
    result = cli(cluster, "taint", "raw/date=2025-01-01", "--reason", "bad rows", "-o", "json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["downstream"] == ["clean/date=2025-01-01", "daily/date=2025-01-01"]
    assert data["applied"] is False
    ((name, request),) = cluster.taint_requests.items()
    assert name.startswith("taint-") and data["name"] == name
    assert request.spec.partitions == ["raw/date=2025-01-01"]
    assert request.spec.reason == "bad rows"


def _apply(cluster: FakeCluster, name: str) -> None:
    """Play the operator: the request's status says the ref was tainted."""
    request = cluster.taint_requests[name]
    status = request.status.model_copy(
        update={"tainted": list(request.spec.partitions), "observed_generation": 1}
    )
    cluster.taint_requests[name] = request.model_copy(update={"status": status})


def test_taint_wait_shows_what_the_operator_tainted() -> None:
    cluster = FakeCluster.of(sample())
    cluster.on_taint_request = _apply
    result = cli(cluster, "taint", "raw/date=2025-01-01", "--name", "t1", "--wait")
    assert result.code == 0, result.err
    assert "tainted: raw/date=2025-01-01" in result.out


def test_taint_wait_times_out_when_nothing_applies_it() -> None:
    cluster = FakeCluster.of(sample())
    result = cli(cluster, "taint", "raw/date=2025-01-01", "--wait", "--timeout", "0s")
    assert result.code == ExitCode.EXPIRED
    assert "not applied yet" in result.err


def test_taint_refuses_a_partition_that_is_not_live() -> None:
    cluster = FakeCluster.of(sample())
    result = cli(cluster, "taint", "daily/date=2025-01-02")
    assert result.code == ExitCode.FAILED
    assert "only a Live partition" in result.err
    assert cluster.taint_requests == {}
    assert cli(cluster, "taint", "none/x=1").code == ExitCode.NOT_FOUND


def _with_failed_want(cluster: FakeCluster) -> FakeCluster:
    old = cluster.wants["daily-jan"]
    status = old.status.model_copy(update={"state": "Failed"})
    spec = old.spec.model_copy(update={"ttl_seconds": 3600, "priority": 4})
    cluster.wants["daily-jan"] = old.model_copy(update={"status": status, "spec": spec})
    return cluster


def test_retry_creates_a_new_want_for_the_same_partitions() -> None:
    cluster = _with_failed_want(FakeCluster.of(sample()))
    result = cli(cluster, "retry", "daily-jan")
    assert result.code == 0
    assert "daily-jan-retry-abcde created" in result.out
    (manifest,) = cluster.created
    assert manifest["spec"]["partitions"] == ["daily/date=2025-01-01", "daily/date=2025-01-02"]
    assert manifest["spec"]["ttlSeconds"] == 3600
    assert manifest["spec"]["priority"] == 4  # a retry keeps its place in the queue
    assert manifest["metadata"]["labels"] == {"databuild.dev/retry-of": "daily-jan"}
    assert isinstance(cluster.wants["daily-jan-retry-abcde"], Want)


def test_retry_refuses_a_want_that_is_not_failed() -> None:
    cluster = FakeCluster.of(sample())
    building = cli(cluster, "retry", "daily-jan")
    assert building.code == ExitCode.FAILED
    assert "still being worked on" in building.err
    done = cli(cluster, "retry", "raw-only")
    assert done.code == ExitCode.FAILED
    assert "taint them first" in done.err
    assert cluster.created == []


def test_retry_rebuilds_a_successful_want_whose_partition_was_tainted() -> None:
    cluster = FakeCluster.of(sample())
    ref = "raw/date=2025-01-01"
    part = cluster.partitions[ref]
    status = part.status.model_copy(update={"state": "Tainted"})
    cluster.partitions[ref] = part.model_copy(update={"status": status})
    result = cli(cluster, "retry", "raw-only")
    assert result.code == 0, result.err
    (manifest,) = cluster.created
    assert manifest["spec"]["partitions"] == [ref]
    assert manifest["metadata"]["labels"] == {"databuild.dev/retry-of": "raw-only"}


# --- the Build Event Log -------------------------------------------------------------------


@pytest.fixture
def bel_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'bel.db'}"
    store = open_store(url)
    t = NOW - timedelta(minutes=10)
    store.append(
        [
            BelEvent("data", "Want", "w", "Pending", "Building", "Building", t),
            BelEvent("data", "Partition", "p1", None, "Missing", "Created", t, refs=("raw/d=1",)),
            BelEvent(
                "data",
                "JobRun",
                "raw-1",
                None,
                "Queued",
                "Created",
                t,
                refs=("raw/d=1",),
                job_definition="raw",
            ),
            BelEvent(
                "data",
                "JobRun",
                "raw-1",
                "Queued",
                "Running",
                "Started",
                t + timedelta(minutes=1),
                refs=("raw/d=1",),
                job_definition="raw",
                details={"batchJob": "raw-1-1"},
            ),
            BelEvent(
                "data",
                "JobRun",
                "raw-1",
                "Running",
                "Failed",
                "Failed",
                t + timedelta(minutes=2),
                refs=("raw/d=1",),
                job_definition="raw",
            ),
            BelEvent("other", "Want", "v", "Pending", "Building", "Building", t),
        ]
    )
    store.close()
    return url


def test_events_table_filters_and_json(bel_url: str) -> None:
    cluster = FakeCluster()
    table = cli(cluster, "events", "--bel-url", bel_url)
    assert table.code == 0
    lines = table.out.splitlines()
    assert lines[0].split() == ["TIME", "KIND", "NAME", "FROM", "TO", "REASON", "DETAILS"]
    assert len(lines) == 6  # the namespace of the context only
    assert "batchJob=raw-1-1" in table.out
    failed = json.loads(
        cli(cluster, "events", "--bel-url", bel_url, "--state", "Failed", "-o", "json").out
    )
    assert [(e["kind"], e["name"]) for e in failed] == [("JobRun", "raw-1")]
    by_job = cli(cluster, "events", "--bel-url", bel_url, "--job", "raw", "-o", "json")
    assert len(json.loads(by_job.out)) == 3
    by_ref = cli(cluster, "events", "--bel-url", bel_url, "--ref", "raw/*", "-o", "yaml")
    assert len(yaml.safe_load(by_ref.out)) == 4
    recent = cli(cluster, "events", "--bel-url", bel_url, "--since", "9m", "-o", "json")
    assert [e["to"] for e in json.loads(recent.out)] == ["Running", "Failed"]
    everywhere = cli(cluster, "events", "--bel-url", bel_url, "-A")
    assert everywhere.out.splitlines()[0].startswith("NAMESPACE")
    assert len(everywhere.out.splitlines()) == 7


def test_events_need_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABUILD_BEL_URL", raising=False)
    result = cli(FakeCluster(), "events")
    assert result.code == ExitCode.USAGE
    assert "--bel-url" in result.err
    missing = cli(FakeCluster(), "events", "--bel-url", "sqlite:///nowhere.db")
    assert missing.code == ExitCode.NOT_FOUND
    assert not (tmp_path / "nowhere.db").exists()  # reading never creates a store


def test_events_url_from_the_environment(bel_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABUILD_BEL_URL", bel_url)
    assert len(json.loads(cli(FakeCluster(), "events", "-o", "json").out)) == 5


def test_events_follow_prints_new_events_as_they_arrive(bel_url: str) -> None:
    store = open_store(bel_url)
    later = NOW + timedelta(minutes=1)
    arriving = [
        BelEvent("data", "Want", "w", "Building", "Failed", "BuildFailed", later),
        BelEvent("data", "Want", "x", "Pending", "Building", "Building", later),
    ]

    def sleep(_: float) -> None:
        if arriving:
            store.append([arriving.pop(0)])

    result = cli(
        FakeCluster(),
        "events",
        "--bel-url",
        bel_url,
        "--kind",
        "Want",
        "--follow",
        "--limit",
        "3",
        "-o",
        "json",
        sleep=sleep,
    )
    store.close()
    assert result.code == 0
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [(e["name"], e["to"]) for e in lines] == [
        ("w", "Building"),
        ("w", "Failed"),
        ("x", "Building"),
    ]


def test_history_replays_to_a_time(bel_url: str) -> None:
    cluster = FakeCluster()
    at = (NOW - timedelta(minutes=8, seconds=30)).isoformat()
    data = json.loads(cli(cluster, "history", "--bel-url", bel_url, "--at", at, "-o", "json").out)
    states = {(e["kind"], e["name"]): e["state"] for e in data["entities"]}
    assert states == {
        ("Want", "w"): "Building",
        ("Partition", "p1"): "Missing",
        ("JobRun", "raw-1"): "Running",
    }
    now = cli(cluster, "history", "--bel-url", bel_url, "--at", "0s", "--kind", "JobRun")
    assert now.out.split() == ["KIND", "NAME", "STATE", "JobRun", "raw-1", "Failed"]
    before = cli(cluster, "history", "--bel-url", bel_url, "--at", "1h")
    assert "nothing existed yet" in before.out


def test_explain_adds_history_when_a_store_is_configured(bel_url: str) -> None:
    cluster = FakeCluster.of(sample())
    result = cli(cluster, "explain", "raw/date=2025-01-01", "--bel-url", bel_url)
    history = result.out.split("History (Build Event Log):")[1]
    # The builder's transitions; nothing about other entities or refs.
    assert "JobRun raw-1  Queued -> Running  Started" in history
    assert "JobRun raw-1  Running -> Failed  Failed" in history
    assert "Want" not in history
    assert "Partition p1" not in history
    other = cli(cluster, "explain", "clean/date=2025-01-01", "--bel-url", bel_url)
    assert "no events recorded" in other.out
