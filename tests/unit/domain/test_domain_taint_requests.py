"""The planner acts on taint requests: Live -> Tainted along lineage, and rebuilds."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timedelta

from domain_builders import T0, Script, chain_world, jd, kinds, states

from databuild.domain.actions import (
    CreateBatchJob,
    CreateJobRun,
    DeleteBatchJob,
    TransitionJobRun,
    TransitionPartition,
    write_lanes,
)
from databuild.domain.events import Event
from databuild.domain.planner import Planner, plan
from databuild.domain.refs import PartitionRef
from databuild.domain.replay import replay
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.states import PartitionLive, PartitionMissing, PartitionTainted
from databuild.domain.taint import TaintOutcome, latest_request, request_outcome
from databuild.domain.world import Partition, TaintRequest, World


def _ladder() -> World:
    """raw <- clean <- agg <- report: three levels of lineage above raw."""
    return World(
        job_definitions={
            "raw": jd("raw", "raw/{d}"),
            "clean": jd("clean", "clean/{d}", ["raw/{d}"]),
            "agg": jd("agg", "agg/{d}", ["clean/{d}"]),
            "report": jd("report", "report/{d}", ["agg/{d}"]),
        }
    )


def _request(sim: Simulator, ref: str, reason: str, at: datetime | None = None) -> None:
    """What ``databuild taint`` writes: the request on the Partition."""
    part = sim.world.partitions[ref]
    request = TaintRequest(reason, sim.now if at is None else at)
    parts = {**sim.world.partitions, ref: dataclasses.replace(part, taint_request=request)}
    sim.world = dataclasses.replace(sim.world, partitions=parts)


def _taints(log: list[Event]) -> list[Event]:
    return [e for e in log if e.to_state == "Tainted"]


def _built(sim: Simulator, script: Script, want: str, refs: list[str]) -> None:
    sim.add_want(want, refs)
    sim.run_until_quiet()
    assert sim.world.wants[want].state.STATE == "Successful"
    script.calls.clear()
    sim.log.clear()
    sim.advance(10)


def test_a_request_taints_a_live_partition_once() -> None:
    script = Script()
    sim = Simulator(World(job_definitions={"raw": jd("raw", "raw/{d}")}), T0, script)
    _built(sim, script, "w", ["raw/1"])
    _request(sim, "raw/1", "bad source file")
    result = sim.plan()
    assert kinds(result.actions) == ["TransitionPartition", "UpdateWantStatus"]
    action = result.actions[0]
    assert isinstance(action, TransitionPartition)
    assert (action.from_state, action.state.STATE) == ("Live", "Tainted")
    assert action.event.reason == "TaintRequested"
    assert action.state.message == "bad source file"
    assert plan(sim.world, sim.now).actions == ()  # a fixpoint: the request is not reapplied
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"  # terminal: nothing rebuilds
    assert sim.world.partitions["raw/1"].state.STATE == "Tainted"
    assert script.calls == []


def test_a_request_older_than_the_data_is_ignored() -> None:
    script = Script()
    sim = Simulator(World(job_definitions={"raw": jd("raw", "raw/{d}")}), T0, script)
    _built(sim, script, "w", ["raw/1"])
    live_since = sim.world.partitions["raw/1"].state.live_since
    assert live_since is not None
    _request(sim, "raw/1", "old news", at=live_since - timedelta(seconds=1))
    assert plan(sim.world, sim.now).actions == ()
    _request(sim, "raw/1", "same instant", at=live_since)
    assert plan(sim.world, sim.now).actions == ()


def test_a_request_on_a_partition_that_is_not_live_waits_for_nothing() -> None:
    script = Script(hold=["raw/1"])
    sim = Simulator(World(job_definitions={"raw": jd("raw", "raw/{d}")}), T0, script)
    sim.add_want("w", ["raw/1"])
    sim.run_until_quiet()
    assert sim.world.partitions["raw/1"].state.STATE == "Building"
    _request(sim, "raw/1", "too early")
    assert plan(sim.world, sim.now).actions == ()
    script.hold.clear()
    sim.advance(1)
    sim.run_until_quiet()
    # Built after the request: the new data is not what the request was about.
    assert sim.world.partitions["raw/1"].state.STATE == "Live"
    assert _taints(sim.log) == []


def test_the_cascade_follows_lineage_three_levels_up_and_spares_the_rest() -> None:
    script = Script()
    sim = Simulator(_ladder(), T0, script)
    _built(sim, script, "w", ["report/1", "raw/2"])
    _request(sim, "clean/1", "bad join")
    result = sim.plan()
    tainted = [a for a in result.actions if isinstance(a, TransitionPartition)]
    assert [(a.ref, a.event.reason) for a in tainted] == [
        ("clean/1", "TaintRequested"),
        ("agg/1", "UpstreamTainted"),
        ("report/1", "UpstreamTainted"),
    ]
    assert tainted[1].event.details["input"] == "clean/1"
    assert tainted[1].state.message == "built from tainted clean/1: bad join"
    assert tainted[2].event.details["input"] == "agg/1"
    assert tainted[2].state.message == "built from tainted agg/1 (tainted with clean/1): bad join"
    parts = {r: p.state.STATE for r, p in sim.world.partitions.items()}
    assert parts == {
        "raw/1": "Live",
        "clean/1": "Tainted",
        "agg/1": "Tainted",
        "report/1": "Tainted",
        "raw/2": "Live",
    }
    # The Want is Successful: only its counts change, nothing is rebuilt.
    assert kinds(result.actions)[3:] == ["UpdateWantStatus"]


def test_a_diamond_is_tainted_once_per_partition() -> None:
    script = Script()
    sim = Simulator(chain_world(), T0, script)  # daily reads clean and raw
    _built(sim, script, "w", ["daily/date=1"])
    _request(sim, "raw/date=1", "truncated file")
    sim.plan()
    assert Counter(e.name for e in _taints(sim.log)) == {
        sim.world.partitions[r].name: 1 for r in ("raw/date=1", "clean/date=1", "daily/date=1")
    }
    assert {p.state.STATE for p in sim.world.partitions.values()} == {"Tainted"}
    assert plan(sim.world, sim.now).actions == ()


def test_a_partition_tainted_by_hand_still_taints_what_was_built_from_it() -> None:
    """The cascade starts from every Tainted partition, not only from requests."""
    script = Script()
    sim = Simulator(_ladder(), T0, script)
    _built(sim, script, "w", ["report/1"])
    part = sim.world.partitions["agg/1"]
    state, _ = part.state.taint("agg/1", at=sim.now, message="by hand")  # type: ignore[union-attr]
    sim.world = dataclasses.replace(
        sim.world,
        partitions={**sim.world.partitions, "agg/1": dataclasses.replace(part, state=state)},
    )
    action = sim.plan().actions[0]
    assert isinstance(action, TransitionPartition) and action.ref == "report/1"
    assert action.event.reason == "UpstreamTainted"


def test_an_active_want_rebuilds_each_tainted_partition_exactly_once() -> None:
    """report/1 is still being built when clean/1 is tainted: its run is cancelled."""
    script = Script(hold=["report/1"])
    sim = Simulator(_ladder(), T0, script)
    sim.add_want("w", ["report/1"])
    sim.add_want("side", ["raw/2"])
    sim.run_until_quiet()
    assert sim.world.partitions["agg/1"].state.STATE == "Live"
    assert sim.world.partitions["report/1"].state.STATE == "Building"
    assert sim.world.wants["w"].state.STATE == "Building"
    first_report_run = sim.world.partitions["report/1"].state.built_by
    script.calls.clear()
    sim.advance(10)
    _request(sim, "clean/1", "bad join")
    result = sim.plan()
    deleted = [a for a in result.actions if isinstance(a, DeleteBatchJob)]
    assert [a.job_run for a in deleted] == [first_report_run]
    cancelled = [
        a
        for a in result.actions
        if isinstance(a, TransitionJobRun) and a.state.STATE == "Cancelled"
    ]
    assert [(a.name, a.event.reason) for a in cancelled] == [(first_report_run, "InputTainted")]
    assert cancelled[0].event.details["message"] == "input agg/1 was tainted while the job ran"
    script.hold.clear()
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    assert {r: p.state.STATE for r, p in sim.world.partitions.items()} == {
        "raw/1": "Live",
        "clean/1": "Live",
        "agg/1": "Live",
        "report/1": "Live",
        "raw/2": "Live",
    }
    # Each partition built from the bad data is built again once; raw is not rebuilt.
    assert Counter(ref for ref, _ in script.calls) == {"clean/1": 1, "agg/1": 1, "report/1": 1}
    assert Counter(e.reason for e in _taints(sim.log)) == {
        "TaintRequested": 1,
        "UpstreamTainted": 1,
    }
    # Rebuilt after the request: not tainted again, however often it is planned.
    sim.advance(60)
    assert plan(sim.world, sim.now).actions == ()
    assert sim.world.partitions["clean/1"].taint_request is not None


def test_a_run_that_finished_on_tainted_input_is_tainted_and_rebuilt() -> None:
    """The batch Job succeeded before the plan saw the taint: Live, then Tainted."""
    script = Script(hold=["report/1"])
    sim = Simulator(_ladder(), T0, script)
    sim.add_want("w", ["report/1"])
    sim.run_until_quiet()
    script.hold.clear()
    sim.finish_jobs()  # report's job succeeds, not yet planned
    sim.advance(1)
    _request(sim, "clean/1", "bad join")
    result = sim.plan()
    report = [
        (a.from_state, a.state.STATE, a.event.reason)
        for a in result.actions
        if isinstance(a, TransitionPartition) and a.ref == "report/1"
    ]
    assert report == [
        ("Building", "Live", "Built"),
        ("Live", "Tainted", "UpstreamTainted"),
        ("Tainted", "Building", "BuildStarted"),
    ]
    sim.run_until_quiet()
    assert sim.world.partitions["report/1"].state.STATE == "Live"
    assert sim.world.wants["w"].state.STATE == "Successful"


def test_a_crash_anywhere_in_the_cascade_converges_to_the_same_end() -> None:
    def scenario() -> tuple[Simulator, Script]:
        script = Script(hold=["report/1"])
        sim = Simulator(_ladder(), T0, script)
        sim.add_want("w", ["report/1", "raw/2"])
        sim.run_until_quiet()
        sim.advance(10)
        _request(sim, "raw/1", "bad source file")
        return sim, script

    reference, script = scenario()
    actions = plan(reference.world, reference.now).actions
    assert len(actions) > 5
    script.hold.clear()
    reference.run_until_quiet()
    expected = states(reference.world)
    assert expected["want:w"] == "Successful"
    for cut in range(len(actions) + 1):
        sim, script = scenario()
        sim.world = apply_actions(sim.world, actions[:cut], sim.log)  # then kill -9
        sim.plan()  # a restarted operator plans from what was written
        script.hold.clear()
        sim.run_until_quiet()
        assert states(sim.world) == expected, cut
        # Every partition is tainted exactly once, whatever the cut (report/1 was not
        # Live: its run was cancelled instead).
        counts = Counter(e.name for e in _taints(sim.log))
        assert sorted(counts.values()) == [1, 1, 1], (cut, counts)
        assert replay(sim.log) == replay(reference.log), cut


def test_the_incremental_planner_acts_on_a_request_like_plan() -> None:
    script = Script()
    sim = Simulator(_ladder(), T0, script)
    _built(sim, script, "w", ["agg/1"])
    sim.add_want("again", ["agg/1"])  # not terminal yet when the request comes
    planner = Planner(sim.world)
    sim.world = apply_actions(sim.world, planner.plan(sim.now).actions)
    _request(sim, "raw/1", "bad")
    planner.observe_partition(sim.world.partitions["raw/1"])
    expected = plan(sim.world, sim.now)
    result = planner.plan(sim.now)
    assert sorted(map(repr, result.actions)) == sorted(map(repr, expected.actions))
    sim.world = apply_actions(sim.world, result.actions)
    assert planner.world() == sim.world
    assert planner.plan(sim.now).actions == ()


def test_a_success_under_a_request_dated_later_is_left_to_the_full_pass() -> None:
    """A request dated after the run's success (clocks apart) taints the new data once
    the operator's clock reaches its date, and never again after the rebuild."""
    script = Script(hold=["agg/1"])
    sim = Simulator(_ladder(), T0, script)
    sim.add_want("w", ["agg/1"])
    sim.run_until_quiet()
    assert sim.world.partitions["agg/1"].state.STATE == "Building"
    _request(sim, "agg/1", "asked with a clock ahead", at=sim.now + timedelta(seconds=30))
    planner = Planner(sim.world)
    assert planner.plan(sim.now).actions == ()  # not Live: nothing to taint yet
    script.hold.clear()
    sim.finish_jobs()
    sim.advance(1)
    for outcome in sim.world.outcomes.values():
        planner.observe_outcome(outcome)
    passes = planner.full_passes
    result = planner.plan(sim.now)
    assert planner.full_passes == passes + 1
    expected = plan(sim.world, sim.now)
    assert sorted(map(repr, result.actions)) == sorted(map(repr, expected.actions))
    reasons = [a.event.reason for a in result.actions if isinstance(a, TransitionPartition)]
    assert reasons == ["Built"]  # the request is not due before its own time
    due = sim.world.partitions["agg/1"].taint_request
    assert due is not None and result.next_wakeup == due.requested_at
    sim.world = apply_actions(sim.world, result.actions)
    sim.now = due.requested_at
    passes = planner.full_passes
    result = planner.plan(sim.now)
    assert planner.full_passes == passes + 1
    expected = plan(sim.world, sim.now)
    assert sorted(map(repr, result.actions)) == sorted(map(repr, expected.actions))
    reasons = [a.event.reason for a in result.actions if isinstance(a, TransitionPartition)]
    assert reasons == ["TaintRequested"]  # "w" is Successful: nothing rebuilds it yet
    sim.world = apply_actions(sim.world, result.actions)
    sim.add_want("later", ["agg/1"])
    sim.run_until_quiet()
    assert sim.world.partitions["agg/1"].state.STATE == "Live"  # rebuilt, not re-tainted


