"""Where the harness finds the control plane's binaries, and what it says when it cannot."""

from __future__ import annotations

from pathlib import Path

import pytest

from databuild.testing._binaries import (
    BinariesNotFound,
    cache_bin_dir,
    databuild_dir,
    find_binaries,
    read_versions,
)

ALL = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl")
VERSIONS = """# pinned
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
"""


def _fake_bin(directory: Path, names: tuple[str, ...]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    return directory


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "hack").mkdir(parents=True)
    (root / "hack" / "versions.env").write_text(VERSIONS)
    return root


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Isolated from this checkout's own .databuild and the user's cache.
    return {
        "HOME": str(tmp_path / "home"),
        "DATABUILD_DIR": str(tmp_path / "state"),
        **extra,
    }


def test_read_versions_ignores_comments_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "versions.env"
    path.write_text("# c\n\nA=1\nB='two'\n")
    assert read_versions(path) == {"A": "1", "B": "two"}


def test_cache_dir_matches_the_builder(tmp_path: Path) -> None:
    versions = read_versions(_project(tmp_path) / "hack" / "versions.env")
    assert cache_bin_dir(versions, {"DATABUILD_CACHE": "/c"}) == Path(
        "/c/controlplane/kube-v1.36.3_etcd-v3.6.16_kwok-v0.8.0_helm-v3.22.0/bin"
    )
    assert cache_bin_dir(versions, {"HOME": "/h"}).parts[:4] == ("/", "h", ".cache", "databuild")


def test_kubebuilder_assets_comes_first_and_fills_in_from_the_cache(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assets = _fake_bin(tmp_path / "assets", ("etcd", "kube-apiserver"))
    env = _env(tmp_path, KUBEBUILDER_ASSETS=str(assets), DATABUILD_CACHE=str(tmp_path / "cache"))
    cache = _fake_bin(cache_bin_dir(read_versions(root / "hack" / "versions.env"), env), ALL)

    found = find_binaries(env=env, start=root)

    assert found.etcd == assets / "etcd"
    assert found.kube_apiserver == assets / "kube-apiserver"
    assert found.kwok == cache / "kwok"
    assert found.runs_workloads
    assert found.helm is None
    assert found.source.startswith("KUBEBUILDER_ASSETS=")


def test_kubebuilder_assets_alone_is_envtest(tmp_path: Path) -> None:
    assets = _fake_bin(tmp_path / "assets", ("etcd", "kube-apiserver"))
    found = find_binaries(env=_env(tmp_path, KUBEBUILDER_ASSETS=str(assets)), start=tmp_path)
    assert not found.runs_workloads
    assert set(found.paths()) == {"etcd", "kube-apiserver"}


def test_kubebuilder_assets_without_apiserver_is_an_error(tmp_path: Path) -> None:
    assets = _fake_bin(tmp_path / "assets", ("etcd",))
    with pytest.raises(BinariesNotFound, match="lacks kube-apiserver"):
        find_binaries(env=_env(tmp_path, KUBEBUILDER_ASSETS=str(assets)), start=tmp_path)


def test_explicit_bin_dir_is_used_and_never_second_guessed(tmp_path: Path) -> None:
    root = _project(tmp_path)
    explicit = _fake_bin(tmp_path / "explicit", ALL)
    assert (
        find_binaries(
            env=_env(tmp_path, DATABUILD_CONTROL_PLANE_BIN=str(explicit)), start=root
        ).etcd
        == explicit / "etcd"
    )

    partial = _fake_bin(tmp_path / "partial", ("etcd",))
    _fake_bin(root / ".databuild" / "bin", ALL)  # complete, but not what was asked for
    env = _env(tmp_path, DATABUILD_CONTROL_PLANE_BIN=str(partial))
    del env["DATABUILD_DIR"]
    with pytest.raises(BinariesNotFound, match="missing kube-apiserver"):
        find_binaries(env=env, start=root)


def test_project_bin_dir_before_the_cache(tmp_path: Path) -> None:
    root = _project(tmp_path)
    project_bin = _fake_bin(root / ".databuild" / "bin", ALL)
    env = _env(tmp_path, DATABUILD_CACHE=str(tmp_path / "cache"))
    del env["DATABUILD_DIR"]  # the default: the project's .databuild
    _fake_bin(cache_bin_dir(read_versions(root / "hack" / "versions.env"), env), ALL)

    (root / "sub").mkdir()
    assert find_binaries(env=env, start=root / "sub").etcd == project_bin / "etcd"


def test_nothing_built_says_what_to_run(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with pytest.raises(BinariesNotFound, match="make control-plane") as error:
        find_binaries(env=_env(tmp_path, DATABUILD_CACHE=str(tmp_path / "cache")), start=root)
    assert "controlplane/kube-v1.36.3" in str(error.value)


def test_databuild_dir_honours_the_environment(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / "deep" / "er").mkdir(parents=True)
    assert databuild_dir({}, start=root / "deep" / "er") == root / ".databuild"
    assert databuild_dir({"DATABUILD_DIR": str(tmp_path / "x")}, start=root) == tmp_path / "x"
