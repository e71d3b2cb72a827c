"""Fuzz: hostile JobDefinitions, Wants, termination messages and annotations go through
the path real objects take (codec -> World -> plan -> actions applied -> batch Job
outcomes read back by the codec) without an exception escaping, with every Want ending
or Stalled with a reason, and with each plan of the namespace inside a fixed budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from databuild import domain
from databuild.adapters import codec
from databuild.domain.simulation import apply_actions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN_BUDGET_SECONDS = 5.0  # per plan of the namespace; the default budgets keep it far below
STEPS = 40

# Mostly objects that get planned (so their hostile parts reach the planner), some junk.
_GOOD_OUTPUTS = st.sampled_from(["a/{x}", "b/{x}", "c/{x}", "e/{x}", "f/{x}/{y}", "{x}/g"])
_HOSTILE_OUTPUTS = st.sampled_from(
    [
        "a/{x:(?i)abc}",
        "b/{x:(a+)+b}",
        "c/{x:a(?=b)}",
        "d/{x}{y}",
        "e/{x:.*}",
        "a/{x:(}",
        "a;b/{x}",
        "h/$x",
    ]
)
# one_of() draws its branches alike: a filter keeps three good draws for each hostile one.
_OUTPUTS = st.tuples(_GOOD_OUTPUTS, _HOSTILE_OUTPUTS, st.integers(0, 3)).map(
    lambda t: t[1] if t[2] == 0 else t[0]
)
_GOOD_INPUTS = st.sampled_from(["a/{x}", "c/{x}", "e/{x}", "nowhere/{x}", "b/{x}"])
_HOSTILE_INPUTS = st.sampled_from(["a/{x}0", "b/{x}0", "b/{x}1", "a/{z}", "a/{x:y}", "f/{x}/{x}"])
_INPUT_TEMPLATES = st.tuples(_GOOD_INPUTS, _HOSTILE_INPUTS, st.integers(0, 3)).map(
    lambda t: t[1] if t[2] == 0 else t[0]
)
_GOOD_REFS = st.sampled_from(
    [
        *["a/1", "a/2", "b/1", "c/1", "a/abc", "a/ABC", "b/aaaab", "c/ab", "e/q", "f/1/2"],
        *["z/g", "b/" + "a" * 40 + "c", "d/12", "a/" + "1" * 1000],
    ]
)
_REFS = st.tuples(_GOOD_REFS, st.text(max_size=20), st.integers(0, 7)).map(
    lambda t: t[1] if t[2] == 0 else t[0]
)
_MESSAGES = st.one_of(
    st.sampled_from(
        [
            "",
            "plain failure",
            '{"missingPartitions": ["a/1"]}',
            '{"missingPartitions": ["a/x", "b/1", "nowhere/1"]}',
            '{"missingPartitions": []}',
            '{"missingPartitions": "a/1"}',
            '{"missingPartitions": ["$(id)"]}',
            '{"missingPartitions":' + "[" * 5000 + "]" * 5000 + "}",
            '{"missingPartitions": [' + ",".join(f'"a/{i}"' for i in range(300)) + "]}",
        ]
    ),
    st.text(max_size=200),
)
_NUMBERS = st.one_of(st.none(), st.none(), st.integers(1, 10**6), st.integers(-(2**70), 2**70))
_TIMES = st.tuples(
    st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2025-01-01", "nonsense"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.integers(0, 5),
).map(lambda t: None if t[2] > 1 else t[t[2]])
_PRIORITIES = st.one_of(st.none(), st.integers(-3, 3), _NUMBERS)
_ATTEMPTS = st.one_of(st.none(), st.sampled_from(["1", "0", "-1", "1" * 5000, "\u0661", "x"]))


def _jobdef_body(i: int, outputs: list[str], inputs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": f"jd{i}", "resourceVersion": "1"},
        "spec": {"outputs": outputs, "inputs": inputs, "template": {}},
    }


def _want_body(
    i: int, refs: list[str], ttl: Any, sla: Any, when: Any, *, priority: Any = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"partitions": refs}
    for key, value in (
        ("ttlSeconds", ttl),
        ("slaSeconds", sla),
        ("dataTimestamp", when),
        ("priority", priority),
    ):
        if value is not None:
            spec[key] = value
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Want",
        "metadata": {"name": f"w{i}", "creationTimestamp": T0.isoformat()},
        "spec": spec,
    }


def _partition_body(ref: str, when: Any) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Partition",
        "metadata": {
            "name": "p",
            "annotations": {
                "databuild.dev/taint": "x" * 5000,
                "databuild.dev/taint-requested-at": when,
            },
        },
        "spec": {"ref": ref},
        "status": {"state": "Live", "jobRun": "r", "liveSince": T0.isoformat()},
    }


RUN_UID = "jobrun-uid"  # every JobRun's, as far as its Jobs' outcomes are concerned


def _job_bodies(action: domain.CreateBatchJob, message: str, attempt: Any) -> tuple[Any, Any]:
    """The batch Job and pod the API would show for ``action`` after its pod failed."""
    job = {
        "metadata": {
            "name": action.name,
            "uid": f"{action.name}-uid",
            "annotations": {"databuild.dev/attempt": attempt or str(action.attempt)},
            "ownerReferences": [
                {"kind": "JobRun", "name": action.job_run, "uid": RUN_UID, "controller": True}
            ],
        },
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]},
    }
    pod = {
        "metadata": {
            "labels": {"batch.kubernetes.io/job-name": action.name},
            "ownerReferences": [
                {
                    "kind": "Job",
                    "name": action.name,
                    "uid": f"{action.name}-uid",
                    "controller": True,
                }
            ],
        },
        "status": {
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 1, "message": message, "reason": "Error"}}}
            ]
        },
    }
    return job, [pod]


def _read(convert: Any, body: dict[str, Any]) -> Any:
    try:
        return convert(body)
    except codec.BadObject:
        return None  # skipped, as the snapshot does (its Want gets an InvalidSpec status)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    defs=st.lists(
        st.tuples(
            st.lists(_OUTPUTS, min_size=1, max_size=2), st.lists(_INPUT_TEMPLATES, max_size=2)
        ),
        min_size=1,
        max_size=4,
        unique_by=lambda d: d[0][0].partition("/")[0],  # mostly one definition per prefix
    ),
    wants=st.lists(
        st.tuples(st.lists(_REFS, min_size=1, max_size=3), _NUMBERS, _NUMBERS, _TIMES, _PRIORITIES),
        min_size=1,
        max_size=3,
    ),
    limit=st.sampled_from([None, None, 1, 2]),
    messages=st.lists(_MESSAGES, min_size=1, max_size=4),
    attempts=st.lists(_ATTEMPTS, min_size=1, max_size=3),
    taint=st.tuples(_REFS, _TIMES),
    succeed_every=st.integers(1, 3),
)
@example(  # a partition two definitions build, one of them from the other's output
    defs=[(["a/{x}"], []), (["c/{x}", "a/{x}"], ["a/{x}0"])],
    wants=[(["a/1", "c/1"], None, None, "2000-01-01T00:00:00+00:00", None)],
    limit=None,
    messages=[""],
    attempts=[None],
    taint=("", "9999-12-31T23:59:59Z"),
    succeed_every=1,
)
@example(  # a cycle through a run that claims an output another definition matches too
    defs=[(["a/{x}"], []), (["e/{x}"], ["a/{x}"]), (["b/{x}", "a/{x}"], ["e/{x}"])],
    wants=[(["b/1"], None, None, "2025-01-01", None)],
    limit=None,
    messages=[""],
    attempts=[None],
    taint=("", "9999-12-31T23:59:59Z"),
    succeed_every=1,
)
def test_hostile_objects_never_escape_their_object(
    *,
    defs: list[tuple[list[str], list[str]]],
    wants: list[tuple[list[str], Any, Any, Any, Any]],
    limit: int | None,
    messages: list[str],
    attempts: list[Any],
    taint: tuple[str, Any],
    succeed_every: int,
) -> None:
    job_definitions = {}
    for i, (outputs, inputs) in enumerate(defs):
        jd = _read(codec.job_definition_from, _jobdef_body(i, outputs, inputs))
        if jd is not None:
            job_definitions[jd.name] = jd
    # Healthy definitions for the prefixes the generated ones leave free, so most Wants
    # resolve and their builds run (and their batch Jobs report hostile messages).
    taken = {text.partition("/")[0] for outputs, _ in defs for text in outputs}
    for prefix in ("a", "b", "c", "e"):
        if prefix not in taken:
            body = _jobdef_body(0, [f"{prefix}/{{x}}"], [])
            body["metadata"]["name"] = f"base-{prefix}"
            job_definitions[f"base-{prefix}"] = codec.job_definition_from(body)
    want_objects = {}
    for i, (refs, ttl, sla, when, priority) in enumerate(wants):
        w = _read(codec.want_from, _want_body(i, refs, ttl, sla, when, priority=priority))
        if w is not None:
            want_objects[w.name] = w
    partitions = {}
    part = _read(codec.partition_from, _partition_body(*taint))
    if part is not None:
        partitions[part.ref] = part
    # A limit makes runs wait, so the start order (priority, then age) is compared too.
    limits = domain.Settings(max_concurrent_runs=limit)
    world = domain.World(job_definitions, want_objects, partitions, settings=limits)

    now = T0
    planner = domain.Planner(world)
    jobs = 0
    for _step in range(STEPS):
        started = time.perf_counter()
        result = domain.plan(world, now)
        assert time.perf_counter() - started < PLAN_BUDGET_SECONDS
        incremental = planner.plan(now)  # the operator's incremental planner agrees
        assert sorted(map(repr, incremental.actions)) == sorted(map(repr, result.actions))
        world = apply_actions(world, result.actions)
        outcomes = dict(world.outcomes)
        for action in result.actions:
            if not isinstance(action, domain.CreateBatchJob):
                continue
            jobs += 1
            if jobs % succeed_every == 0:
                outcomes[action.job_run, action.attempt] = domain.JobOutcome(
                    action.job_run, action.attempt, domain.OutcomeKind.SUCCEEDED
                )
                continue
            message = messages[jobs % len(messages)]
            job, pods = _job_bodies(action, message, attempts[jobs % len(attempts)])
            outcome = codec.outcome_from(job, pods, now + timedelta(seconds=30), RUN_UID)
            if outcome is not None:
                outcomes[outcome.job_run, outcome.attempt] = outcome
            else:  # an unreadable attempt annotation: the Job is not ours; it fails plainly
                outcomes[action.job_run, action.attempt] = domain.JobOutcome(
                    action.job_run, action.attempt, domain.OutcomeKind.FAILED, 1, "unreadable"
                )
        # The incremental planner learns the outcomes as the operator's watch feeds them,
        # so its local pass (not only the full one) meets the hostile outcomes too.
        for key, outcome in outcomes.items():
            if world.outcomes.get(key) != outcome:
                planner.observe_outcome(outcome)
        world = domain.World(
            world.job_definitions,
            world.wants,
            world.partitions,
            world.job_runs,
            outcomes,
            settings=limits,
        )
        if not result.actions and result.next_wakeup is None:
            break
        now = max(
            now + timedelta(seconds=1), min(result.next_wakeup or now, now + timedelta(days=1))
        )

    # Shown by --hypothesis-show-statistics: how far the generated worlds got.
    event(f"batch Jobs: {'none' if not jobs else '1-4' if jobs < 5 else 'over 4'}")
    valid = sum(d.error is None for d in job_definitions.values())
    event(f"Wants read: {len(want_objects)}, JobDefinitions valid: {valid}")
    for name, w in world.wants.items():
        if isinstance(w.state, domain.WantSuccessful | domain.WantFailed | domain.WantExpired):
            continue
        running = any(
            isinstance(r.state, domain.JobRunRunning | domain.JobRunQueued)
            for r in world.job_runs.values()
        )
        stalled = [c for c in w.status.conditions if c.type == "Stalled" and c.status == "True"]
        assert stalled or running, (name, w)
        for c in stalled:
            assert c.reason and c.message
