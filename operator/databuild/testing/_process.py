"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
# Looked up once in the parent: the child, between fork and exec, should do as
# little as possible.
_LIBC = (
    ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True) if sys.platform == "linux" else None
)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        # The kernel SIGKILLs the child when the thread that forked it dies, however
        # it dies (kill -9 of pytest included), so no component is ever orphaned.
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect: then nobody will.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file ("" when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class Process:
    """One component: its command line, its log file and (once started) its process.

    The child runs in its own session, so a Ctrl-C in the terminal reaches only the
    harness, which then stops the components in order; and it gets SIGKILL if the
    starting thread dies first (Linux `PR_SET_PDEATHSIG`). Start components from a
    thread that lives as long as they should (the main thread, usually).
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The process id once started."""
        return self.popen.pid if self.popen is not None else None

    def start(self) -> None:
        """Start the process, appending its stdout and stderr to its log file."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"$ {' '.join(self.argv)}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - see _die_with_parent
            )

    def exit_code(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        """Whether the process was started and is still running."""
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM its process group, then SIGKILL after `timeout` seconds."""
        popen = self.popen
        if popen is None or popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the component's log."""
        return tail(self.log, lines)


def wait_ready(
    process: Process,
    name: str,
    url: str,
    timeout: float,
    error: Callable[[str], Exception] = RuntimeError,
) -> None:
    """Poll ``url`` until it answers 200; raise ``error`` with ``process``'s log tail if
    the process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise error(
                f"{name} exited with {process.exit_code()} while starting; "
                f"its log ({process.log}):\n{process.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise error(
        f"{name} did not answer {url} within {timeout:.0f}s; "
        f"its log ({process.log}):\n{process.log_tail()}"
    )


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a process from /proc (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (from /proc/<pid>/stat).

    Together with the pid it identifies a process: a recycled pid has another start
    time, so a stale pid file never makes us signal a stranger.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are fixed.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def wait_gone(pid: int, start_time: int | None, timeout: float) -> bool:
    """Wait until the process (pid, start time) no longer exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process_start_time(pid) != start_time or _is_zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2 :].split()[0] == "Z"


_exit_hooks: set[Callable[[], None]] = set()
_exit_hooks_lock = threading.Lock()


def install_exit_hooks(cleanup: Callable[[], None]) -> None:
    """Run `cleanup` at interpreter exit and on SIGTERM/SIGHUP (once per callable).

    SIGTERM and SIGHUP would otherwise end Python without running atexit handlers;
    they are turned into SystemExit, but only where nobody installed a handler of
    their own and only from the main thread (where Python delivers signals).
    """
    with _exit_hooks_lock:
        if cleanup in _exit_hooks:
            return
        _exit_hooks.add(cleanup)
    atexit.register(cleanup)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is signal.SIG_DFL:
            signal.signal(signum, _exit_on_signal)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
