"""Resolving a partition ref to the one JobDefinition that builds it, or why none does."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from databuild.domain.refs import OutputPattern, PartitionRef, PatternError
from databuild.domain.world import JobDefinition

__all__ = ["Blocker", "Resolution", "Resolver"]


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a ref cannot be built now: a Want condition reason and message."""

    reason: str  # NoJobDefinition | AmbiguousJobDefinition | InvalidJobDefinition | ...
    message: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """A ref resolved to exactly one valid JobDefinition."""

    job_definition: JobDefinition
    captures: Mapping[str, str]
    outputs: tuple[PartitionRef, ...]
    inputs: tuple[PartitionRef, ...]


class Resolver:
    """Resolves refs to JobDefinitions, with patterns indexed by their first segment."""

    def __init__(self, job_definitions: Mapping[str, JobDefinition]) -> None:
        self._by_segment: dict[str, list[tuple[JobDefinition, OutputPattern]]] = {}
        self._wildcard: list[tuple[JobDefinition, OutputPattern]] = []
        # Broken JobDefinitions have no compiled patterns: a ref that starts like one of
        # their outputs is blamed on it, so the Want says what to fix.
        self._invalid: list[tuple[JobDefinition, str]] = [
            (jd, text.partition("{")[0])
            for name, jd in sorted(job_definitions.items())
            if jd.error is not None
            for text in jd.outputs
        ]
        for name in sorted(job_definitions):
            jd = job_definitions[name]
            for pattern in jd.patterns:
                head, sep, _ = pattern.literal_prefix.partition("/")
                if sep:
                    self._by_segment.setdefault(head, []).append((jd, pattern))
                else:
                    self._wildcard.append((jd, pattern))
        self._cache: dict[str, Resolution | Blocker] = {}

    def resolve(self, ref: str) -> Resolution | Blocker:
        """The one JobDefinition building ``ref``, or why there is not exactly one."""
        cached = self._cache.get(ref)
        if cached is None:
            cached = self._cache[ref] = self._resolve(ref)
        return cached

    def forget(self, refs: Iterable[str]) -> None:
        """Drop cached resolutions (of a walk that was undone), keeping memory bounded."""
        cache = self._cache
        for ref in refs:
            cache.pop(ref, None)

    def _resolve(self, ref: str) -> Resolution | Blocker:
        head = ref.partition("/")[0]
        found: dict[str, tuple[JobDefinition, dict[str, str]]] = {}
        for candidates in (self._by_segment.get(head, ()), self._wildcard):
            for jd, pattern in candidates:
                if jd.name in found:
                    continue
                captures = pattern.match(ref)
                if captures is not None:
                    found[jd.name] = (jd, captures)
        if not found:
            for jd, prefix in self._invalid:
                if ref.startswith(prefix):
                    return Blocker(
                        "InvalidJobDefinition",
                        f"JobDefinition {jd.name!r} may build {ref!r} but is invalid: {jd.error}",
                    )
            return Blocker(
                "NoJobDefinition", f"no JobDefinition has an output pattern matching {ref!r}"
            )
        if len(found) > 1:
            names = ", ".join(sorted(found))
            return Blocker(
                "AmbiguousJobDefinition",
                f"{ref!r} matches the outputs of several JobDefinitions: {names}; "
                "make exactly one of them match",
            )
        jd, captures = next(iter(found.values()))
        if jd.error is not None:
            return Blocker(
                "InvalidJobDefinition", f"JobDefinition {jd.name!r} (for {ref!r}): {jd.error}"
            )
        try:
            if len(jd.patterns) == 1:
                outputs: tuple[PartitionRef, ...] = (PartitionRef(ref),)
            else:
                outputs = tuple(sorted({p.render(captures) for p in jd.patterns}))
            rendered = [t.render_matched(captures) for t in jd.templates]
            inputs = tuple(dict.fromkeys(rendered)) if len(rendered) > 1 else tuple(rendered)
        except (PatternError, ValueError) as exc:
            return Blocker(
                "InvalidJobDefinition",
                f"JobDefinition {jd.name!r} cannot build {ref!r}: {exc}",
            )
        if not set(outputs).isdisjoint(inputs):
            return Blocker(
                "DependencyCycle",
                f"JobDefinition {jd.name!r} lists an output of its own as input for {ref!r}",
            )
        return Resolution(jd, captures, outputs, inputs)
