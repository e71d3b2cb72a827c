"""The manifests tests create, spelt once for the unit and the end-to-end tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

DAILY = "daily/date=2025-01-01"


def want(
    name: str = "w",
    partitions: Sequence[str] = (DAILY,),
    *,
    namespace: str | None = None,
    state: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A Want for ``partitions``; ``state`` also gives it a status (as a read returns it)."""
    manifest: dict[str, Any] = {
        "apiVersion": "databuild.dev/v1alpha1",
        "kind": "Want",
        "metadata": {"name": name} if namespace is None else {"name": name, "namespace": namespace},
        "spec": {"partitions": list(partitions), **spec},
    }
    if state is not None:
        manifest["status"] = {"state": state}
    return manifest
