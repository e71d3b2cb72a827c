"""CPU time and memory of a process, read from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessSample", "parse_stat_cpu_ticks", "parse_status_kib", "sample"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat_cpu_ticks(stat: str) -> int:
    """utime + stime (clock ticks) from the text of ``/proc/<pid>/stat``."""
    # The command name (field 2) may contain spaces and parentheses: split after the
    # last ")". utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def parse_status_kib(status: str, key: str) -> int | None:
    """A ``kB`` value (e.g. ``VmRSS``, ``VmHWM``) from the text of ``/proc/<pid>/status``."""
    for line in status.splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return None


@dataclass(frozen=True)
class ProcessSample:
    """One reading of a process: CPU seconds so far, resident and peak resident memory."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def sample(pid: int) -> ProcessSample | None:
    """Read ``pid``'s CPU time and memory; ``None`` when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = parse_status_kib(status, "VmRSS") or 0
    peak = parse_status_kib(status, "VmHWM") or rss
    return ProcessSample(parse_stat_cpu_ticks(stat) / _CLOCK_TICKS, rss * 1024, peak * 1024)
