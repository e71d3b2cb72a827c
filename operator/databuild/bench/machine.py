"""What the benchmark ran on: CPU, cores, memory, OS, Python and Kubernetes versions."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Machine", "describe_machine", "parse_cpu_model", "parse_mem_total"]


def parse_cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` in ``/proc/cpuinfo`` text ("unknown" if none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return "unknown"


def parse_mem_total(meminfo: str) -> int | None:
    """``MemTotal`` in bytes from ``/proc/meminfo`` text."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class Machine:
    """The machine and software versions of a benchmark run."""

    date: str
    cpu_model: str
    cores: int
    memory_bytes: int | None
    os: str
    python: str
    kubernetes: str
    load_average: tuple[float, float, float] | None

    def lines(self) -> list[tuple[str, str]]:
        """``(what, value)`` rows for a report."""
        memory = f"{self.memory_bytes / 2**30:.1f} GiB" if self.memory_bytes else "unknown"
        load = " / ".join(f"{x:.2f}" for x in self.load_average) if self.load_average else "unknown"
        return [
            ("date (UTC)", self.date),
            ("CPU", self.cpu_model),
            ("cores", str(self.cores)),
            ("memory", memory),
            ("OS", self.os),
            ("Python", self.python),
            ("Kubernetes (apiserver)", self.kubernetes),
            ("load average at start (1/5/15 min)", load),
        ]


def describe_machine(kubernetes_version: str) -> Machine:
    """This machine, now."""
    try:
        load: tuple[float, float, float] | None = os.getloadavg()
    except OSError:
        load = None
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        cpu_model=parse_cpu_model(_read("/proc/cpuinfo")),
        cores=os.cpu_count() or 0,
        memory_bytes=parse_mem_total(_read("/proc/meminfo")),
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        kubernetes=kubernetes_version,
        load_average=load,
    )
