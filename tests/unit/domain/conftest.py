"""Fixtures of the domain tests."""

from __future__ import annotations

import pytest
from domain_builders import T0, chain_world

from databuild.domain.simulation import Simulator


@pytest.fixture
def sim() -> Simulator:
    """A simulated namespace with the raw <- clean <- daily job definitions."""
    return Simulator(chain_world(), T0)
