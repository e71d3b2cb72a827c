"""Test-suite wiring: markers follow the directory a test lives in.

tests/unit          -> unit          (pure, fast, no cluster)
tests/controlplane  -> controlplane  (the local control plane, no operator)
tests/e2e           -> controlplane + e2e (the operator against the control plane)

The control-plane fixtures (`control_plane`, `kube`, `namespace`) come from the
`databuild.testing` pytest plugin, which users can load in their own suites too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