def test_request_outcome_sorts_each_ref_by_what_the_planner_did() -> None:
    at = T0 + timedelta(hours=1)
    before, after = at - timedelta(seconds=1), at + timedelta(seconds=1)
    parts = {
        "old": Partition(PartitionRef("old"), PartitionLive(live_since=before)),
        "new": Partition(PartitionRef("new"), PartitionLive(live_since=after)),
        "bad": Partition(PartitionRef("bad"), PartitionTainted()),
        "gone": Partition(PartitionRef("gone"), PartitionMissing()),
    }
    outcome = request_outcome(["old", "new", "bad", "gone", "none", "old"], at, parts)
    assert outcome == TaintOutcome(
        tainted=("bad",), not_live=("gone", "new"), unknown=("none",), pending=("old",)
    )
    assert not outcome.applied  # "old" is still Live since before the request
    del parts["old"]
    assert request_outcome(["new", "none"], at, parts).applied


def test_the_later_of_two_requests_of_one_ref_wins() -> None:
    early, late = TaintRequest("a", T0), TaintRequest("b", T0 + timedelta(seconds=1))
    assert latest_request(early, late) is late
    assert latest_request(late, early) is late
    assert latest_request(None, early) is early
    assert latest_request(early, None) is early
    assert latest_request(None, None) is None


