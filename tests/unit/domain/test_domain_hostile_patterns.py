"""Hostile output patterns: RE2 semantics, linear matching, errors that stay PatternError."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from databuild.domain import JobDefinition, Want, World, plan
from databuild.domain.refs import OutputPattern, PartitionRef, PatternError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_an_inline_flag_anywhere_compiles_and_matches() -> None:
    pattern = OutputPattern("t/{x:(?i)abc}")
    assert pattern.match("t/ABC") == {"x": "ABC"}
    assert pattern.match("t/abd") is None


@pytest.mark.parametrize("regex", ["(a+)+b", "(a|aa)*c", "(a*)*b", "(.*a){20}"])
def test_catastrophic_regexes_match_in_linear_time(regex: str) -> None:
    pattern = OutputPattern(f"p/{{x:{regex}}}")
    hostile = "p/" + "a" * 1000 + "z"
    started = time.perf_counter()
    for _ in range(20):
        assert pattern.match(hostile) is None
    # Python's re needs seconds for 26 characters of (a+)+b; RE2 takes microseconds.
    assert time.perf_counter() - started < 1.0


def test_several_plain_captures_in_one_segment_use_the_linear_engine() -> None:
    # [^/]+[^/]+... backtracks polynomially in Python's re (n^k for k captures).
    pattern = OutputPattern("p/{a}{b}{c}{d}{e}{f}{g}.x")
    started = time.perf_counter()
    assert pattern.match("p/" + "a" * 1000 + ".y") is None
    assert time.perf_counter() - started < 1.0
    assert pattern.match("p/abcdefg.x") == dict(zip("abcdefg", "abcdefg", strict=True))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("p/{x:a(?=b)}", "bad regex (RE2 syntax)"),  # lookahead: not RE2
        ("p/{x:(a)\\1}", "bad regex (RE2 syntax)"),  # backreference
        ("p/{x:a{1001}}", "bad regex (RE2 syntax)"),  # repetition over RE2's limit
        ("p/{x:((((((a{100}){100}){100}){100}){100}){100})}", "bad regex"),  # program size
        ("p/{x:\\}", "never closed"),
        ("p/" + "x" * 1100, "longer than 1024"),
    ],
)
def test_patterns_re2_rejects_are_pattern_errors(text: str, reason: str) -> None:
    with pytest.raises(PatternError) as info:
        OutputPattern(text)
    assert reason in info.value.reason


def test_a_bad_pattern_marks_its_job_definition_and_the_wants_that_need_it() -> None:
    bad = JobDefinition("bad", ("t/{x:a(?=b)}",))
    good = JobDefinition("good", ("g/{x}",))
    assert bad.error is not None and "RE2" in bad.error
    world = World(
        job_definitions={"bad": bad, "good": good},
        wants={
            "w-bad": Want("w-bad", (PartitionRef("t/ab"),), NOW),
            "w-good": Want("w-good", (PartitionRef("g/1"),), NOW),
        },
    )
    actions = plan(world, NOW).actions
    created = {a.job_definition for a in actions if type(a).__name__ == "CreateJobRun"}
    assert created == {"good"}
    statuses = {a.name: a for a in actions if type(a).__name__ == "UpdateWantStatus"}
    ready = statuses["w-bad"].conditions[0]
    assert ready.reason == "InvalidJobDefinition"
    assert "'bad'" in ready.message and "RE2" in ready.message


_WELL_FORMED = ["a", "b", ".", "\\d", "[a-z]", "(", ")", "|", "*", "+", "?", "{2}", "(?i)", "^"]
_ODD = ["$", "\\", "[", "(?P<n>", "{1,", "(?=", "\\b", "\\1", "(?:", "}"]
_REGEX_ATOMS = st.sampled_from([*_WELL_FORMED, *_ODD])


@settings(max_examples=300, deadline=None)
@given(st.lists(_REGEX_ATOMS, min_size=1, max_size=12), st.text(max_size=40))
def test_any_regex_either_parses_or_raises_pattern_error(atoms: list[str], ref: str) -> None:
    try:
        pattern = OutputPattern("p/{x:" + "".join(atoms) + "}")
    except PatternError:
        return
    if PartitionRef.is_valid("p/" + ref):
        pattern.match("p/" + ref)  # never raises
