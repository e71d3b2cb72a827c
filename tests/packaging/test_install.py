"""`pip install .` into a fresh virtualenv installs the product and nothing of the tooling.

The product is domain, adapters, operator and cli; the test harness, the benchmarks and
PostgreSQL support are extras. This installs the checkout as a user would (a real
wheel build, dependencies from the index) and looks at what arrived.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What only the extras may bring (the client benchmark measures the kubernetes client
# against the product's own, which is what the product and its test harness talk through).
TOOLING = {
    "pytest",
    "cryptography",
    "psycopg",
    "psycopg-binary",
    "hypothesis",
    "mypy",
    "kubernetes",
}


def _run(*argv: str | Path, timeout: float = 600) -> str:
    out = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, f"{argv} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtualenv with only `pip install <checkout>` done in it."""
    venv = tmp_path_factory.mktemp("product-venv")
    _run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", ROOT)
    return python


def _installed(python: Path) -> dict[str, list[str]]:
    """Every installed distribution -> the entry point groups it registers."""
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'):"
        " sorted({e.group for e in d.entry_points}) for d in m.distributions()}))"
    )
    found: dict[str, list[str]] = json.loads(_run(python, "-c", script))
    return found


def test_the_product_installs_without_test_or_bench_or_postgres_dependencies(
    product: Path,
) -> None:
    installed = _installed(product)
    assert "databuild-operator" in installed
    assert {"aiohttp", "pydantic"} <= installed.keys()
    assert TOOLING.isdisjoint(installed), (
        f"tooling in a product install: {TOOLING & installed.keys()}"
    )


def test_the_product_registers_no_pytest_plugin(product: Path) -> None:
    groups = _installed(product)["databuild-operator"]
    assert "pytest11" not in groups, "a product install must not load the harness into pytest"
    assert "console_scripts" in groups


def test_the_operator_and_cli_run_and_sqlite_is_the_default_store(product: Path) -> None:
    bin_dir = product.parent
    assert "usage: python -m databuild.operator" in _run(
        product, "-m", "databuild.operator", "--help"
    )
    assert "usage:" in _run(bin_dir / "databuild", "--help")
    # The embedded BEL store works without the postgres extra; asking for PostgreSQL
    # says which extra to install instead of failing with a bare ModuleNotFoundError.
    script = (
        "from databuild.adapters.bel import open_store, BelStoreError\n"
        "open_store('sqlite:///:memory:').close()\n"
        "try:\n"
        "    open_store('postgresql://u@h/db')\n"
        "except BelStoreError as e:\n"
        "    print(e)\n"
    )
    message = _run(product, "-c", script)
    assert "databuild-operator[postgres]" in message, message


def test_the_harness_says_which_extra_it_needs(product: Path) -> None:
    out = subprocess.run(
        [str(product), "-c", "import databuild.testing"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "databuild-operator[testing]" in out.stderr, out.stderr
