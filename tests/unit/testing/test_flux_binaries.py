"""Finding the Flux binaries and kstatus: where the harness looks, and what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from databuild.testing._flux import FluxNotFound, find_flux_binaries, find_kstatus, flux_cache_dir

VERSIONS = {
    "FLUX_SOURCE_CONTROLLER_VERSION": "v1.9.6",
    "FLUX_KUSTOMIZE_CONTROLLER_VERSION": "v1.9.6",
    "CLI_UTILS_VERSION": "v0.37.2",
}


def _tools(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\n")
        (directory / name).chmod(0o755)


def test_the_cache_key_names_every_version(tmp_path: Path) -> None:
    found = flux_cache_dir(VERSIONS, {"DATABUILD_CACHE": str(tmp_path)})
    assert found == tmp_path / "flux" / "source-v1.9.6_kustomize-v1.9.6_cli-utils-v0.37.2" / "bin"


def test_an_explicit_directory_is_used_and_nothing_else(tmp_path: Path) -> None:
    bin_dir = tmp_path / "flux"
    _tools(bin_dir, "source-controller", "kustomize-controller", "kstatus")
    (bin_dir / "crds").mkdir()
    found = find_flux_binaries({"DATABUILD_FLUX_BIN": str(bin_dir)})
    assert found.kustomize_controller == bin_dir / "kustomize-controller"
    assert found.crds == bin_dir / "crds"
    (bin_dir / "crds").rmdir()
    with pytest.raises(FluxNotFound, match=r"missing crds.*make flux"):
        find_flux_binaries({"DATABUILD_FLUX_BIN": str(bin_dir)})


def test_kstatus_alone_is_enough_for_find_kstatus(tmp_path: Path) -> None:
    bin_dir = tmp_path / "flux"
    _tools(bin_dir, "kstatus")
    assert find_kstatus({"DATABUILD_FLUX_BIN": str(bin_dir)}) == bin_dir / "kstatus"
    with pytest.raises(FluxNotFound, match="missing source-controller, kustomize-controller"):
        find_flux_binaries({"DATABUILD_FLUX_BIN": str(bin_dir)})
