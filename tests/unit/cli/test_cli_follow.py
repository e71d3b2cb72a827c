"""``logs``, ``wait`` and ``status --watch`` against the in-memory cluster."""

from __future__ import annotations

import json

import pytest

from databuild.cli.errors import ExitCode

from .fake import FakeCluster, cli, job_run, partition, sample, want

D2 = "daily/date=2025-01-02"


def _failed_daily() -> FakeCluster:
    """The sample, with daily-2 Failed after two attempts (both pods still kept)."""
    cluster = FakeCluster.of(sample())
    cluster.job_runs["daily-2"] = job_run(
        "daily-2", "daily", [D2], [], "Failed", attempt=2, failedAttempts=2, message="exit 1"
    )
    cluster.logs.add("daily-2", 1, "Failed", ["first try", "boom 1"])
    cluster.logs.add("daily-2", 2, "Failed", ["second try", "boom 2"])
    cluster.logs.add("daily-1", 1, "Succeeded", ["daily 1 ok"])
    return cluster


def test_logs_of_a_ref_print_the_last_attempt_of_its_builder() -> None:
    result = cli(_failed_daily(), "logs", D2)
    assert result.code == 0
    assert result.out == "second try\nboom 2\n"


def test_logs_attempt_tail_and_all_attempts() -> None:
    cluster = _failed_daily()
    assert cli(cluster, "logs", "daily-2", "--attempt", "1").out == "first try\nboom 1\n"
    assert cli(cluster, "logs", "daily-2", "--tail", "1").out == "boom 2\n"
    assert cluster.logs.reads[-1] == ("daily-2-2-pod", "main", 1, False)
    every = cli(cluster, "logs", "daily-2", "--all-attempts").out
    assert every.index("attempt 1 (Failed)") < every.index("boom 1") < every.index("attempt 2")


def test_logs_of_a_want_with_failed_show_only_failed_runs() -> None:
    result = cli(_failed_daily(), "logs", "daily-jan", "--failed")
    assert result.code == 0
    assert "boom 2" in result.out
    assert "daily 1 ok" not in result.out  # daily-1 succeeded
    both = cli(_failed_daily(), "logs", "daily-jan").out
    assert "daily 1 ok" in both and "==> JobRun daily-1 attempt 1" in both


def test_logs_say_why_when_the_pods_are_gone() -> None:
    cluster = _failed_daily()
    cluster.logs.pods_by_run.clear()
    result = cli(cluster, "logs", "daily-2")
    assert result.code == ExitCode.NOT_FOUND
    assert "batch Jobs were deleted" in result.err
    assert "its last message: exit 1" in result.err


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["logs", "nope"], ExitCode.NOT_FOUND, "no JobRun or Want named 'nope'"),
        (["logs", "bad ref/x"], ExitCode.USAGE, "bad ref"),
        (["logs", "none/x=1"], ExitCode.NOT_FOUND, "has no JobRun yet"),
        (["logs", "daily-2", "--tail", "-1"], ExitCode.USAGE, "--tail"),
        (["logs", "daily-2", "--attempt", "0"], ExitCode.USAGE, "counts from 1"),
        (["logs", "daily-jan", "-f"], ExitCode.USAGE, "-f follows one JobRun"),
    ],
)
def test_logs_bad_targets_say_what_is_wrong(argv: list[str], code: int, says: str) -> None:
    result = cli(_failed_daily(), *argv)
    assert result.code == code, result.err
    assert says in result.err


def test_logs_follow_streams_each_new_attempt_until_the_run_ends() -> None:
    cluster = FakeCluster.of(sample())
    cluster.job_runs["daily-2"] = job_run("daily-2", "daily", [D2], [], "Running", attempt=1)
    cluster.logs.add("daily-2", 1, "Running", ["first try"])
    steps = [
        lambda c: None,  # the command's first look
        lambda c: c.logs.add("daily-2", 2, "Running", ["second try"]),  # a retry starts
        lambda c: c.job_runs.update(
            {"daily-2": job_run("daily-2", "daily", [D2], [], "Failed", attempt=2)}
        ),
    ]
    cluster.on_snapshot = lambda c: steps.pop(0)(c) if steps else None
    result = cli(cluster, "logs", "daily-2", "-f")
    assert result.code == ExitCode.FAILED  # as `wait`: the build failed
    assert result.out.index("first try") < result.out.index("second try")
    assert [(pod, follow) for (pod, _, _, follow) in cluster.logs.reads] == [
        ("daily-2-1-pod", True),
        ("daily-2-2-pod", True),
    ]
    assert "waiting for its next attempt" in result.err


