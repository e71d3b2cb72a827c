"""Where the operator's memory goes: tracemalloc inside the operator process, on request.

With ``--trace-memory`` the bench puts a ``sitecustomize`` module next to its snapshot of
the code. Python imports it at start-up; when ``DATABUILD_BENCH_TRACEMALLOC`` names a
file, it starts tracemalloc and, on SIGUSR1, writes the biggest allocation sites there
as JSON lines. The operator's own code is untouched. tracemalloc slows Python down, so
the wall times of such a run are not comparable: it is for the memory table only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ENV", "SITECUSTOMIZE", "AllocationSite", "install_hook", "parse_sites"]

ENV = "DATABUILD_BENCH_TRACEMALLOC"

SITECUSTOMIZE = '''\
"""Written by databuild.bench: tracemalloc on request (see databuild.bench.memory)."""
import os

_OUT = os.environ.get("DATABUILD_BENCH_TRACEMALLOC")
if _OUT:
    import json
    import signal
    import tracemalloc

    tracemalloc.start(12)

    def _dump(signum, frame):
        # Each live block is charged to the innermost frame in the operator's own code
        # (the line that made or kept it), else to its innermost frame.
        snapshot = tracemalloc.take_snapshot()
        sizes, counts = {}, {}
        total = 0
        for stat in snapshot.statistics("traceback"):
            total += stat.size
            frames = list(stat.traceback)
            chosen = next((f for f in reversed(frames) if "/databuild/" in f.filename), None)
            chosen = chosen or frames[-1]
            site = f"{chosen.filename}:{chosen.lineno}"
            sizes[site] = sizes.get(site, 0) + stat.size
            counts[site] = counts.get(site, 0) + stat.count
        tmp = _OUT + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps({"site": "(total)", "size": total, "count": len(sizes)}) + "\\n")
            for site in sorted(sizes, key=sizes.get, reverse=True)[:25]:
                item = {"site": site, "size": sizes[site], "count": counts[site]}
                f.write(json.dumps(item) + "\\n")
        os.replace(tmp, _OUT)

    signal.signal(signal.SIGUSR1, _dump)
'''


def install_hook(source: Path) -> None:
    """Write the ``sitecustomize`` module into a PYTHONPATH directory."""
    (source / "sitecustomize.py").write_text(SITECUSTOMIZE)


@dataclass(frozen=True)
class AllocationSite:
    """Memory allocated (and still live) at one source line."""

    site: str
    size_bytes: int
    count: int


def _short(site: str) -> str:
    parts = site.split("/")
    for anchor in ("site-packages", "databuild"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[index + 1 :] if anchor == "site-packages" else parts[index:])
    if "lib" in parts:
        rest = parts[len(parts) - 1 - parts[::-1].index("lib") + 1 :]
        return "/".join(rest[1:] if rest and rest[0].startswith("python") else rest)
    return "/".join(parts[-2:])


def parse_sites(lines: Iterable[str]) -> list[AllocationSite]:
    """The JSON lines the hook writes (the first is the total), paths shortened."""
    sites = []
    for line in lines:
        if not line.strip():
            continue
        item = json.loads(line)
        sites.append(
            AllocationSite(_short(str(item["site"])), int(item["size"]), int(item["count"]))
        )
    return sites
