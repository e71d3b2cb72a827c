"""Certificates for the control plane: who signs what, for which names and uses."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from databuild.testing._pki import CertificateAuthority, service_account_key


def test_ca_is_a_self_signed_ca() -> None:
    ca = CertificateAuthority("test-ca").keypair.cert

    assert ca.subject == ca.issuer
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.verify_directly_issued_by(ca)


def test_serving_certificate_names_the_apiserver_everywhere() -> None:
    ca = CertificateAuthority()
    cert = ca.serving("kube-apiserver").cert

    cert.verify_directly_issued_by(ca.keypair.cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.1"),
    }
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_carries_user_and_group() -> None:
    ca = CertificateAuthority()
    cert = ca.client("admin", "system:masters").cert

    cert.verify_directly_issued_by(ca.keypair.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "admin"
    assert (
        cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    )
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_certificates_of_another_ca_do_not_verify() -> None:
    ours, theirs = CertificateAuthority(), CertificateAuthority()
    cert = theirs.client("admin", "system:masters").cert
    try:
        cert.verify_directly_issued_by(ours.keypair.cert)
    except Exception:  # the signature does not match our key
        return
    raise AssertionError("a foreign certificate verified against our CA")


def test_openssl_accepts_the_files(tmp_path: Path) -> None:
    """What the Python client does with them: a CA bundle plus a client cert and key."""
    ca = CertificateAuthority()
    ca_crt, _ = ca.keypair.write(tmp_path, "ca")
    crt, key = ca.client("admin", "system:masters").write(tmp_path, "admin")

    context = ssl.create_default_context(cafile=str(ca_crt))
    context.load_cert_chain(str(crt), str(key))
    assert key.stat().st_mode & 0o777 == 0o600


def test_service_account_key_halves_match(tmp_path: Path) -> None:
    sa = service_account_key()
    public, private = sa.write(tmp_path, "sa")

    loaded = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert (
        loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public.read_bytes()
    )
    assert private.stat().st_mode & 0o777 == 0o600
