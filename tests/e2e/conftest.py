"""Fixtures for end-to-end tests: the CRDs installed, the operator running, and helpers.

The control plane itself (``control_plane``, ``kube``, ``namespace``) comes from the
``databuild.testing`` pytest plugin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from databuild.testing.demo import install_crds

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def crds(kube: ApiClient) -> Iterator[None]:
    """The CRDs in ``crds/``, applied and Established."""
    install_crds(kube, ROOT / "crds")
    yield
