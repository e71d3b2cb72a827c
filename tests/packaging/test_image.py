"""The image `make image` builds, run with `buildah run` (no daemon): only the product.

`.ci/run` builds the image before the tests; here it is rebuilt from buildah's layer
cache (seconds when nothing changed) so the test never checks a stale one.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from tests.controlplane.realnode import built_image


@pytest.fixture(scope="module")
def container() -> Iterator[str]:
    """A working container of the operator image."""
    image = built_image("operator")
    name = subprocess.run(
        ["buildah", "from", "--quiet", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True, check=False)


def _python(container: str, script: str) -> str:
    out = subprocess.run(
        ["buildah", "run", "--isolation", "chroot", container, "--", "python", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_image_holds_the_product_and_none_of_the_tooling(container: str) -> None:
    script = (
        "import importlib.metadata as m, importlib.util as u, json;"
        "print(json.dumps({'dists': sorted(d.metadata['Name'].lower() for d in m.distributions()),"
        " 'testing': u.find_spec('databuild.testing') is not None,"
        " 'bench': u.find_spec('databuild.bench') is not None}))"
    )
    found = json.loads(_python(container, script))
    assert {"databuild-operator", "aiohttp", "psycopg"} <= set(found["dists"])
    tooling = {"pytest", "cryptography", "pip", "setuptools", "hypothesis", "kubernetes"}
    tooling &= set(found["dists"])
    assert not tooling, f"tooling in the image: {tooling}"
    assert not found["testing"], "the test harness does not belong in the image"
    assert not found["bench"], "the benchmarks do not belong in the image"


def test_the_operator_starts_as_its_numeric_user(container: str) -> None:
    # The uid has no passwd entry; $USER gives it a login name all the same.
    out = _python(container, "import getpass, os; print(os.getuid(), getpass.getuser())")
    assert out.split() == ["65532", "databuild"]
    usage = _python(
        container,
        "import sys; sys.argv = ['x', '--help']\n"
        "import runpy; runpy.run_module('databuild.operator', run_name='__main__')",
    )
    assert "--kubeconfig" in usage
