"""Property-based tests: random Wants, JobDefinitions, job outcomes and planner restarts.

The machine keeps only the persisted world between steps (a restart re-plans from it),
and checks the invariants of DESIGN section 3 after every step:
1. at most one non-terminal JobRun per partition ref;
2. a Live partition was built by a Succeeded JobRun;
3. every transition is on an edge and carries its one event (checked when applying);
4. replaying the event log from empty reproduces the current states.
After every whole plan, nothing Live or Running reads a Tainted partition.
At the end every Want must reach a terminal state once all jobs complete.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from domain_builders import T0, active_runs_by_ref, jd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from databuild.domain.actions import CreateBatchJob, write_lanes
from databuild.domain.events import EntityKind
from databuild.domain.planner import Planner, plan
from databuild.domain.refs import PartitionRef, partition_name
from databuild.domain.replay import replay
from databuild.domain.simulation import Simulator, apply_actions
from databuild.domain.states import (
    JobRunRunning,
    JobRunSucceeded,
    PartitionLive,
    PartitionTainted,
)
from databuild.domain.world import JobOutcome, OutcomeKind, Settings, TaintRequest, World

KINDS = 5
DATES = 2
REFS = [f"k{k}/{d}" for k in range(KINDS) for d in range(DATES)]


def _definition(kind: int, inputs: list[int], retries: int, max_runs: int | None) -> object:
    return jd(
        f"k{kind}",
        f"k{kind}/{{d}}",
        [f"k{i}/{{d}}" for i in inputs],
        retries=retries,
        backoff=5,
        max_runs=max_runs,
    )


class Planning(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sim = Simulator(World(settings=Settings(max_concurrent_runs=4)), T0)
        self.counter = 0
        self.batch_jobs: set[str] = set()
        self.user_wants: set[str] = set()

    # --- external changes ---------------------------------------------------------------

    @initialize(
        inputs=st.lists(
            st.lists(st.integers(0, KINDS - 1), max_size=2, unique=True),
            min_size=KINDS,
            max_size=KINDS,
        ),
        retries=st.integers(0, 2),
    )
    def define_all_jobs(self, inputs: list[list[int]], retries: int) -> None:
        """Start with an acyclic JobDefinition for every kind (rules change them later)."""
        for kind, ins in enumerate(inputs):
            definition = _definition(kind, [i for i in ins if i < kind], retries, None)
            self.sim.add_job_definition(definition)  # type: ignore[arg-type]

    @rule(
        kind=st.integers(0, KINDS - 1),
        inputs=st.lists(st.integers(0, KINDS - 1), max_size=2, unique=True),
        upstream_only=st.booleans(),
        retries=st.integers(0, 2),
        max_runs=st.none() | st.integers(1, 2),
    )
    def define_job(
        self,
        kind: int,
        inputs: list[int],
        upstream_only: bool,
        retries: int,
        max_runs: int | None,
    ) -> None:
        # Mostly acyclic (inputs of lower kinds); sometimes anything, cycles included.
        chosen = [i for i in inputs if i < kind] if upstream_only else inputs
        definition = _definition(kind, [i for i in chosen if i != kind], retries, max_runs)
        self.sim.add_job_definition(definition)  # type: ignore[arg-type]

    @rule(kind=st.integers(0, KINDS - 1))
    def remove_job(self, kind: int) -> None:
        defs = {n: d for n, d in self.sim.world.job_definitions.items() if n != f"k{kind}"}
        self.sim.world = dataclasses.replace(self.sim.world, job_definitions=defs)

    @rule(
        refs=st.lists(st.sampled_from(REFS), min_size=1, max_size=3, unique=True),
        ttl=st.none() | st.integers(5, 60),
    )
    def add_want(self, refs: list[str], ttl: int | None) -> None:
        self.counter += 1
        name = f"w{self.counter}"
        self.sim.add_want(name, refs, ttl_seconds=ttl)
        self.user_wants.add(name)

    @precondition(lambda self: self.user_wants)
    @rule(data=st.data())
    def delete_want(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.user_wants)))
        self.user_wants.discard(name)
        self.sim.delete_want(name)

    @precondition(
        lambda self: any(o.kind is OutcomeKind.RUNNING for o in self.sim.world.outcomes.values())
    )
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["ok", "ok", "fail", "miss"]),
        missing=st.sampled_from(REFS),
    )
    def finish_job(self, data: st.DataObject, outcome: str, missing: str) -> None:
        running = sorted(
            k for k, o in self.sim.world.outcomes.items() if o.kind is OutcomeKind.RUNNING
        )
        run_name, attempt = data.draw(st.sampled_from(running))
        if outcome == "ok":
            result = JobOutcome(run_name, attempt, OutcomeKind.SUCCEEDED, 0)
        elif outcome == "fail":
            result = JobOutcome(run_name, attempt, OutcomeKind.FAILED, 1, "boom")
        else:
            result = JobOutcome(
                run_name, attempt, OutcomeKind.DEPENDENCY_MISS, 1, "", (PartitionRef(missing),)
            )
        outcomes = dict(self.sim.world.outcomes)
        outcomes[(run_name, attempt)] = result
        self.sim.world = dataclasses.replace(self.sim.world, outcomes=outcomes)

    @precondition(lambda self: self.sim.world.partitions)
    @rule(data=st.data(), offset=st.sampled_from([-5, 0, 0, 5]))
    def request_taint(self, data: st.DataObject, offset: int) -> None:
        """A user asks for a partition to be tainted (a clock a little off either way)."""
        ref = data.draw(st.sampled_from(sorted(self.sim.world.partitions)))
        part = self.sim.world.partitions[ref]
        request = TaintRequest("bad", self.sim.now + timedelta(seconds=offset))
        parts = {**self.sim.world.partitions, ref: dataclasses.replace(part, taint_request=request)}
        self.sim.world = dataclasses.replace(self.sim.world, partitions=parts)

    @rule(seconds=st.sampled_from([1, 5, 30]))
    def advance(self, seconds: int) -> None:
        self.sim.advance(seconds)

    @rule(fail=st.booleans())
    def finish_all_then_plan(self, fail: bool) -> None:
        """Every running job finishes (all fail or all succeed), then the operator plans."""
        kind = OutcomeKind.FAILED if fail else OutcomeKind.SUCCEEDED
        outcomes = {
            k: (JobOutcome(k[0], k[1], kind, int(fail)) if o.kind is OutcomeKind.RUNNING else o)
            for k, o in self.sim.world.outcomes.items()
        }
        self.sim.world = dataclasses.replace(self.sim.world, outcomes=outcomes)
        self.sim.advance(1)
        self.plan_and_apply()

    # --- the operator -------------------------------------------------------------------

    @rule()
    def plan_and_apply(self) -> None:
        result = plan(self.sim.world, self.sim.now)
        assert plan(self.sim.world, self.sim.now) == result  # deterministic
        self._apply(result.actions)
        again = plan(self.sim.world, self.sim.now)
        assert again.actions == (), again.actions  # a fixpoint until something changes
        self.nothing_built_from_tainted_data()

    def nothing_built_from_tainted_data(self) -> None:
        """After a whole plan: no Live partition or Running run reads Tainted data."""
        world = self.sim.world
        tainted = {r for r, p in world.partitions.items() if isinstance(p.state, PartitionTainted)}
        for part in world.partitions.values():
            if isinstance(part.state, PartitionLive):
                assert not tainted & set(part.state.inputs), part
        for run in world.job_runs.values():
            if isinstance(run.state, JobRunRunning):
                assert not tainted & {*run.inputs, *run.state.ever_missing}, run

    @rule(cut=st.floats(0, 1))
    def crash_midway(self, cut: float) -> None:
        """Kill -9 between two writes: only a prefix of the plan reaches the API."""
        actions = plan(self.sim.world, self.sim.now).actions
        self._apply(actions[: int(len(actions) * cut)])

    @rule(data=st.data(), during_wants=st.booleans())
    def crash_midway_writing_objects_at_once(self, data: st.DataObject, during_wants: bool) -> None:
        """Kill -9 while several builds are written at once (``--write-concurrency``): each
        lane stops at a point of its own; the Wants' status goes after every lane."""
        actions = plan(self.sim.world, self.sim.now).actions
        lanes: dict[tuple[str, str], list[int]] = {}
        wants: dict[str, list[int]] = {}
        for index, lane in enumerate(write_lanes(actions, self.sim.world)):
            if lane is None:
                wants.setdefault(str(getattr(actions[index], "name", "")), []).append(index)
            else:
                lanes.setdefault(lane, []).append(index)
        kept: set[int] = set()
        if during_wants:
            kept.update(i for lane in lanes.values() for i in lane)
        for group in (wants if during_wants else lanes).values():
            kept.update(group[: data.draw(st.integers(0, len(group)))])
        self._apply(tuple(a for i, a in enumerate(actions) if i in kept))

    def _apply(self, actions: tuple[object, ...]) -> None:
        for action in actions:
            if isinstance(action, CreateBatchJob):
                key = (action.job_run, action.attempt)
                # No duplicated batch Job: re-creating one is only AlreadyExists.
                assert action.name == f"{key[0]}-{key[1]}"
                self.batch_jobs.add(action.name)
        self.sim.world = apply_actions(self.sim.world, actions, self.sim.log)  # type: ignore[arg-type]

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def one_active_run_per_ref(self) -> None:
        for ref, runs in active_runs_by_ref(self.sim.world).items():
            assert len(runs) == 1, (ref, runs)

    @invariant()
    def a_finished_build_never_runs_again_unless_tainted(self) -> None:
        """Invariant 5: a partition is built again only after it was tainted."""
        taints: dict[str, int] = {}
        for event in self.sim.log:
            if event.kind is EntityKind.PARTITION and event.to_state == "Tainted":
                taints[event.name] = taints.get(event.name, 0) + 1
        built: dict[str, int] = {}
        for run in self.sim.world.job_runs.values():
            if isinstance(run.state, JobRunSucceeded):
                for ref in run.partitions:
                    built[ref] = built.get(ref, 0) + 1
        for ref, times in built.items():
            assert times <= 1 + taints.get(partition_name(ref), 0), (ref, times)

    @invariant()
    def live_means_built_by_a_succeeded_run(self) -> None:
        for part in self.sim.world.partitions.values():
            if isinstance(part.state, PartitionLive):
                run = self.sim.world.job_runs[part.state.built_by or ""]
                assert isinstance(run.state, JobRunSucceeded)
                assert part.ref in run.partitions

    @invariant()
    def replay_reproduces_the_states(self) -> None:
        world = self.sim.world
        replayed = {k: v for k, v in replay(self.sim.log).items() if k[1] not in self.sim.deleted}
        current = {
            (EntityKind.WANT, n): w.state.STATE
            for n, w in world.wants.items()
            # Every Want the planner has seen (a crash may log it before its status).
            if w.status.observed_generation or w.source_job_run or (EntityKind.WANT, n) in replayed
        }
        current |= {(EntityKind.JOB_RUN, n): r.state.STATE for n, r in world.job_runs.items()}
        current |= {
            (EntityKind.PARTITION, p.name): p.state.STATE for p in world.partitions.values()
        }
        assert replayed == current

    def teardown(self) -> None:
        """Once every job completes (and every kind has a JobDefinition), Wants finish."""
        for kind in range(KINDS):
            if f"k{kind}" not in self.sim.world.job_definitions:
                self.sim.add_job_definition(_definition(kind, [], 0, None))  # type: ignore[arg-type]
        self.sim.run_until_quiet(max_steps=300, step_seconds=10)
        self.replay_reproduces_the_states()
        self.one_active_run_per_ref()
        for name, want in self.sim.world.wants.items():
            assert want.state.STATE in ("Successful", "Failed", "Expired"), (name, want)
        assert not active_runs_by_ref(self.sim.world)


