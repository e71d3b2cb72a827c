"""Partition refs, output patterns, input templates and deterministic resource names.

A partition ref names one partition inside a namespace, e.g. ``reviews/date=2025-01-01``.
The rule (also the CRD's validation regex, :data:`PARTITION_REF_PATTERN`):

* one or more segments separated by ``/``; no empty segment (so no leading, trailing or
  doubled ``/``);
* every character is an ASCII letter, a digit or one of ``. _ - = : , + @ ~``
  (:data:`REF_PUNCTUATION`), so a ref (and a capture substituted into a command) can
  never carry shell syntax: no whitespace, quotes, ``$``, ``;``, ``|``, ``&``,
  backticks, brackets, braces, ``*`` or ``?``;
* at most :data:`MAX_REF_LENGTH` characters.

Output patterns use ``{name}`` (one path-free segment, ``[^/]+``) and ``{name:REGEX}``
(a segment constrained by REGEX) captures. Input templates use ``{name}`` only, and
every name must be a capture of the output patterns.

REGEX is RE2 syntax, the syntax the API server's CEL uses, and it runs on RE2 (linear
time in the ref's length, whatever the regex): a pattern such as ``{x:(a+)+b}`` cannot
make matching slow, and an inline flag such as ``(?i)`` works anywhere. Patterns whose
captures are all ``{name}`` (at most one per segment) match with Python's ``re``, which
is faster per call and linear for that shape.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import re2

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_REF_LENGTH",
    "PARTITION_REF_PATTERN",
    "REF_CHARACTER_CLASS",
    "REF_PUNCTUATION",
    "InputTemplate",
    "InvalidPartitionRef",
    "OutputPattern",
    "PartitionRef",
    "PatternError",
    "batch_job_name",
    "derived_want_name",
    "is_dns1123_label",
    "jobrun_name",
    "label_safe",
    "match_ref",
    "partition_name",
    "ref_hash",
    "stable_hash",
    "substitute_captures",
]

MAX_REF_LENGTH = 1024
"""Longest accepted partition ref, in characters."""

MAX_PATTERN_LENGTH = 1024
"""Longest accepted output pattern or input template, in characters."""

REF_PUNCTUATION = "._-=:,+@~"
"""The characters besides ASCII letters and digits a ref segment may hold."""
REF_CHARACTER_CLASS = "[A-Za-z0-9._=:,+@~-]"
"""One character of a ref segment, as a regex class (RE2 and Python ``re`` alike)."""
_SEGMENT = REF_CHARACTER_CLASS + "+"
PARTITION_REF_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"
"""Regex every partition ref matches (used verbatim by the CRD schemas)."""
_REF_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + REF_PUNCTUATION
)

_REF_RE = re.compile(PARTITION_REF_PATTERN)
_CAPTURE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DNS1123_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")

MAX_NAME_LENGTH = 63
"""Partition and JobRun names fit a label value (and a DNS-1123 label)."""
MAX_JOBRUN_NAME_LENGTH = 56
"""JobRun names leave room for ``-<attempt>`` (up to 6 digits) in batch Job names."""
_HASH_LENGTH = 10


class InvalidPartitionRef(ValueError):
    """A string is not a valid partition ref; the message says which character is wrong."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(f"invalid partition ref {ref!r}: {reason}")
        self.ref = ref
        self.reason = reason


def _ref_problem(value: str) -> str | None:
    if not value:
        return "it is empty"
    if len(value) > MAX_REF_LENGTH:
        return f"it is longer than {MAX_REF_LENGTH} characters"
    if _REF_RE.match(value):
        return None
    for i, ch in enumerate(value):
        if ch != "/" and ch not in _REF_CHARS:
            return f"{_describe(ch)} at position {i} ({_ALPHABET})"
    if value.startswith("/"):
        return "empty segment at position 0 (it starts with '/')"
    if value.endswith("/"):
        return f"empty segment at position {len(value)} (it ends with '/')"
    pos = value.index("//")
    return f"empty segment at position {pos + 1} ('//')"


_ALPHABET = f"a ref holds only letters, digits and {' '.join(REF_PUNCTUATION)} between '/'"


def _describe(ch: str) -> str:
    if ch.isspace():
        return f"whitespace {ch!r}"
    if not ch.isascii() or not ch.isprintable():
        return f"the non-printable or non-ASCII character {ch!r}"
    return f"the character {ch!r}"


