"""A git repository served over smart HTTP on loopback, for GitOps tests.

Flux's GitRepository accepts only http(s) and ssh URLs, and its git client speaks the
smart protocol, so the repository is served by git's own CGI program
(`git http-backend`) behind a small threaded HTTP server in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote


class GitServerError(RuntimeError):
    """git is missing or a git command failed."""


def _git_binary() -> str:
    git = shutil.which("git")
    if git is None:
        raise GitServerError("git is not installed (Debian: apt-get install git)")
    return git


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._cgi()

    def do_POST(self) -> None:
        self._cgi()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _cgi(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._body()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "REMOTE_ADDR": self.client_address[0],
        }
        done = subprocess.run(
            [self.server.git, "http-backend"],
            input=body,
            env=env,
            capture_output=True,
            check=False,
            timeout=60,
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if done.returncode != 0 and not head:
            status, payload = 500, done.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        with self.server.log.open("a") as out:
            out.write(f"{self.address_string()} {format % args}\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, git: str, log: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.git = git
        self.log = log


class GitRepository:
    """A working git repository under the server's root: write files, commit, serve."""

    def __init__(self, path: Path, url: str, git: str) -> None:
        self.path = path
        self.url = url
        self._git = git

    def git(self, *args: str) -> str:
        """Run a git command in the repository; its stdout."""
        done = subprocess.run(
            [self._git, *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={
                **os.environ,
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_AUTHOR_NAME": "databuild tests",
                "GIT_AUTHOR_EMAIL": "tests@databuild.invalid",
                "GIT_COMMITTER_NAME": "databuild tests",
                "GIT_COMMITTER_EMAIL": "tests@databuild.invalid",
            },
        )
        if done.returncode != 0:
            raise GitServerError(f"git {' '.join(args)} in {self.path}: {done.stderr.strip()}")
        return done.stdout

    def write(self, files: dict[str, str]) -> None:
        """Write (or, with an empty text, delete) files relative to the repository."""
        for name, text in files.items():
            target = self.path / name
            if text == "":
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        """Write `files`, commit everything, and return the new commit's hash."""
        if files:
            self.write(files)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").strip()


class GitServer:
    """Serves every repository under `root` at http://127.0.0.1:<port>/<name>."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.git = _git_binary()
        self.log = self.root / "http.log"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        if self._server is None:
            raise GitServerError("the git server is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> GitServer:
        """Listen on a free loopback port, serving from a daemon thread."""
        self._server = _Server(self.root, self.git, self.log)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="git-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; idempotent."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def repository(self, name: str, branch: str = "main") -> GitRepository:
        """A new, empty repository `name` (on `branch`), served at `<url>/<name>`."""
        path = self.root / name
        path.mkdir(parents=True)
        repo = GitRepository(path, f"{self.url}/{name}", self.git)
        repo.git("init", "--quiet", f"--initial-branch={branch}")
        return repo
