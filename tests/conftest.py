"""Test-suite wiring: markers follow the directory a test lives in.

tests/unit          -> unit          (pure, fast, no cluster)
tests/controlplane  -> controlplane  (the local control plane, no operator)
tests/e2e           -> controlplane + e2e (the operator against the control plane)
tests/packaging     -> packaging     (a fresh virtualenv, the image of `make image`)

The control-plane fixtures (`control_plane`, `kube`, `namespace`) come from the
`databuild.testing` pytest plugin, which users can load in their own suites too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The harness's fixtures; opt-in, like any user's suite (the product registers no
# pytest11 entry point).
pytest_plugins = ["databuild.testing.pytest_plugin"]

_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(_TESTS).parts
        if parts[0] == "unit":
            item.add_marker(pytest.mark.unit)
        elif parts[0] in ("controlplane", "e2e"):
            item.add_marker(pytest.mark.controlplane)
            if parts[0] == "e2e":
                item.add_marker(pytest.mark.e2e)
        elif parts[0] == "packaging":
            item.add_marker(pytest.mark.packaging)