def test_a_taint_that_replaces_a_running_build_writes_old_and_new_run_in_one_lane() -> None:
    """Written lanes at once, a crash keeps a prefix of each: the new run of clean/1 must
    not outlive the lost cancellation of the old one (two active runs of one ref), and
    the rebuild of raw/1 must not start while raw/1 still reads Live."""
    script = Script(hold=["clean/1"])
    world = World(
        job_definitions={
            "raw": jd("raw", "raw/{d}"),
            "clean": jd("clean", "clean/{d}", ["raw/{d}"]),
        }
    )
    sim = Simulator(world, T0, script)
    sim.add_want("w", ["clean/1"])
    sim.run_until_quiet()
    assert states(sim.world)["part:clean/1"] == "Building"
    sim.advance(5)
    _request(sim, "raw/1", "bad source file")
    actions = plan(sim.world, sim.now).actions
    lanes = write_lanes(actions, sim.world)
    old_clean = sim.world.partitions["clean/1"].state.built_by  # type: ignore[union-attr]
    cancel = next(
        i for i, a in enumerate(actions) if isinstance(a, TransitionJobRun) and a.name == old_clean
    )
    created = {
        str(a.partitions[0]): i for i, a in enumerate(actions) if isinstance(a, CreateJobRun)
    }
    assert cancel < created["clean/1"]
    assert lanes[cancel] == lanes[created["clean/1"]]
    raw_moves = [
        i
        for i, a in enumerate(actions)
        if isinstance(a, TransitionPartition) and str(a.ref) == "raw/1"
    ]
    raw_job = next(i for i, a in enumerate(actions) if isinstance(a, CreateBatchJob))
    assert {lanes[i] for i in [*raw_moves, created["raw/1"], raw_job]} == {lanes[raw_moves[0]]}
    assert lanes[raw_moves[0]] != lanes[cancel]  # unrelated builds still go at once
