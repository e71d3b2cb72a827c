"""Certificates and keys for a throwaway control plane, made with `cryptography`.

Everything is ECDSA P-256: generating it takes milliseconds (an RSA key takes tens),
and every component (Go's TLS, OpenSSL under the Python client, the apiserver's
service-account token signer) accepts it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The first address of the service range the apiserver is started with: the
#: ClusterIP of the `kubernetes` Service, so in-cluster clients can verify it.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"

APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
APISERVER_IPS = ("127.0.0.1", KUBERNETES_SERVICE_IP)

# Long enough for a `make cluster-up` left running for weeks, short enough that a
# leaked key is worthless soon; the clock skew margin covers slightly-off clocks.
_VALIDITY = dt.timedelta(days=365)
_SKEW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class KeyPair:
    """A PEM certificate and its PEM (PKCS#8) private key."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def cert(self) -> x509.Certificate:
        """The parsed certificate."""
        return x509.load_pem_x509_certificate(self.cert_pem)

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.crt` and `<name>.key` (mode 0600) and return their paths."""
        crt = directory / f"{name}.crt"
        key = directory / f"{name}.key"
        crt.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return crt, key


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(subject: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _SKEW)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


class CertificateAuthority:
    """A self-signed CA that issues the serving and client certificates of one cluster."""

    def __init__(self, common_name: str = "databuild-test-ca") -> None:
        self._key = _new_key()
        subject = _name(common_name)
        self._cert = (
            _builder(subject, self._key)
            .issuer_name(subject)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.keypair = KeyPair(
            self._cert.public_bytes(serialization.Encoding.PEM), _key_pem(self._key)
        )

    def _issue(
        self,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: x509.SubjectAlternativeName | None = None,
    ) -> KeyPair:
        key = _new_key()
        builder = (
            _builder(subject, key)
            .issuer_name(self._cert.subject)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
        )
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))

    def serving(
        self,
        common_name: str,
        dns_names: tuple[str, ...] = APISERVER_DNS_NAMES,
        ips: tuple[str, ...] = APISERVER_IPS,
    ) -> KeyPair:
        """A TLS server certificate valid for the given names and addresses."""
        sans = x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in dns_names]
            + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        )
        return self._issue(_name(common_name), ExtendedKeyUsageOID.SERVER_AUTH, sans)

    def client(self, user: str, group: str | None = None) -> KeyPair:
        """A client certificate: Kubernetes reads the user from CN and a group from O."""
        return self._issue(_name(user, group), ExtendedKeyUsageOID.CLIENT_AUTH)


@dataclass(frozen=True)
class ServiceAccountKey:
    """The key pair that signs and verifies ServiceAccount tokens (PEM).

    The apiserver verifies with the public half (`--service-account-key-file`) and
    signs with the private one (`--service-account-signing-key-file`); the
    controller-manager signs with the private one too.
    """

    public_pem: bytes
    private_pem: bytes

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.pub` and `<name>.key` (mode 0600) and return their paths."""
        pub = directory / f"{name}.pub"
        key = directory / f"{name}.key"
        pub.write_bytes(self.public_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.private_pem)
        return pub, key


def service_account_key() -> ServiceAccountKey:
    """A fresh ServiceAccount token signing key."""
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ServiceAccountKey(public, _key_pem(key))
