"""Only the Kubernetes boundary speaks HTTP: the standard library's HTTP clients.

The import contract in pyproject.toml checks aiohttp, httpx and kubernetes; import-linter
sees external packages only by their top-level name, so ``urllib.request`` and
``http.client`` (``urllib.parse`` and ``http.server`` are fine) are checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import databuild

CLIENTS = ("urllib.request", "http.client")
#: module -> why it may use a standard-library HTTP client.
ALLOWED = {
    # Scrapes of the operator's own /metrics and /healthz, not the API server.
    "databuild.testing.demo": "urllib.request",
    "databuild.testing._process": "urllib.request",
    "databuild.bench.session": "urllib.request",
    # Not moved yet: the control plane's readiness probes of etcd, the apiserver and
    # the other components, made before any kubeconfig exists.
    "databuild.testing._controlplane": "http.client",
    "databuild.testing.cluster": "http.client",
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_boundary_imports_a_standard_library_http_client() -> None:
    root = Path(databuild.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        module = ".".join(("databuild", *path.relative_to(root).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        if module.startswith("databuild.adapters.kube"):
            continue
        for name in _imports(path):
            client = next((c for c in CLIENTS if name == c or name.startswith(f"{c}.")), None)
            if client and ALLOWED.get(module) != client:
                offenders.append(f"{module} imports {name}")
    assert not offenders, "use databuild.adapters.kube instead:\n" + "\n".join(offenders)


def test_the_check_sees_both_spellings(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import urllib.request\nfrom http import client\n")
    assert {"urllib.request", "http.client"} <= _imports(source)
