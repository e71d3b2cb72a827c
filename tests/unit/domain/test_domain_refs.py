"""Partition refs, output patterns, input templates and resource names."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from databuild.domain.refs import (
    PARTITION_REF_PATTERN,
    InputTemplate,
    InvalidPartitionRef,
    OutputPattern,
    PartitionRef,
    PatternError,
    batch_job_name,
    derived_want_name,
    is_dns1123_label,
    jobrun_name,
    label_safe,
    match_ref,
    partition_name,
    ref_hash,
    substitute_captures,
)


@pytest.mark.parametrize(
    "ref",
    ["a", "daily_summary/date=2025-01-01", "a/b/c", "x=1,y=2/a+b@c~d:e.f", "~/-/_"],
)
def test_valid_refs(ref: str) -> None:
    assert PartitionRef(ref) == ref
    assert re.match(PARTITION_REF_PATTERN, ref)


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("", "empty"),
        ("a//b", "position 2"),
        ("/a", "position 0"),
        ("a/", "position 2"),
        ("a b", "whitespace ' ' at position 1"),
        ("a\tb", "whitespace"),
        ("a/\x00", "position 2"),
        ("caf\u00e9", "position 3"),
        ("x" * 1025, "longer than 1024"),
        ("a/$(rm -rf)", "the character '$' at position 2"),
        ("a;b", "the character ';' at position 1"),
        ("a/{odd}", "the character '{' at position 2"),
        ("a`b`", "letters, digits and . _ - = : , + @ ~"),
    ],
)
def test_invalid_refs_say_where(ref: str, needle: str) -> None:
    with pytest.raises(InvalidPartitionRef, match=re.escape(needle)):
        PartitionRef(ref)
    assert not re.match(PARTITION_REF_PATTERN, ref) or len(ref) > 1024


@given(st.text(max_size=30))
def test_the_regex_and_the_validator_agree(text: str) -> None:
    assert PartitionRef.is_valid(text) == bool(re.match(PARTITION_REF_PATTERN, text))


def test_pattern_matching_and_rendering() -> None:
    pattern = OutputPattern("daily/date={date:\\d{4}-\\d{2}-\\d{2}}/kind={kind}")
    assert pattern.captures == ("date", "kind")
    assert pattern.match("daily/date=2025-01-01/kind=x") == {"date": "2025-01-01", "kind": "x"}
    assert pattern.match("daily/date=2025-1-1/kind=x") is None
    assert pattern.match("daily/date=2025-01-01/kind=x/y") is None  # {kind} is one segment
    assert pattern.render({"date": "2025-01-01", "kind": "k"}) == "daily/date=2025-01-01/kind=k"
    with pytest.raises(PatternError):
        pattern.render({"date": "nope", "kind": "k"})


def test_constrained_capture_stays_in_one_segment() -> None:
    assert OutputPattern("a/{x:.+}").match("a/b/c") is None
    assert OutputPattern("a/{x:.+}").match("a/bc") == {"x": "bc"}


def test_match_ref_lists_every_match() -> None:
    patterns = [OutputPattern("a/{x}"), OutputPattern("{y}/b"), OutputPattern("c/{z}")]
    assert [(p.text, c) for p, c in match_ref("a/b", patterns)] == [
        ("a/{x}", {"x": "b"}),
        ("{y}/b", {"y": "a"}),
    ]


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("a/{d", 2, "never closed"),
        ("a/}", 2, "without a matching"),
        ("a//{x}", 2, "empty segment"),
        ("/{x}", 0, "empty segment"),
        ("{x}/", 4, "empty segment"),
        ("a b/{x}", 1, "not allowed"),
        ("a/$x/{x}", 2, "not allowed"),
        ("{1x}", 1, "capture name"),
        ("{x:}", 2, "empty regex"),
        ("a/{x:(}", 5, "bad regex"),
        ("{x}/{x}", 4, "appears twice"),
        ("a/{x:(?P<y>a)}", 2, "named groups"),
        ("", 0, "empty"),
    ],
)
def test_malformed_patterns_say_which_and_where(text: str, position: int, reason: str) -> None:
    with pytest.raises(PatternError) as info:
        OutputPattern(text)
    assert info.value.position == position
    assert reason in info.value.reason
    assert repr(text) in str(info.value)
    assert f"position {position}" in str(info.value)


def test_input_templates_render_and_reject_unknown_captures() -> None:
    template = InputTemplate("reviews/date={date}", ["date"])
    assert template.render({"date": "2025-01-01"}) == "reviews/date=2025-01-01"
    with pytest.raises(PatternError, match="position 8: unknown capture 'day'") as info:
        InputTemplate("reviews/{day}", ["date"])
    assert info.value.pattern == "reviews/{day}"
    with pytest.raises(PatternError, match="not"):
        InputTemplate("reviews/{day:x}", ["day"])
    with pytest.raises(PatternError, match="unknown capture"):
        InputTemplate("r/{a}").render({})


_REF_ALPHABET = [chr(c) for c in range(33, 127) if chr(c).isalnum() or chr(c) in "._-=:,+@~"]
_SEGMENT = st.text(alphabet=_REF_ALPHABET, min_size=1)


@given(
    literals=st.lists(_SEGMENT, min_size=1, max_size=4),
    values=st.lists(st.text(alphabet=[*_REF_ALPHABET, "/"], max_size=12), max_size=3),
)
def test_rendering_matched_captures_needs_no_check(literals: list[str], values: list[str]) -> None:
    """render_matched skips the ref check: captures from a match always render valid refs."""
    names = [f"c{i}" for i in range(len(values))]
    # An output pattern and a template that mix literals, captures and slashes.
    pattern = OutputPattern("/".join([literals[0], *(f"{{{n}}}" for n in names)]))
    template = InputTemplate(
        "/".join([literals[-1], *(f"x{{{n}}}y" for n in reversed(names))]), names
    )
    ref = "/".join([literals[0], *values])
    if not PartitionRef.is_valid(ref):
        return
    captures = pattern.match(ref)
    if captures is None:
        return
    rendered = template.render_matched(captures)
    assert PartitionRef.is_valid(rendered)
    assert rendered == template.render(captures)


def test_rendering_matched_captures_still_checks_the_length() -> None:
    pattern = OutputPattern("a/{x}")
    captures = pattern.match("a/" + "x" * 1000)
    assert captures is not None
    template = InputTemplate("b/{x}/{x}", ["x"])
    with pytest.raises(InvalidPartitionRef, match="longer than 1024"):
        template.render_matched(captures)


def test_substitute_captures_leaves_unknown_placeholders() -> None:
    assert substitute_captures("run {date} ${HOME} {other}", {"date": "d"}) == (
        "run d ${HOME} {other}"
    )


def test_names_are_readable_short_and_dns_safe() -> None:
    name = partition_name("daily_summary/date=2025-01-01")
    assert name.startswith("daily-summary-date-2025-01-01-")
    assert is_dns1123_label(name)
    long_ref = "Some_Kind/" + "x" * 900
    assert len(partition_name(long_ref)) <= 63
    assert is_dns1123_label(partition_name(long_ref))
    assert is_dns1123_label(partition_name("___/---"))
    assert partition_name("a/b") != partition_name("a_b")  # same slug, different hash
    run = jobrun_name("Job.Def", [long_ref, "b"], 1)
    assert len(run) <= 56 and is_dns1123_label(run)
    assert jobrun_name("j", ["a"], 1) != jobrun_name("j", ["a"], 2)
    assert jobrun_name("j", ["a", "b"], 1) == jobrun_name("j", ["b", "a"], 1)
    job = batch_job_name(run, 999_999)
    assert len(job) <= 63 and is_dns1123_label(job)
    want = derived_want_name(run, 3)
    assert len(want) <= 63 and is_dns1123_label(want)


@given(st.text(min_size=1, max_size=300).filter(PartitionRef.is_valid))
def test_partition_names_are_always_valid(ref: str) -> None:
    assert is_dns1123_label(partition_name(ref))


def test_hashes_are_stable_across_processes() -> None:
    code = (
        "from databuild.domain.refs import partition_name, ref_hash;"
        "print(partition_name('a/b=1'), ref_hash('a/b=1'))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in (1, 2)
    }
    assert outputs == {f"{partition_name('a/b=1')} {ref_hash('a/b=1')}\n"}


def test_label_safe() -> None:
    assert label_safe("daily") == "daily"
    hashed = label_safe("daily/date=2025-01-01")
    assert hashed == ref_hash("daily/date=2025-01-01")
    assert len(hashed) <= 63 and re.fullmatch("[0-9a-f]+", hashed)
    assert label_safe("x" * 64) != "x" * 64
