"""databuild.testing: a real local Kubernetes control plane for tests, yours and ours.

- `ControlPlane`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
  kwok (one simulated node) as local processes; `with ControlPlane() as cp: ...`.
- `ExistingCluster`: the same interface for a cluster somebody else runs.
- `node`: the real node beside it (containerd, kubelet, kube-proxy; on by default where
  the machine can run it): real containers from images built here.
- `outcomes`: labels and annotations that make simulated Job pods fail, fail once,
  exit with a code and message, or run for a while.
- `Kube` (`databuild.testing.kube`): blocking requests to a cluster on the product's
  own client (`databuild.adapters.kube`), objects as plain dicts.
- The pytest plugin `databuild.testing.pytest_plugin` (opt in with
  `pytest_plugins = ["databuild.testing.pytest_plugin"]` in a conftest.py):
  fixtures `control_plane`, `kube` and `namespace`.
- `python -m databuild.testing.cluster up|down|status`: the same control plane in
  the background (`make cluster-up`, `make cluster-down`).

See docs/testing.md.
"""

try:
    import cryptography  # noqa: F401 - the harness's certificates
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "databuild.testing is the `testing` extra, and its dependencies are not installed "
        f"({e}): pip install 'databuild-operator[testing]'"
    ) from e

from databuild.testing import node, outcomes
from databuild.testing._binaries import Binaries, BinariesNotFound, find_binaries
from databuild.testing._controlplane import (
    NODE_NAME,
    Cluster,
    ControlPlane,
    ControlPlaneError,
    ExistingCluster,
    Ports,
    api_client_from_kubeconfig,
)
from databuild.testing.kube import Kube

__all__ = [
    "NODE_NAME",
    "Binaries",
    "BinariesNotFound",
    "Cluster",
    "ControlPlane",
    "ControlPlaneError",
    "ExistingCluster",
    "Kube",
    "Ports",
    "api_client_from_kubeconfig",
    "find_binaries",
    "node",
    "outcomes",
]