class PartitionRef(str):
    """A validated partition ref; constructing one raises :class:`InvalidPartitionRef`."""

    __slots__ = ()

    def __new__(cls, value: str) -> PartitionRef:
        if type(value) is PartitionRef:
            return value
        problem = _ref_problem(value)
        if problem is not None:
            raise InvalidPartitionRef(value, problem)
        return super().__new__(cls, value)

    @staticmethod
    def is_valid(value: str) -> bool:
        """Whether ``value`` satisfies the ref rule."""
        return _ref_problem(value) is None


def _trusted_ref(text: str) -> PartitionRef:
    """A PartitionRef for text known to satisfy the ref rule (no check)."""
    return str.__new__(PartitionRef, text)


class PatternError(ValueError):
    """A malformed output pattern or input template, with the offending position."""

    def __init__(self, pattern: str, position: int, reason: str) -> None:
        super().__init__(f"invalid pattern {pattern!r} at position {position}: {reason}")
        self.pattern = pattern
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Capture:
    name: str
    regex: str | None
    position: int


def _tokenize(text: str) -> list[str | _Capture]:
    """Split a pattern into literal strings and captures, checking brace balance."""
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(text[:64] + "...", 0, f"longer than {MAX_PATTERN_LENGTH} characters")
    parts: list[str | _Capture] = []
    literal: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "}":
            raise PatternError(text, i, "'}' without a matching '{'")
        if ch != "{":
            literal.append(ch)
            i += 1
            continue
        start = i
        depth = 1
        j = i + 1
        while j < n and depth:
            if text[j] == "\\":
                j += 2
                continue
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        if depth:
            raise PatternError(text, start, "'{' is never closed")
        body = text[start + 1 : j - 1]
        name, sep, regex = body.partition(":")
        if not _CAPTURE_NAME_RE.match(name):
            raise PatternError(
                text, start + 1, f"capture name {name!r} must match [A-Za-z_][A-Za-z0-9_]*"
            )
        if sep and not regex:
            raise PatternError(text, start + 1 + len(name), "empty regex after ':'")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(_Capture(name, regex if sep else None, start))
        i = j
    if literal:
        parts.append("".join(literal))
    return parts


def _check_literals(text: str, parts: list[str | _Capture]) -> None:
    """Literals may only hold ref characters, and the pattern may not make empty segments."""
    if not parts:
        raise PatternError(text, 0, "pattern is empty")
    pos = 0
    for index, part in enumerate(parts):
        if isinstance(part, _Capture):
            pos = part.position + 2 + len(part.name) + (len(part.regex) + 1 if part.regex else 0)
            continue
        for k, ch in enumerate(part):
            if ch != "/" and ch not in _REF_CHARS:
                raise PatternError(
                    text, pos + k, f"{_describe(ch)} is not allowed in a ref ({_ALPHABET})"
                )
        if "//" in part:
            raise PatternError(text, pos + part.index("//") + 1, "empty segment ('//')")
        if index == 0 and part.startswith("/"):
            raise PatternError(text, 0, "empty segment (starts with '/')")
        if index == len(parts) - 1 and part.endswith("/"):
            raise PatternError(text, pos + len(part), "empty segment (ends with '/')")
        pos += len(part)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error goes into a PatternError, not to stderr
_RE2_OPTIONS.max_mem = 1 << 20  # bounds the compiled program (and the work per match)


def _compile_re2(source: str, text: str, offset: int) -> Any:
    """``source`` compiled by RE2, or a PatternError at ``offset`` of ``text`` saying why."""
    try:
        return re2.compile(source, _RE2_OPTIONS)
    except Exception as exc:  # re2.error, and whatever its wrapper raises on odd input
        detail = exc.args[0] if exc.args else exc
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise PatternError(text, offset, f"bad regex (RE2 syntax): {detail}") from None


def _simple(parts: Iterable[str | _Capture]) -> bool:
    """Whether every capture is a plain ``{name}``, at most one per segment.

    Python's backtracking ``re`` matches such a pattern in time linear in the ref (a
    ``[^/]+`` cannot cross the ``/`` that ends its segment); two captures in one segment
    (``{a}-{b}``) or a user's regex can backtrack polynomially or worse, so they use RE2.
    """
    in_segment = 0
    for part in parts:
        if isinstance(part, _Capture):
            if part.regex is not None or in_segment:
                return False
            in_segment = 1
        elif "/" in part:
            in_segment = 0  # a new segment starts after the literal's last "/"
    return True


