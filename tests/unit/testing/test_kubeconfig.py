"""Kubeconfigs the harness writes: self-contained, and what the Python client expects."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from databuild.testing._controlplane import api_client_from_kubeconfig, kubeconfig_document
from databuild.testing._pki import CertificateAuthority


def test_kubeconfig_embeds_the_certificates_and_loads(tmp_path: Path) -> None:
    ca = CertificateAuthority()
    admin = ca.client("admin", "system:masters")
    document = kubeconfig_document(
        "https://127.0.0.1:6443", ca.keypair.cert_pem, admin.cert_pem, admin.key_pem, "admin"
    )
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))

    [cluster] = document["clusters"]
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca.keypair.cert_pem
    [user] = document["users"]
    assert base64.b64decode(user["user"]["client-key-data"]) == admin.key_pem
    assert document["current-context"] == "databuild"

    api = api_client_from_kubeconfig(path)
    try:
        assert api.configuration.host == "https://127.0.0.1:6443"
        assert Path(api.configuration.cert_file).read_bytes() == admin.cert_pem
    finally:
        api.close()
    # The loader must not rewrite the file (persist_config=False).
    assert yaml.safe_load(path.read_text()) == document
