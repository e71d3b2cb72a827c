"""State diagrams (mermaid) generated from the state machines' transition tables.

``python -m databuild.domain.diagrams [PATH]`` writes them (default
``docs/state-machines.md``); ``--check`` exits 1 if the file differs from the code.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from databuild.domain.events import EntityKind
from databuild.domain.states import INITIAL_STATES, TERMINAL_STATES, edges

__all__ = ["DEFAULT_PATH", "main", "render_markdown", "render_mermaid"]

DEFAULT_PATH = Path("docs/state-machines.md")

_WHEN: Mapping[EntityKind, str] = {
    EntityKind.PARTITION: (
        "A Partition is never terminal: a Failed or Tainted partition is rebuilt when a "
        "live need asks for it."
    ),
    EntityKind.JOB_RUN: (
        "`attempt` counts every batch Job (dependency-miss re-runs included); only failed "
        "attempts spend the retry budget."
    ),
    EntityKind.WANT: (
        "The planner derives a Want's state from its partitions each time it plans, moving "
        "it only along these edges (Pending to Successful goes through Building)."
    ),
}


def render_mermaid(kind: EntityKind) -> str:
    """A ``stateDiagram-v2`` of ``kind``: edges labelled with the transition methods."""
    lines = ["stateDiagram-v2", f"    [*] --> {INITIAL_STATES[kind]}"]
    for (source, target), method in edges(kind).items():
        lines.append(f"    {source} --> {target}: {method}")
    for state in sorted(TERMINAL_STATES[kind]):
        lines.append(f"    {state} --> [*]")
    return "\n".join(lines) + "\n"


def render_markdown() -> str:
    """The whole ``docs/state-machines.md``."""
    parts = [
        "# State machines\n",
        "Generated from the transition methods of `databuild.domain.states` by "
        "`python -m databuild.domain.diagrams`; a unit test fails when this file drifts "
        "from the code. Edge labels are the method names.\n",
    ]
    for kind in (EntityKind.PARTITION, EntityKind.JOB_RUN, EntityKind.WANT):
        parts.append(f"## {kind}\n")
        parts.append(_WHEN[kind] + "\n")
        parts.append("```mermaid\n" + render_mermaid(kind) + "```\n")
        parts.append("| from | to | transition |\n|---|---|---|")
        rows = [f"| {s} | {t} | `{m}` |" for (s, t), m in edges(kind).items()]
        parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the diagrams file."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_PATH
    text = render_markdown()
    if check:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(
                f"{path} is out of date: run python -m databuild.domain.diagrams", file=sys.stderr
            )
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