class OutputPattern:
    """A compiled JobDefinition output pattern such as ``daily/date={date}``."""

    __slots__ = ("_fullmatch", "_parts", "captures", "literal_prefix", "text")

    def __init__(self, text: str) -> None:
        parts = _tokenize(text)
        _check_literals(text, parts)
        names: list[str] = []
        chunks: list[str] = []
        for part in parts:
            if isinstance(part, str):
                chunks.append(re.escape(part))
                continue
            if part.name in names:
                raise PatternError(text, part.position, f"capture {part.name!r} appears twice")
            names.append(part.name)
            inner = "[^/]+" if part.regex is None else part.regex
            if part.regex is not None:
                offset = part.position + 2 + len(part.name)
                if _compile_re2(part.regex, text, offset).groupindex:
                    raise PatternError(
                        text, part.position, "named groups are not allowed inside a capture"
                    )
            chunks.append(f"(?P<{part.name}>(?:{inner}))")
        self.text = text
        self.captures: tuple[str, ...] = tuple(names)
        source = "".join(chunks)
        self._fullmatch: Callable[[str], Any]
        if _simple(parts):
            self._fullmatch = re.compile(source + r"\Z").match
        else:
            self._fullmatch = _compile_re2(source, text, 0).fullmatch
        self._parts = tuple(parts)
        first = parts[0]
        # The literal text before the first capture, used to index patterns by prefix.
        self.literal_prefix = first if isinstance(first, str) else ""

    def match(self, ref: str) -> dict[str, str] | None:
        """The captures if ``ref`` matches this pattern, else None."""
        m = self._fullmatch(ref)
        if m is None:
            return None
        groups: dict[str, str] = m.groupdict()
        for value in groups.values():
            if "/" in value or not value:
                return None
        return groups

    def render(self, captures: Mapping[str, str]) -> PartitionRef:
        """The ref this pattern names for ``captures`` (which must satisfy it)."""
        out: list[str] = []
        for part in self._parts:
            out.append(part if isinstance(part, str) else captures[part.name])
        ref = PartitionRef("".join(out))
        if self.match(ref) != {k: captures[k] for k in self.captures}:
            raise PatternError(self.text, 0, f"captures {dict(captures)!r} do not satisfy it")
        return ref

    def __repr__(self) -> str:
        return f"OutputPattern({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutputPattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


class InputTemplate:
    """A JobDefinition input template such as ``reviews/date={date}``."""

    __slots__ = ("_format", "_parts", "captures", "text")

    def __init__(self, text: str, known_captures: Iterable[str] | None = None) -> None:
        parts = _tokenize(text)
        _check_literals(text, parts)
        known = None if known_captures is None else set(known_captures)
        names: list[str] = []
        for part in parts:
            if isinstance(part, _Capture):
                if part.regex is not None:
                    raise PatternError(
                        text, part.position, "input templates take {name}, not {name:REGEX}"
                    )
                if known is not None and part.name not in known:
                    raise PatternError(
                        text,
                        part.position,
                        f"unknown capture {part.name!r} (outputs capture {sorted(known)})",
                    )
                names.append(part.name)
        self.text = text
        self.captures: tuple[str, ...] = tuple(names)
        self._parts = tuple(parts)
        # The same as a str.format template (literals hold no braces): one call renders it.
        self._format = "".join(
            part if isinstance(part, str) else "{" + part.name + "}" for part in parts
        )

    def render(self, captures: Mapping[str, str]) -> PartitionRef:
        """The input ref for ``captures``; raises PatternError for a missing capture."""
        return PartitionRef(self._fill(captures))

    def render_matched(self, captures: Mapping[str, str]) -> PartitionRef:
        """Like :meth:`render`, for captures that :meth:`OutputPattern.match` returned.

        Such captures are non-empty pieces of a valid ref without ``/``, and the
        template's literals were checked when it was parsed (ref characters, no empty
        segment), so the result can only break the length limit: that is all this
        checks (the planner renders every input of every ref it resolves).
        """
        text = self._fill(captures)
        if len(text) > MAX_REF_LENGTH:
            return PartitionRef(text)  # raises InvalidPartitionRef, saying why
        return _trusted_ref(text)

    def _fill(self, captures: Mapping[str, str]) -> str:
        try:
            return self._format.format_map(captures)
        except KeyError:
            for part in self._parts:
                if isinstance(part, _Capture) and part.name not in captures:
                    raise PatternError(
                        self.text, part.position, f"unknown capture {part.name!r}"
                    ) from None
            raise

    def __repr__(self) -> str:
        return f"InputTemplate({self.text!r})"


