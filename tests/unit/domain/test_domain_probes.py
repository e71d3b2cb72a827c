"""Probes: exit 75 means "not yet", re-run after the interval, no retry spent, TTL ends it."""

from __future__ import annotations

from datetime import timedelta

from domain_builders import T0, jd

from databuild.domain.simulation import Simulator
from databuild.domain.states import PROBE_NOT_YET_EXIT_CODE, WAITING_FOR_EXTERNAL_DATA
from databuild.domain.world import JobDefinition, JobOutcome, JobRun, OutcomeKind, World


class NotYet:
    """The probe of ``ext/*`` finds nothing for ``times`` attempts; every other job succeeds."""

    def __init__(self, times: int, code: int = PROBE_NOT_YET_EXIT_CODE) -> None:
        self.times = times
        self.code = code
        self.probes = 0

    def __call__(self, run: JobRun, attempt: int) -> JobOutcome | None:
        if run.partitions[0].startswith("ext/"):
            self.probes += 1
            if attempt <= self.times:
                return JobOutcome(run.name, attempt, OutcomeKind.FAILED, self.code, "not yet")
        return JobOutcome(run.name, attempt, OutcomeKind.SUCCEEDED, 0)


def _world() -> World:
    probe = JobDefinition("probe", ("ext/{d}",), probe_interval_seconds=60)
    return World(job_definitions={"probe": probe, "daily": jd("daily", "daily/{d}", ["ext/{d}"])})


def _run_of(sim: Simulator, ref: str) -> JobRun:
    return next(r for r in sim.world.job_runs.values() if r.partitions == (ref,))


def test_not_yet_twice_then_found_feeds_the_downstream_build_without_spending_retries() -> None:
    sim = Simulator(_world(), T0, NotYet(times=2))
    sim.add_want("w", ["daily/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Successful"
    probe = _run_of(sim, "ext/1")
    assert probe.state.STATE == "Succeeded"
    assert (probe.state.attempt, probe.state.failed_attempts) == (3, 0)
    waits = [e for e in sim.log if e.reason == WAITING_FOR_EXTERNAL_DATA]
    assert len(waits) == 2
    assert all((e.from_state, e.to_state) == ("Running", "Queued") for e in waits)
    # Looked again only after the interval.
    assert sim.now - T0 >= timedelta(seconds=120)


def test_while_waiting_the_run_says_so_and_is_not_failed() -> None:
    sim = Simulator(_world(), T0, NotYet(times=5))
    sim.add_want("w", ["daily/1"])
    for _ in range(3):
        sim.plan()
        sim.finish_jobs()
    probe = _run_of(sim, "ext/1")
    assert probe.state.STATE == "Queued"
    assert probe.state.message.startswith("waiting for external data")
    assert sim.world.wants["w"].state.STATE not in ("Failed", "Expired")


def test_the_wants_ttl_ends_a_probe_that_never_finds_its_data() -> None:
    sim = Simulator(_world(), T0, NotYet(times=10_000))
    sim.add_want("w", ["daily/1"], ttl_seconds=600)
    sim.run_until_quiet(max_steps=500)
    assert sim.world.wants["w"].state.STATE == "Expired"
    assert _run_of(sim, "ext/1").state.STATE == "Cancelled"


def test_another_exit_code_of_a_probe_is_a_failure() -> None:
    sim = Simulator(_world(), T0, NotYet(times=1, code=3))
    sim.add_want("w", ["daily/1"])
    sim.run_until_quiet()
    assert _run_of(sim, "ext/1").state.STATE == "Failed"
    assert sim.world.wants["w"].state.STATE == "Failed"


def test_exit_75_of_an_ordinary_job_is_an_ordinary_failure() -> None:
    world = World(job_definitions={"plain": jd("plain", "ext/{d}")})
    sim = Simulator(world, T0, NotYet(times=1))
    sim.add_want("w", ["ext/1"])
    sim.run_until_quiet()
    assert sim.world.wants["w"].state.STATE == "Failed"
