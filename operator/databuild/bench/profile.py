"""Sampling the operator with py-spy while a scenario runs, and reading the samples.

``py-spy record --format raw`` writes collapsed stacks: one line per distinct stack,
``frame;frame;...;frame count``, outermost frame first. :func:`top_frames` turns them
into the two lists a reader needs: where the time is spent (self samples of the
innermost frame) and what it is spent under (inclusive samples of every frame).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "PySpy", "py_spy_executable", "top_frames"]


@dataclass(frozen=True)
class Profile:
    """The busiest frames of a sampled process."""

    samples: int
    self_frames: list[tuple[str, int]] = field(default_factory=list)
    inclusive_frames: list[tuple[str, int]] = field(default_factory=list)

    def share(self, count: int) -> float:
        """``count`` as a fraction of all samples."""
        return count / self.samples if self.samples else 0.0


def _short(frame: str) -> str:
    """``func (/long/path/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    name, sep, location = frame.partition(" (")
    if not sep:
        return frame
    path = location.rstrip(")")
    parts = path.split("/")
    for anchor in ("site-packages", "databuild", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            keep = parts[index + 1 :] if anchor != "databuild" else parts[index:]
            if anchor == "lib" and keep and keep[0].startswith("python"):
                keep = keep[1:]  # the standard library: lib/python3.X/...
            return f"{name} ({'/'.join(keep)})"
    return f"{name} ({'/'.join(parts[-2:])})"


def top_frames(
    lines: Iterable[str],
    n: int = 15,
    *,
    strip_lines: bool = True,
    inclusive_in: tuple[str, ...] = (),
) -> Profile:
    """The ``n`` frames with the most self and inclusive samples in collapsed stacks.

    With ``strip_lines`` a frame is its function and file (line numbers dropped), so
    samples at different lines of one function add up. ``inclusive_in`` limits the
    inclusive list to frames whose location contains one of its strings (e.g. the
    operator's own package: the interpreter's and event loop's frames are in every
    sample and say nothing).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.strip().rpartition(" ")
        if not stack:
            continue
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [_short(f) for f in stack.split(";") if f]
        if strip_lines:
            frames = [_drop_line(f) for f in frames]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not inclusive_in or any(part in frame for part in inclusive_in):
                inclusive[frame] += count
    return Profile(total, own.most_common(n), inclusive.most_common(n))


def _drop_line(frame: str) -> str:
    name, sep, location = frame.partition(" (")
    if not sep:
        return frame
    file, _, _ = location.rstrip(")").rpartition(":")
    return f"{name} ({file or location.rstrip(')')})"


def py_spy_executable() -> str | None:
    """py-spy next to this Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file():
        return str(beside)
    return shutil.which("py-spy")


class PySpy:
    """``py-spy record`` on a process until :meth:`stop`; then :meth:`profile`."""

    def __init__(self, pid: int, output: Path, *, rate: int = 50, idle: bool = False) -> None:
        self.pid = pid
        self.output = output
        self.rate = rate
        self.idle = idle
        """Also sample threads that wait (for wall time spent blocked, not only CPU)."""
        self._process: subprocess.Popen[bytes] | None = None
        self.error = ""

    def start(self) -> PySpy:
        """Start sampling (``RuntimeError`` when py-spy is not installed)."""
        exe = py_spy_executable()
        if exe is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy (into the venv)")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(self.pid),
                "--rate",
                str(self.rate),
                "--format",
                "raw",
                "--output",
                str(self.output),
                "--nonblocking",
                *(["--idle"] if self.idle else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return self

    def stop(self) -> None:
        """Stop sampling; py-spy writes its output on SIGINT."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        self.error = (err or b"").decode(errors="replace")[-500:]
        self._process = None

    def profile(self, n: int = 15) -> Profile | None:
        """The top frames of what was recorded (``None`` if nothing was)."""
        with contextlib.suppress(OSError):
            return top_frames(
                self.output.read_text().splitlines(), n, inclusive_in=("(databuild/",)
            )
        return None
