"""How the planner names refs in messages: a few of them, each of bounded length."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MESSAGE_REFS", "clip", "short"]

MESSAGE_REFS = 5
"""Refs named in a message before "and N more"."""


def short(refs: Iterable[str]) -> str:
    """The first few of ``refs``, then how many more."""
    items = list(refs)
    shown = ", ".join(items[:MESSAGE_REFS])
    more = len(items) - MESSAGE_REFS
    return f"{shown} and {more} more" if more > 0 else shown


def clip(ref: str, limit: int = 80) -> str:
    """``ref`` cut in the middle to at most about ``limit`` characters."""
    return ref if len(ref) <= limit else f"{ref[: limit // 2]}...{ref[-limit // 2 :]}"
