"""``databuild backfill``, ``retry --backfill NAME --failed`` and ``status --backfill``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from databuild.adapters.resources import Want
from databuild.cli.commands.backfill import BACKFILL_LABEL, plan_backfill
from databuild.cli.errors import CliError, ExitCode

from .fake import FakeCluster, cli, partition

JAN1 = datetime(2025, 1, 1, tzinfo=UTC)


def test_a_quarter_is_one_want_per_day_with_deterministic_names() -> None:
    plan = plan_backfill(
        ["daily/date={date}"], JAN1, datetime(2025, 3, 31, tzinfo=UTC), timedelta(days=1)
    )
    assert len(plan.wants) == 90
    assert plan.partitions == 90
    first = next(iter(plan.wants))
    assert first == f"{plan.name}-0000"
    assert plan.wants[first] == ["daily/date=2025-01-01"]
    assert plan.wants[f"{plan.name}-0089"] == ["daily/date=2025-03-31"]
    again = plan_backfill(
        ["daily/date={date}"], JAN1, datetime(2025, 3, 31, tzinfo=UTC), timedelta(days=1)
    )
    assert again.name == plan.name


def test_per_want_groups_steps_and_never_exceeds_1000_partitions() -> None:
    plan = plan_backfill(
        ["a/{datetime}", "b/{datetime}"],
        JAN1,
        JAN1 + timedelta(hours=999),
        timedelta(hours=1),
        per_want=10_000,
    )
    sizes = [len(refs) for refs in plan.wants.values()]
    assert sizes == [1000, 1000]


@pytest.mark.parametrize(
    ("templates", "end", "message"),
    [
        (["x/{day}"], JAN1, "TEMPLATE"),
        (["x/{date}"], JAN1 - timedelta(days=1), "--to is before --from"),
    ],
)
def test_bad_arguments_say_what_is_wrong(templates: list[str], end: datetime, message: str) -> None:
    with pytest.raises(CliError, match=message) as caught:
        plan_backfill(templates, JAN1, end, timedelta(days=1))
    assert caught.value.code == ExitCode.USAGE


def test_backfill_creates_labelled_wants_and_a_rerun_creates_none() -> None:
    cluster = FakeCluster()
    argv = (
        "backfill",
        "daily/date={date}",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-03",
        "--name",
        "q1",
        "--priority",
        "-1",
    )
    result = cli(cluster, *argv)
    assert result.code == 0, result.err
    assert result.out == "backfill q1: 3 Wants, 3 partitions (3 Wants created)\n"
    assert sorted(cluster.wants) == ["q1-0000", "q1-0001", "q1-0002"]
    assert all(w.metadata.labels[BACKFILL_LABEL] == "q1" for w in cluster.wants.values())
    assert {w.spec.priority for w in cluster.wants.values()} == {-1}
    assert cli(cluster, *argv).out.endswith("(0 Wants created)\n")
    assert len(cluster.created) == 3


def _finished(cluster: FakeCluster, name: str, state: str) -> None:
    want = cluster.wants[name]
    cluster.wants[name] = Want.model_validate(
        {**want.model_dump(by_alias=True, mode="json"), "status": {"state": state}}
    )


def test_retry_failed_asks_again_only_for_what_failed_and_status_shows_the_whole() -> None:
    cluster = FakeCluster()
    cli(
        cluster,
        "backfill",
        "daily/date={date}",
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-03",
        "--name",
        "q1",
    )
    for name, state in (
        ("q1-0000", "Successful"),
        ("q1-0001", "Failed"),
        ("q1-0002", "Successful"),
    ):
        _finished(cluster, name, state)
    cluster.partitions = {
        p.spec.ref: p
        for p in (
            partition("daily/date=2025-01-01", "Live"),
            partition("daily/date=2025-01-02", "Failed"),
            partition("daily/date=2025-01-03", "Live"),
        )
    }
    status = cli(cluster, "status", "--backfill", "q1", "-o", "json")
    assert json.loads(status.out)["notBuilt"] == ["daily/date=2025-01-02"]
    result = cli(cluster, "retry", "--backfill", "q1", "--failed")
    assert result.code == 0, result.err
    retry = cluster.created[-1]
    assert retry["spec"]["partitions"] == ["daily/date=2025-01-02"]
    assert retry["metadata"]["labels"] == {
        BACKFILL_LABEL: "q1",
        "databuild.dev/retry-of": "q1-0001",
    }
    # The failed Want is superseded by its retry: the backfill is building again.
    table = cli(cluster, "status", "--backfill", "q1").out
    assert table.splitlines()[0] == (
        "backfill q1: Wants 1 Pending, 2 Successful | partitions 2/3 Live, 1 Failed"
    )
    # A second retry finds nothing new to ask for.
    assert (
        cli(cluster, "retry", "--backfill", "q1", "--failed").out == "backfill q1: nothing failed\n"
    )


def test_retry_backfill_needs_failed_and_an_unknown_backfill_is_not_found() -> None:
    assert cli(FakeCluster(), "retry", "--backfill", "q1").code == ExitCode.USAGE
    assert cli(FakeCluster(), "retry", "--backfill", "q1", "--failed").code == ExitCode.NOT_FOUND
