"""requirements/image.txt, the image's hash-locked dependencies, matches pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "image.txt"


def _name(requirement: str) -> str:
    """A requirement's normalised project name (PEP 503), extras and bounds dropped."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _locked() -> dict[str, list[str]]:
    """Each pinned project -> its hashes; fails on an unpinned or unhashed line."""
    entries: dict[str, list[str]] = {}
    current = ""
    for line in LOCK.read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("--hash=sha256:"):
            entries[current].append(text.removeprefix("--hash=sha256:").rstrip(" \\"))
            continue
        assert "==" in text, f"{LOCK.name}: not pinned with ==: {text}"
        assert not text.startswith("-"), f"{LOCK.name}: no options besides hashes: {text}"
        current = _name(text)
        entries[current] = []
    return entries


def test_every_locked_project_is_pinned_with_hashes() -> None:
    locked = _locked()
    assert locked
    for name, hashes in locked.items():
        assert hashes, f"{name} has no --hash in {LOCK.name}"
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name


def test_the_lock_covers_the_product_and_postgres_and_nothing_of_the_tooling() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    wanted |= {_name(r) for r in project["optional-dependencies"]["postgres"]}
    locked = _locked()
    missing = wanted - locked.keys()
    assert not missing, f"run `make lock`: {LOCK.name} lacks {sorted(missing)}"
    # The build backend is locked too: the image builds the package without fetching it.
    assert "setuptools" in locked
    tooling = {"pytest", "cryptography", "hypothesis", "mypy", "kubernetes"} & locked.keys()
    assert not tooling, f"test tooling in the image's lock: {sorted(tooling)}"
