"""databuild.testing: a real local Kubernetes control plane for tests."""

from databuild.testing._binaries import Binaries, BinariesNotFound, find_binaries
from databuild.testing._controlplane import (
    Cluster,
    ControlPlane,
    ControlPlaneError,
    ExistingCluster,
)

__all__ = [
    "Binaries",
    "BinariesNotFound",
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "find_binaries",
]