def test_failed_runs_carry_a_logs_hint_in_status_explain_and_wait() -> None:
    cluster = _failed_daily()
    hint = "databuild logs -n data daily-2 --failed"
    assert hint in cli(cluster, "status", "daily-jan").out
    assert hint in cli(cluster, "explain", D2).out
    failed = cluster.wants["daily-jan"]
    cluster.wants["daily-jan"] = failed.model_copy(
        update={"status": failed.status.model_copy(update={"state": "Failed"})}
    )
    result = cli(cluster, "wait", "daily-jan")
    assert result.code == ExitCode.FAILED
    assert hint in result.out
    assert "databuild logs" not in cli(cluster, "status", "raw-only").out  # nothing failed


def _two_wants(states_a: list[str], states_b: list[str]) -> FakeCluster:
    """Wants a and b move through their states, one step per snapshot."""
    cluster = FakeCluster()
    cluster.wants = {"a": want("a", ["a/x=1"], "Pending"), "b": want("b", ["b/x=1"], "Pending")}
    steps = {"a": list(states_a), "b": list(states_b)}

    def advance(c: FakeCluster) -> None:
        for name, remaining in steps.items():
            if remaining:
                old = c.wants[name]
                status = old.status.model_copy(update={"state": remaining.pop(0)})
                c.wants[name] = old.model_copy(update={"status": status})

    cluster.on_snapshot = advance
    return cluster


def test_wait_exits_1_as_soon_as_one_want_fails() -> None:
    cluster = _two_wants(["Building", "Failed"], ["Building"] * 50)
    result = cli(cluster, "wait", "a", "b")
    assert result.code == ExitCode.FAILED
    assert cluster.snapshots == 2  # it did not wait for b
    assert cluster.followed == [["a", "b"]]


@pytest.mark.parametrize(
    ("a", "b", "code"),
    [
        (["Successful"], ["Building", "Successful"], ExitCode.OK),
        (["Expired"], ["Building", "Successful"], ExitCode.EXPIRED),
    ],
)
def test_wait_for_every_want_to_finish(a: list[str], b: list[str], code: int) -> None:
    cluster = _two_wants(a, b)
    result = cli(cluster, "wait", "a", "b", "-o", "json")
    assert result.code == code
    assert [d["name"] for d in json.loads(result.out)] == ["a", "b"]


def test_wait_for_an_unknown_want_is_not_found_and_a_deleted_one_stops() -> None:
    cluster = FakeCluster()
    cluster.wants = {"a": want("a", ["a/x=1"], "Building")}
    deleted = {"n": 0}

    def delete_a(c: FakeCluster) -> None:
        deleted["n"] += 1
        if deleted["n"] == 3:
            c.wants.pop("a")

    cluster.on_snapshot = delete_a
    result = cli(cluster, "wait", "a")
    assert result.code == ExitCode.NOT_FOUND
    assert "was deleted" in result.err


def test_status_watch_prints_on_changes_and_exits_when_asked() -> None:
    cluster = _two_wants(["Building", "Building", "Building", "Successful"], [])
    cluster.partitions = {"a/x=1": partition("a/x=1", "Building", "run-a")}
    result = cli(cluster, "status", "a", "--watch", "--exit")
    assert result.code == 0
    assert result.out.count("Want a   Building") == 1  # unchanged trees are not repeated
    assert "Want a   Successful" in result.out


def test_status_all_namespaces_shows_each_namespace() -> None:
    cluster = FakeCluster.of(sample())
    other = FakeCluster(namespace="other")
    other.wants = {"o": want("o", ["o/x=1"], "Building")}
    cluster.neighbours = {"other": other}
    text = cli(cluster, "status", "-A").out
    assert text.index("Namespace data:") < text.index("Want daily-jan")
    assert text.index("Namespace other:") < text.index("Want o")
    data = json.loads(cli(cluster, "status", "-A", "-o", "json").out)
    assert {(d["namespace"], d["name"]) for d in data} >= {("data", "daily-jan"), ("data", "o")}
    assert cli(cluster, "status", "-A", "daily-jan").code == ExitCode.USAGE


def test_output_name_and_wide() -> None:
    cluster = _failed_daily()
    names = cli(cluster, "status", "-o", "name").out.splitlines()
    assert names == ["want.databuild.dev/raw-only", "want.databuild.dev/daily-jan"]  # oldest first
    created = cli(FakeCluster(), "want", "a/x=1", "-o", "name").out
    assert created == "want.databuild.dev/want-abcde\n"
    wide = cli(cluster, "status", "daily-jan", "-o", "wide").out
    assert "attempt 1   daily-2-1   Failed   exit code 1   took 10s" in wide
    assert "daily-2-1" not in cli(cluster, "status", "daily-jan").out