def match_ref(
    ref: str, patterns: Iterable[OutputPattern]
) -> list[tuple[OutputPattern, dict[str, str]]]:
    """Every pattern matching ``ref`` with its captures, in the given order."""
    found: list[tuple[OutputPattern, dict[str, str]]] = []
    for pattern in patterns:
        captures = pattern.match(ref)
        if captures is not None:
            found.append((pattern, captures))
    return found


_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute_captures(text: str, captures: Mapping[str, str]) -> str:
    """Replace ``{name}`` for known captures in free text (commands, args, env values).

    Unknown placeholders are left alone, so shell snippets like ``${HOME}`` survive.
    """
    return _PLACEHOLDER_RE.sub(lambda m: captures.get(m.group(1), m.group(0)), text)


# --- names -------------------------------------------------------------------------------


def stable_hash(*parts: str, length: int = _HASH_LENGTH) -> str:
    """A lowercase hex digest of ``parts``, identical in every process (sha256)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return digest[:length]


def ref_hash(ref: str) -> str:
    """A label-safe (32 hex characters) hash of a ref, for label values and selectors."""
    return stable_hash(ref, length=32)


_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?\Z")


def label_safe(value: str) -> str:
    """``value`` itself if it is a valid label value (<= 63 chars), else its hash."""
    if len(value) <= 63 and _LABEL_VALUE_RE.match(value):
        return value
    return ref_hash(value)


def is_dns1123_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label (also a valid subdomain and label value)."""
    return len(name) <= 63 and _DNS1123_LABEL_RE.match(name) is not None


_NOT_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _slug(text: str, limit: int) -> str:
    slug = _NOT_SLUG_RE.sub("-", text.lower()).strip("-")
    slug = slug[:limit].rstrip("-")
    return slug or "x"


def _name(prefix_text: str, limit: int, *hash_parts: str) -> str:
    digest = stable_hash(*hash_parts)
    return f"{_slug(prefix_text, limit - len(digest) - 1)}-{digest}"


@functools.lru_cache(maxsize=1 << 18)
def partition_name(ref: str) -> str:
    """The Partition resource name for ``ref``: readable slug + hash, <= 63 characters."""
    return _name(ref, MAX_NAME_LENGTH, "partition", ref)


def jobrun_name(job_definition: str, outputs: Iterable[str], sequence: int | str) -> str:
    """The JobRun name for one build of ``outputs`` by a job.

    ``sequence`` tells builds of the same outputs apart; the planner passes the time
    it decided the build (never a count of existing runs, which drops when one is
    deleted and would name the next build like an older one). At most 56 characters,
    so ``<jobrun>-<attempt>`` stays a valid 63-character name.
    """
    refs = sorted(outputs)
    readable = f"{job_definition}-{refs[0] if refs else ''}"
    return _name(readable, MAX_JOBRUN_NAME_LENGTH, "jobrun", job_definition, *refs, str(sequence))


def batch_job_name(job_run: str, attempt: int) -> str:
    """The batch Job name of ``attempt`` (1-based) of ``job_run``: ``<jobrun>-<attempt>``.

    The operator's JobRun names leave room for the suffix; a longer one (a JobRun somebody
    else named) is shortened with a hash, because a Job's name becomes a pod label value.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    suffix = f"-{attempt}"
    if len(job_run) + len(suffix) <= MAX_NAME_LENGTH:
        return job_run + suffix
    return _name(job_run, MAX_NAME_LENGTH - len(suffix), "batchjob", job_run) + suffix


def derived_want_name(job_run: str, attempt: int) -> str:
    """The name of the Want created for the dependency miss of ``attempt`` of ``job_run``."""
    return _name(f"{job_run}-up{attempt}", MAX_NAME_LENGTH, "want", job_run, str(attempt))
