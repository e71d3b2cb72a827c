"""Leader election on a Lease, against the gateway fake."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from databuild.operator.leader import AlwaysLeader, LeaderElection
from databuild.testing.fake_gateway import FakeGateway


class FakeClock:
    """A monotonic clock that moves only when told; ``offset`` makes each process's
    readings differ, as two machines' monotonic clocks do."""

    def __init__(self, offset: float = 0.0) -> None:
        self.t = offset

    def __call__(self) -> float:
        return self.t


def _election(
    gw: FakeGateway,
    identity: str,
    duration: float = 15.0,
    clock: FakeClock | None = None,
    skew_seconds: float = 0.0,
) -> LeaderElection:
    """An elector whose wall clock is ``skew_seconds`` off."""
    return LeaderElection(
        gw,
        namespace="ops",
        name="lease",
        identity=identity,
        duration_seconds=duration,
        clock=clock or FakeClock(),
        wall=lambda: datetime.now(UTC) + timedelta(seconds=skew_seconds),
    )


def _lease(gw: FakeGateway) -> dict[str, Any]:
    lease = gw.stored("Lease", "ops", "lease")
    assert lease is not None
    return lease


def test_first_comer_leads_and_renews() -> None:
    gw = FakeGateway()
    a = _election(gw, "a")
    assert asyncio.run(a.try_acquire())
    assert a.is_leading()
    assert _lease(gw)["spec"]["holderIdentity"] == "a"
    assert asyncio.run(a.try_acquire())  # renewal
    assert _lease(gw)["spec"]["leaseTransitions"] == 0


def test_a_live_leader_is_not_displaced() -> None:
    gw = FakeGateway()
    a, b = _election(gw, "a"), _election(gw, "b")
    assert asyncio.run(a.try_acquire())
    assert not asyncio.run(b.try_acquire())
    assert not b.is_leading()


def test_expiry_is_judged_from_when_the_contender_saw_the_record_change() -> None:
    gw = FakeGateway()
    # The holder's wall clock is an hour behind: its renewTime looks long expired.
    a = _election(gw, "a", skew_seconds=-3600)
    b_clock = FakeClock(offset=1000.0)
    b = _election(gw, "b", clock=b_clock, skew_seconds=3600)
    assert asyncio.run(a.try_acquire())
    assert not asyncio.run(b.try_acquire())  # first sight of the record
    b_clock.t += 14.9
    assert not asyncio.run(b.try_acquire())  # not yet a whole duration unchanged
    b_clock.t += 0.2
    assert asyncio.run(b.try_acquire())
    assert _lease(gw)["spec"]["holderIdentity"] == "b"
    assert _lease(gw)["spec"]["leaseTransitions"] == 1


def test_a_renewing_holder_keeps_the_lease_whatever_the_clocks_say() -> None:
    gw = FakeGateway()
    a_clock, b_clock = FakeClock(), FakeClock(offset=-50.0)
    a = _election(gw, "a", clock=a_clock, skew_seconds=-600)
    b = _election(gw, "b", clock=b_clock, skew_seconds=+600)
    for _ in range(20):
        assert asyncio.run(a.try_acquire())
        assert not asyncio.run(b.try_acquire())
        a_clock.t += 2
        b_clock.t += 2
    assert a.is_leading() and not b.is_leading()


def test_the_term_ends_at_the_renew_deadline_below_the_lease_duration() -> None:
    gw = FakeGateway()
    clock = FakeClock()
    a = _election(gw, "a", clock=clock)
    assert a.renew_deadline < a.duration
    assert asyncio.run(a.try_acquire())
    assert a.remaining() == a.renew_deadline
    clock.t += a.renew_deadline - 0.01
    assert a.is_leading() and 0 < a.remaining() <= 0.01 + 1e-9
    clock.t += 0.02
    assert not a.is_leading() and a.remaining() == 0


def test_a_paused_leader_and_its_successor_never_lead_at_once() -> None:
    # One timeline, two processes with different monotonic offsets and wall clocks 3 s
    # apart. The leader freezes (a GC pause, a stopped VM) from 5 s to 40 s and then
    # carries on as if nothing happened.
    gw = FakeGateway()
    a_clock, b_clock = FakeClock(), FakeClock(offset=123.0)
    a = _election(gw, "a", duration=4.0, clock=a_clock, skew_seconds=3)
    b = _election(gw, "b", duration=4.0, clock=b_clock)
    step, now = 0.05, 0.0
    next_a = next_b = 0.0
    leaders: list[str] = []
    while now < 60:
        paused = 5 <= now < 40
        if not paused and now >= next_a:
            asyncio.run(a.try_acquire())
            next_a = now + a.retry_period
        if now >= next_b:
            asyncio.run(b.try_acquire())
            next_b = now + b.retry_period
        both = a.is_leading() and b.is_leading()
        assert not both, f"two leaders at t={now:.2f}"
        current = "a" if a.is_leading() else "b" if b.is_leading() else "-"
        if not leaders or leaders[-1] != current:
            leaders.append(current)
        now += step
        a_clock.t += step
        b_clock.t += step
    # a led, nobody for a moment, b took over and kept it after a woke up.
    assert leaders[:1] == ["a"] and leaders[-1] == "b", leaders
    assert _lease(gw)["spec"]["holderIdentity"] == "b"


@pytest.mark.parametrize(
    ("renew", "retry", "message"),
    [(15.0, 2.0, "renew deadline"), (20.0, 2.0, "renew deadline"), (10.0, 10.0, "retry period")],
)
def test_timing_that_could_overlap_is_refused(renew: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderElection(
            FakeGateway(),
            namespace="ops",
            name="lease",
            identity="a",
            duration_seconds=15.0,
            renew_deadline_seconds=renew,
            retry_period_seconds=retry,
        )


def test_release_lets_a_successor_in_at_once() -> None:
    gw = FakeGateway()
    a, b = _election(gw, "a"), _election(gw, "b")
    asyncio.run(a.try_acquire())
    asyncio.run(a.release())
    assert not a.is_leading()
    assert asyncio.run(b.try_acquire())


def test_two_candidates_racing_for_a_new_lease() -> None:
    gw = FakeGateway()
    a, b = _election(gw, "a"), _election(gw, "b")

    async def race() -> list[bool]:
        return list(await asyncio.gather(a.try_acquire(), b.try_acquire()))

    assert sorted(asyncio.run(race())) == [False, True]


def test_always_leader_keeps_its_lease_task_alive_until_cancelled() -> None:
    # The operator stops when its lease task ends, so with leader election off the
    # task must last as long as the operator does.
    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(AlwaysLeader().run())
        await asyncio.sleep(0.05)
        alive = not task.done()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return alive, task.cancelled()

    assert asyncio.run(scenario()) == (True, True)
