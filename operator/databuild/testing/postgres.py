"""A throwaway PostgreSQL server for tests: temp data dir, loopback port, no setup.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` system user (created by Debian's ``postgresql`` package) via ``runuser``.

Use the pytest fixtures (``postgres_server`` for the session, ``postgres_url`` for a
fresh database per test), or :class:`LocalPostgres` directly::

    with LocalPostgres() as pg:
        url = pg.create_database("mytest")

The server can be stopped and started again on the same port and data dir
(:meth:`LocalPostgres.stop`, :meth:`LocalPostgres.start`), which is how outage tests
simulate a database going away mid-stream.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import psycopg
import pytest

__all__ = [
    "LocalPostgres",
    "PostgresNotAvailable",
    "find_postgres_bin",
    "postgres_server",
    "postgres_url",
]

_SUPERUSER = "databuild"
_BIN_ENV = "DATABUILD_POSTGRES_BIN"


class PostgresNotAvailable(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_postgres_bin() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Looks at ``$DATABUILD_POSTGRES_BIN``, then ``PATH``, then Debian's
    ``/usr/lib/postgresql/<version>/bin`` (newest version first).
    """
    explicit = os.environ.get(_BIN_ENV)
    if explicit:
        return Path(explicit)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if (p / "bin" / "initdb").exists()),
            key=lambda p: [int(x) for x in p.name.split(".") if x.isdigit()],
            reverse=True,
        )
        if versions:
            return versions[0] / "bin"
    raise PostgresNotAvailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
        "(Debian: apt-get install postgresql) or set "
        f"{_BIN_ENV} to the directory that holds them."
    )


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalPostgres:
    """One PostgreSQL server in a temp dir, listening on 127.0.0.1 and a unix socket."""

    def __init__(self, port: int | None = None, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_postgres_bin()
        self.port = port or _free_loopback_port()
        self.root = Path(tempfile.mkdtemp(prefix="databuild-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_file = self.root / "postgres.log"
        self._run_as: str | None = None
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            self._run_as = "postgres"
            user = pwd.getpwnam(self._run_as)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.socket_dir.mkdir()
        if self._run_as:
            user = pwd.getpwnam(self._run_as)
            os.chown(self.socket_dir, user.pw_uid, user.pw_gid)
        self._initialised = False
        self.running = False

    @property
    def host(self) -> str:
        """The loopback address the server listens on."""
        return "127.0.0.1"

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL for database `dbname` on this server."""
        return f"postgresql://{_SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def _cmd(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *cmd]
        return cmd

    def _run(self, tool: str, *args: str) -> None:
        proc = subprocess.run(
            self._cmd(tool, *args),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if proc.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}\n{log[-4000:]}"
            )

    def start(self) -> None:
        """Initialise the data dir (first time only) and start the server; waits until ready."""
        if not self._initialised:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                _SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            self._initialised = True
        # fsync=off only risks data on an OS crash; commits stay synchronous so that
        # killing the server (outage tests) never loses an acknowledged commit.
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} "
            "-c fsync=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`mode`: smart, fast or immediate). The data dir is kept."""
        if self.running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
            self.running = False

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database and return its URL."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name is ours, not user input
        return self.url(name)

    def cleanup(self) -> None:
        """Stop the server and delete its files."""
        with contextlib.suppress(RuntimeError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[LocalPostgres]:
    """A PostgreSQL server shared by the test session."""
    with LocalPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: LocalPostgres) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    if not postgres_server.running:  # a previous test stopped it and failed midway
        postgres_server.start()
    return postgres_server.create_database()
