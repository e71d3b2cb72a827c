"""The real node's pure parts: placement, image names, the switch, and its safety guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from databuild.testing import node
from databuild.testing._node import host_namespaces, kill_namespace, namespace_pids, sweep


def test_placement_selects_the_real_node_and_tolerates_its_taint() -> None:
    spec = node.placement()
    key, value = node.LABEL
    assert spec["nodeSelector"] == {key: value}
    (toleration,) = spec["tolerations"]
    assert (toleration["key"], toleration["value"]) == (node.TAINT["key"], node.TAINT["value"])
    assert node.TAINT["effect"] == "NoSchedule", "pods that do not ask must not land there"


@pytest.mark.parametrize(
    ("buildah", "containerd"),
    [
        ("localhost/databuild-operator:0.1.0", "docker.io/library/databuild-operator:0.1.0"),
        ("localhost/team/job:2", "team/job:2"),
        ("registry.example.com/team/job:2", "registry.example.com/team/job:2"),
    ],
)
def test_containerd_names_images_as_the_kubelet_does(buildah: str, containerd: str) -> None:
    assert node.containerd_name(buildah) == containerd


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, "auto"), ("", "auto"), ("auto", "auto"), ("1", "on"), ("true", "on"),
     ("0", "off"), ("no", "off")],
)  # fmt: skip
def test_the_switch(value: str | None, expected: str) -> None:
    env = {} if value is None else {node.ENV: value}
    assert node.wanted(env) == expected


@pytest.mark.skipif(not Path("/proc/self/ns/net").exists(), reason="needs Linux /proc")
def test_the_host_namespace_is_never_swept() -> None:
    # Stopping a node kills every process of its network namespace: taking the host's
    # for the node's would kill every process on the machine.
    (ours, *_) = sorted(host_namespaces())
    with pytest.raises(node.RealNodeError, match="host's network namespace"):
        namespace_pids(ours)
    with pytest.raises(node.RealNodeError):
        kill_namespace(ours)
    with pytest.raises(node.RealNodeError):
        sweep(ours, "", "")
    with pytest.raises(node.RealNodeError):
        namespace_pids("")
