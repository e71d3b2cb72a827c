"""Output helpers: ``-o json|yaml|table``, ages, durations and times."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import yaml

from databuild.cli.errors import CliError, ExitCode

__all__ = [
    "OUTPUT_FORMATS",
    "age",
    "emit",
    "iso",
    "names_of",
    "parse_duration",
    "parse_time",
    "table",
]

OUTPUT_FORMATS = ("table", "wide", "name", "json", "yaml")
"""``-o``: ``table`` for people, ``wide`` with more detail, ``name`` one ``kind/name`` a line
(for ``xargs``), ``json``/``yaml`` for programs."""

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` -> a timedelta."""
    text = text.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groups()):
        raise CliError(
            f"invalid duration {text!r}: use seconds (90) or units like 90s, 15m, 2h, 1d, 1h30m",
            ExitCode.USAGE,
        )
    d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


def parse_time(text: str, now: datetime) -> datetime:
    """An RFC 3339 / ISO 8601 time (UTC when no offset), or a duration meaning "ago"."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        try:
            return now - parse_duration(raw)
        except CliError:
            raise CliError(
                f"invalid time {text!r}: use e.g. 2025-01-01T12:00:00Z, 2025-01-01, or an "
                "age such as 10m or 2h (meaning that long ago)",
                ExitCode.USAGE,
            ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(moment: datetime | None) -> str:
    """A time as RFC 3339 UTC with a Z, or "-"."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def age(moment: datetime | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 5d (or "-")."""
    if moment is None:
        return "-"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 120 * 60:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, like kubectl."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def names_of(data: Any) -> list[str]:
    """``kind/name`` of each object in `data` (a wire object, a status dict, or a list)."""
    items = data if isinstance(data, list) else [data]
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        meta = item.get("metadata") or {}
        name = meta.get("name") or item.get("name")
        if not name:
            continue
        kind = str(item.get("kind") or "Want").lower()
        found.append(f"{kind}.databuild.dev/{name}")
    return found


def emit(data: Any, fmt: str, out: TextIO, text: str | None = None) -> None:
    """Write `data` as JSON, YAML or names, or `text` for the table format."""
    if fmt == "name":
        for line in names_of(data):
            out.write(line + "\n")
    elif fmt == "json":
        out.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    elif fmt == "yaml":
        out.write(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    else:
        out.write((text if text is not None else str(data)) + "\n")
