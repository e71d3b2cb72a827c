"""The Kueue harness's pure parts: where it looks, its configuration, its webhooks."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from databuild.testing._kueue import (
    FRAMEWORKS,
    KueueNotFound,
    find_kueue_binaries,
    kueue_cache_dir,
    kueue_configuration,
    webhook_configurations,
)


def _install(directory: Path) -> None:
    (directory / "crds").mkdir(parents=True)
    (directory / "webhook").mkdir()
    (directory / "webhook" / "manifests.yaml").write_text("---\n")
    (directory / "kueue").write_text("#!/bin/sh\n")
    (directory / "kueue").chmod(0o755)


def test_the_cache_is_per_version(tmp_path: Path) -> None:
    found = kueue_cache_dir({"KUEUE_VERSION": "v0.17.0"}, {"DATABUILD_CACHE": str(tmp_path)})
    assert found == tmp_path / "kueue" / "v0.17.0" / "bin"


def test_an_explicit_directory_is_used_and_nothing_else(tmp_path: Path) -> None:
    bin_dir = tmp_path / "kueue"
    _install(bin_dir)
    found = find_kueue_binaries({"DATABUILD_KUEUE_BIN": str(bin_dir)})
    assert found.kueue == bin_dir / "kueue"
    assert found.webhooks == bin_dir / "webhook" / "manifests.yaml"
    (bin_dir / "webhook" / "manifests.yaml").unlink()
    with pytest.raises(KueueNotFound, match=r"missing webhook/manifests\.yaml.*make kueue"):
        find_kueue_binaries({"DATABUILD_KUEUE_BIN": str(bin_dir)})


def test_the_configuration_keeps_everything_on_loopback_and_only_queued_jobs(
    tmp_path: Path,
) -> None:
    config = kueue_configuration(
        webhook_port=1001, cert_dir=tmp_path, metrics_port=1002, health_port=1003
    )
    assert config["webhook"] == {"host": "127.0.0.1", "port": 1001, "certDir": str(tmp_path)}
    assert config["metrics"]["bindAddress"] == "127.0.0.1:1002"
    assert config["health"]["healthProbeBindAddress"] == "127.0.0.1:1003"
    assert config["manageJobsWithoutQueueName"] is False
    assert config["leaderElection"] == {"leaderElect": False}
    assert config["internalCertManagement"] == {"enable": False}
    assert config["integrations"]["frameworks"] == list(FRAMEWORKS) == ["batch/job"]


def _webhook(name: str, group: str, path: str) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": {
            "service": {"name": "webhook-service", "namespace": "system", "path": path}
        },
        "rules": [{"apiGroups": [group], "apiVersions": ["v1"], "operations": ["CREATE"]}],
        "failurePolicy": "Fail",
    }


def test_webhooks_are_pointed_at_loopback_and_other_integrations_left_out() -> None:
    manifests = [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "mutating-webhook-configuration"},
            "webhooks": [
                _webhook("mjob.kb.io", "batch", "/mutate-batch-v1-job"),
                _webhook("mpod.kb.io", "", "/mutate--v1-pod"),
                _webhook("mworkload.kb.io", "kueue.x-k8s.io", "/mutate-workload"),
                _webhook("mdeployment.kb.io", "apps", "/mutate-apps-v1-deployment"),
            ],
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "webhook-service"}},
    ]
    out = webhook_configurations(manifests, "https://127.0.0.1:9443/", b"PEM")
    assert len(out) == 1
    (config,) = out
    assert config["metadata"] == {"name": "kueue-mutating-webhook-configuration"}
    assert [w["name"] for w in config["webhooks"]] == ["mjob.kb.io", "mworkload.kb.io"]
    assert config["webhooks"][0]["clientConfig"] == {
        "url": "https://127.0.0.1:9443/mutate-batch-v1-job",
        "caBundle": base64.b64encode(b"PEM").decode(),
    }
    assert config["webhooks"][0]["failurePolicy"] == "Fail"
    # The input is left as it was (the manifests are read once, rewritten per run).
    assert "service" in manifests[0]["webhooks"][0]["clientConfig"]  # type: ignore[index]
