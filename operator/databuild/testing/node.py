"""The real node of the local control plane, for tests that need real containers.

`ControlPlane` starts it beside kwok's simulated node where the machine can run it
(root, containerd, runc, the CNI plugins, buildah, and kubelet and kube-proxy from
`make control-plane`); `DATABUILD_REAL_NODE=0` turns it off, `=1` makes its absence an
error. A pod runs there only if it asks::

    spec = {**node.placement(), "containers": [...]}

and its image is in the node's containerd: `control_plane.load_image("localhost/x:1")`
copies one from buildah's storage and returns the name to use (with `imagePullPolicy:
Never` or `IfNotPresent`). See docs/testing.md and docs/control-plane.md.
"""

from databuild.testing._node import (
    ENV,
    LABEL,
    NAME,
    TAINT,
    RealNode,
    RealNodeError,
    containerd_name,
    placement,
    wanted,
)

__all__ = [
    "ENV",
    "LABEL",
    "NAME",
    "TAINT",
    "RealNode",
    "RealNodeError",
    "containerd_name",
    "placement",
    "wanted",
]
