"""Child processes: logs, stopping, and dying with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from databuild.testing._process import Process, process_start_time, rss_bytes, tail, wait_gone


def test_output_goes_to_the_log_and_stop_terminates(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "sleeper.log"
    process = Process("sleeper", ["sh", "-c", "echo hello; exec sleep 60"], log)
    process.start()
    assert process.pid is not None
    deadline = time.monotonic() + 10
    while "hello" not in tail(log).splitlines() and time.monotonic() < deadline:
        time.sleep(0.05)

    assert process.alive()
    assert (rss_bytes(process.pid) or 0) > 0
    process.stop(timeout=5)

    assert not process.alive()
    assert process.exit_code() == -signal.SIGTERM
    assert tail(log).splitlines() == ["$ sh -c echo hello; exec sleep 60", "hello"]


def test_stop_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    process = Process("stubborn", ["sh", "-c", "trap '' TERM; sleep 60 & wait"], tmp_path / "s.log")
    process.start()
    time.sleep(0.2)
    process.stop(timeout=0.5)
    assert process.exit_code() == -signal.SIGKILL


def test_children_die_with_the_parent(tmp_path: Path) -> None:
    """The parent is SIGKILLed: no handler runs, only the kernel's PR_SET_PDEATHSIG."""
    pid_file = tmp_path / "pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pathlib import Path
                from databuild.testing._process import Process
                p = Process("child", ["sleep", "60"], Path({str(tmp_path / "c.log")!r}))
                p.start()
                Path({str(pid_file)!r}).write_text(str(p.pid))
                time.sleep(60)
                """
            ),
        ]
    )
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    started = process_start_time(child)
    assert started is not None

    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    assert wait_gone(child, started, 10)


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == ""
