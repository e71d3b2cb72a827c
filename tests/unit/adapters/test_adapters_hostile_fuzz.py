"""Fuzz: hostile JobDefinitions, Wants, termination messages and annotations go through
the path real objects take (codec -> World -> plan -> actions applied -> batch Job
outcomes read back by the codec) without an exception escaping, with every Want ending
or Stalled with a reason, and with each plan of the namespace inside a fixed budget."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from databuild import domain
from databuild.adapters import codec
from databuild.domain.simulation import apply_actions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN_BUDGET_SECONDS = 5.0  # per plan of the namespace; the default budgets keep it far below
STEPS = 40

_SEGMENTS = st.sampled_from(["a", "b", "x=1", "date=2025-01-01", "k", "$(id)", "a b", "é", ""])
_CAPTURES = st.sampled_from(
    ["{x}", "{y}", "{x:(?i)abc}", "{x:(a+)+b}", "{x:a(?=b)}", "{x:.*}", "{x:\\d{2}}", "{x:(}"]
)
_PIECES = st.lists(st.one_of(_SEGMENTS, _CAPTURES), min_size=1, max_size=4)
_PATTERNS = st.builds(lambda parts, sep: sep.join(parts), _PIECES, st.sampled_from(["/", ""]))
_INPUTS = st.builds(lambda p, suffix: p + suffix, _PATTERNS, st.sampled_from(["", "0", "1", "/u"]))
_REFS = st.one_of(
    st.builds(lambda a, b: f"{a}/{b}", _SEGMENTS, _SEGMENTS),
    st.sampled_from(["a/1", "a/abc", "b/1", "x=1/a", "a/aaaaaaaaaaaaaaaaaaaaaaaaac"]),
    st.text(max_size=20),
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
_NUMBERS = st.one_of(st.none(), st.integers(-(2**70), 2**70))
_TIMES = st.one_of(
    st.none(),
    st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2025-01-01", "nonsense"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)
_ATTEMPTS = st.one_of(st.none(), st.sampled_from(["1", "0", "-1", "1" * 5000, "\u0661", "x"]))


def _jobdef_body(i: int, outputs: list[str], inputs: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "JobDefinition",
        "metadata": {"name": f"jd{i}", "resourceVersion": "1"},
        "spec": {"outputs": outputs, "inputs": inputs, "template": {}},
    }


def _want_body(i: int, refs: list[str], ttl: Any, sla: Any, when: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"partitions": refs}
    for key, value in (("ttlSeconds", ttl), ("slaSeconds", sla), ("dataTimestamp", when)):
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


def _job_bodies(action: domain.CreateBatchJob, message: str, attempt: Any) -> tuple[Any, Any]:
    """The batch Job and pod the API would show for ``action`` after its pod failed."""
    job = {
        "metadata": {
            "name": action.name,
            "annotations": {"databuild.dev/attempt": attempt or str(action.attempt)},
            "ownerReferences": [{"kind": "JobRun", "name": action.job_run, "controller": True}],
        },
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimit"}]},
    }
    pod = {
        "metadata": {"labels": {"batch.kubernetes.io/job-name": action.name}},
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
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    defs=st.lists(
        st.tuples(st.lists(_PATTERNS, min_size=1, max_size=2), st.lists(_INPUTS, max_size=2)),
        min_size=1,
        max_size=4,
    ),
    wants=st.lists(
        st.tuples(st.lists(_REFS, min_size=1, max_size=3), _NUMBERS, _NUMBERS, _TIMES),
        min_size=1,
        max_size=3,
    ),
    messages=st.lists(_MESSAGES, min_size=1, max_size=4),
    attempts=st.lists(_ATTEMPTS, min_size=1, max_size=3),
    taint=st.tuples(_REFS, _TIMES),
    succeed_every=st.integers(1, 3),
)
def test_hostile_objects_never_escape_their_object(
    *,
    defs: list[tuple[list[str], list[str]]],
    wants: list[tuple[list[str], Any, Any, Any]],
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
    want_objects = {}
    for i, (refs, ttl, sla, when) in enumerate(wants):
        w = _read(codec.want_from, _want_body(i, refs, ttl, sla, when))
        if w is not None:
            want_objects[w.name] = w
    partitions = {}
    part = _read(codec.partition_from, _partition_body(*taint))
    if part is not None:
        partitions[part.ref] = part
    world = domain.World(job_definitions, want_objects, partitions)

    now = T0
    planner = domain.Planner(world)
    jobs = 0
    for _step in range(STEPS):
        started = time.perf_counter()
        result = domain.plan(world, now)
        assert time.perf_counter() - started < PLAN_BUDGET_SECONDS
        incremental = planner.plan(now)
        assert len(incremental.actions) == len(result.actions)
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
            outcome = codec.outcome_from(job, pods, now + timedelta(seconds=30))
            if outcome is not None:
                outcomes[outcome.job_run, outcome.attempt] = outcome
            else:  # an unreadable attempt annotation: the Job is not ours; it fails plainly
                outcomes[action.job_run, action.attempt] = domain.JobOutcome(
                    action.job_run, action.attempt, domain.OutcomeKind.FAILED, 1, "unreadable"
                )
        world = domain.World(
            world.job_definitions, world.wants, world.partitions, world.job_runs, outcomes
        )
        planner = domain.Planner(world)  # from the world the next full plan sees
        if not result.actions and result.next_wakeup is None:
            break
        now = max(
            now + timedelta(seconds=1), min(result.next_wakeup or now, now + timedelta(days=1))
        )

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
