"""Leader election on a Lease, against the gateway fake."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from databuild.adapters.gateway import FakeGateway
from databuild.operator.leader import AlwaysLeader, LeaderElection


def _election(gw: FakeGateway, identity: str, duration: float = 15.0) -> LeaderElection:
    return LeaderElection(
        gw, namespace="ops", name="lease", identity=identity, duration_seconds=duration
    )


def test_first_comer_leads_and_renews() -> None:
    gw = FakeGateway()
    a = _election(gw, "a")
    assert asyncio.run(a.try_acquire())
    assert a.is_leading()
    lease = gw.stored("Lease", "ops", "lease")
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    assert asyncio.run(a.try_acquire())  # renewal
    assert gw.stored("Lease", "ops", "lease")["spec"]["leaseTransitions"] == 0  # type: ignore[index]


def test_a_live_leader_is_not_displaced() -> None:
    gw = FakeGateway()
    a, b = _election(gw, "a"), _election(gw, "b")
    assert asyncio.run(a.try_acquire())
    assert not asyncio.run(b.try_acquire())
    assert not b.is_leading()


def test_an_expired_lease_is_taken_over() -> None:
    gw = FakeGateway()
    a, b = _election(gw, "a"), _election(gw, "b")
    asyncio.run(a.try_acquire())
    lease = gw.stored("Lease", "ops", "lease")
    assert lease is not None
    stale = datetime.now(UTC) - timedelta(seconds=60)
    lease["spec"]["renewTime"] = stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert asyncio.run(b.try_acquire())
    assert gw.stored("Lease", "ops", "lease")["spec"]["holderIdentity"] == "b"  # type: ignore[index]
    assert gw.stored("Lease", "ops", "lease")["spec"]["leaseTransitions"] == 1  # type: ignore[index]
    # The old leader's next renewal fails: it must stop writing.
    assert not asyncio.run(a.try_acquire())


def test_leadership_lapses_without_renewal() -> None:
    gw = FakeGateway()
    a = _election(gw, "a", duration=0.05)
    assert asyncio.run(a.try_acquire())
    asyncio.run(asyncio.sleep(0.06))
    assert not a.is_leading()


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