Planning.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPlanning = Planning.TestCase


def _key(action: object) -> str:
    return repr(action)


class IncrementalPlanning(Planning):
    """The same random histories, planned by a long-lived Planner fed with the changes.

    Every plan must equal the pure function's plan of the same world (as a set of
    actions: their order may differ where it does not matter), and the Planner's own
    picture of the world must equal the world after applying its actions.
    """

    def __init__(self) -> None:
        super().__init__()
        self.planner = Planner(self.sim.world)
        self.synced = self.sim.world

    def _sync(self) -> None:
        """Tell the planner what changed outside it since the last sync."""
        old, new = self.synced, self.sim.world
        for name, definition in new.job_definitions.items():
            if old.job_definitions.get(name) != definition:
                self.planner.observe_job_definition(definition)
        for name in set(old.job_definitions) - set(new.job_definitions):
            self.planner.forget_job_definition(name)
        for name, want in new.wants.items():
            if old.wants.get(name) != want:
                self.planner.observe_want(want)
        for name in set(old.wants) - set(new.wants):
            self.planner.forget_want(name)
        for key, outcome in new.outcomes.items():
            if old.outcomes.get(key) != outcome:
                self.planner.observe_outcome(outcome)
        for key in set(old.outcomes) - set(new.outcomes):
            self.planner.forget_outcome(*key)
        for ref, part in new.partitions.items():
            if old.partitions.get(ref) != part:
                self.planner.observe_partition(part)

    @rule()
    def plan_and_apply(self) -> None:
        self._sync()
        expected = plan(self.sim.world, self.sim.now)
        result = self.planner.plan(self.sim.now)
        assert sorted(map(_key, result.actions)) == sorted(map(_key, expected.actions))
        assert result.next_wakeup == expected.next_wakeup
        self._apply(result.actions)
        self.synced = self.sim.world
        assert self.planner.world() == self.sim.world
        again = self.planner.plan(self.sim.now)
        assert again.actions == (), again.actions
        self.nothing_built_from_tainted_data()

    @rule(cut=st.floats(0, 1))
    def crash_midway(self, cut: float) -> None:
        super().crash_midway(cut)
        self.planner = Planner(self.sim.world)  # a restarted operator starts afresh
        self.synced = self.sim.world

    @rule(data=st.data(), during_wants=st.booleans())
    def crash_midway_writing_objects_at_once(self, data: st.DataObject, during_wants: bool) -> None:
        super().crash_midway_writing_objects_at_once(data, during_wants)
        self.planner = Planner(self.sim.world)
        self.synced = self.sim.world


IncrementalPlanning.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIncrementalPlanning = IncrementalPlanning.TestCase
