"""Kubeconfigs the harness writes: self-contained, and what the product's client loads."""

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

    with api_client_from_kubeconfig(path) as api:
        assert api.config.server == "https://127.0.0.1:6443"
        assert api.config.ca_data == ca.keypair.cert_pem
        assert api.config.client_cert == admin.cert_pem
        assert api.config.client_key == admin.key_pem
    # The loader must not rewrite the file.
    assert yaml.safe_load(path.read_text()) == document
