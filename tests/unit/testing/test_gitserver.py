"""The loopback git server: a repository committed through it clones over smart HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

from databuild.testing._gitserver import GitServer


def test_a_commit_is_served_over_smart_http(tmp_path: Path) -> None:
    with GitServer(tmp_path / "served") as server:
        repo = server.repository("config")
        first = repo.commit("first", {"a.yaml": "a: 1\n", "dir/b.yaml": "b: 2\n"})
        second = repo.commit("second", {"a.yaml": ""})  # an empty text deletes
        clone = tmp_path / "clone"
        done = subprocess.run(
            ["git", "clone", "--quiet", repo.url, str(clone)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
        assert done.returncode == 0, done.stderr
        head = subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert head == second != first
        assert not (clone / "a.yaml").exists()
        assert (clone / "dir" / "b.yaml").read_text() == "b: 2\n"
        # The smart protocol, not a static file listing.
        assert "git-upload-pack" in server.log.read_text()
        missing = subprocess.run(
            ["git", "ls-remote", f"{server.url}/nothing-here"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert missing.returncode != 0
