"""Where the API server is and who we are to it: kubeconfig files and in-cluster config.

The one loader of connection settings: the operator, the CLI, the demo, the test
harness and the benchmarks all read kubeconfigs here. :func:`load` follows the usual
order: an explicit kubeconfig, else ``$KUBECONFIG``, else the Pod's ServiceAccount, else
``~/.kube/config`` (the operator asks for the ServiceAccount before ``$KUBECONFIG``).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "ClusterConfig",
    "ConfigError",
    "from_kubeconfig",
    "in_cluster",
    "kubeconfig_with_token",
    "load",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: How long a token read from a file is trusted before it is read again: kubelet
#: rotates projected ServiceAccount tokens well before they expire.
TOKEN_REREAD_SECONDS = 60.0


class ConfigError(ValueError):
    """A kubeconfig (or the in-cluster environment) cannot be used; says which and why."""


@dataclass(frozen=True)
class ClusterConfig:
    """One API server and one identity: the server URL, its CA, and the credentials."""

    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    client_cert: bytes | None = None
    client_key: bytes | None = None
    token: str | None = None
    token_file: Path | None = None
    """Read (again every minute) instead of ``token``: in-cluster tokens rotate."""
    namespace: str = "default"
    source: str = ""
    """Where this came from (a kubeconfig path and context, or ``in-cluster``)."""
    _token_cache: list[tuple[float, str]] = field(default_factory=list, compare=False, repr=False)

    def bearer_token(self) -> str | None:
        """The bearer token to send, if this identity uses one."""
        if self.token_file is None:
            return self.token
        now = time.monotonic()
        if self._token_cache and now - self._token_cache[0][0] < TOKEN_REREAD_SECONDS:
            return self._token_cache[0][1]
        token = self.token_file.read_text().strip()
        self._token_cache[:] = [(now, token)]
        return token

    def headers(self) -> dict[str, str]:
        """The authentication headers of every request."""
        token = self.bearer_token()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (server CA, client certificate); ``None`` for plain HTTP."""
        if not self.server.startswith("https://"):
            return None
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            cadata = self.ca_data.decode() if self.ca_data else None
            context = ssl.create_default_context(cadata=cadata)
        if self.client_cert is not None and self.client_key is not None:
            # The ssl module loads certificates from files only: a private temporary
            # directory holds them just long enough.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "tls.crt"), Path(tmp, "tls.key")
                cert.write_bytes(self.client_cert)
                key.touch(mode=0o600)
                key.write_bytes(self.client_key)
                context.load_cert_chain(str(cert), str(key))
        return context


def _named(items: Any, name: str, what: str, where: str) -> dict[str, Any]:
    for item in items or []:
        if isinstance(item, Mapping) and item.get("name") == name:
            section = item.get(what)
            return dict(section) if isinstance(section, Mapping) else {}
    raise ConfigError(f"{where}: no {what} named {name!r}")


def _data(section: Mapping[str, Any], key: str, base: Path, where: str) -> bytes | None:
    """Inline ``<key>-data`` (base64) or the file named by ``<key>`` (relative to ``base``)."""
    if section.get(f"{key}-data"):
        try:
            return base64.b64decode(section[f"{key}-data"], validate=True)
        except ValueError as error:
            raise ConfigError(f"{where}: {key}-data is not base64: {error}") from None
    if section.get(key):
        path = Path(str(section[key])).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            return path.read_bytes()
        except OSError as error:
            raise ConfigError(f"{where}: cannot read {key} {path}: {error}") from None
    return None


def from_kubeconfig(path: Path, context: str | None = None) -> ClusterConfig:
    """The :class:`ClusterConfig` of a kubeconfig's current (or given) context."""
    where = str(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read kubeconfig {path}: {error}") from None
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: not a kubeconfig (expected a mapping)")
    name = context or doc.get("current-context")
    if not name:
        raise ConfigError(f"{where}: no current-context, and no context was given")
    where = f"{path} (context {name!r})"
    ctx = _named(doc.get("contexts"), str(name), "context", str(path))
    cluster = _named(doc.get("clusters"), str(ctx.get("cluster")), "cluster", where)
    user = _named(doc.get("users"), str(ctx["user"]), "user", where) if ctx.get("user") else {}
    if user.get("exec") or user.get("auth-provider"):
        raise ConfigError(
            f"{where}: user {ctx.get('user')!r} authenticates with an exec or auth-provider "
            "plugin, which is not supported: use a kubeconfig with a token or a client "
            "certificate"
        )
    if not cluster.get("server"):
        raise ConfigError(f"{where}: cluster {ctx.get('cluster')!r} has no server")
    base = path.parent
    token_file = Path(str(user["tokenFile"])) if user.get("tokenFile") else None
    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", base, where),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        client_cert=_data(user, "client-certificate", base, where),
        client_key=_data(user, "client-key", base, where),
        token=str(user["token"]) if user.get("token") else None,
        token_file=token_file
        if token_file is None or token_file.is_absolute()
        else base / token_file,
        namespace=str(ctx.get("namespace") or "default"),
        source=where,
    )


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR) -> ClusterConfig:
    """The Pod's own ServiceAccount: ``KUBERNETES_SERVICE_HOST``/``PORT`` and its token."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("not in a cluster: KUBERNETES_SERVICE_HOST is not set")
    token = directory / "token"
    if not token.is_file():
        raise ConfigError(f"in-cluster: no ServiceAccount token at {token}")
    host = f"[{host}]" if ":" in host else host  # IPv6
    ca = directory / "ca.crt"
    namespace = directory / "namespace"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_data=ca.read_bytes() if ca.is_file() else None,
        token_file=token,
        namespace=namespace.read_text().strip() if namespace.is_file() else "default",
        source="in-cluster",
    )


def load(
    kubeconfig: Path | None = None,
    context: str | None = None,
    *,
    in_cluster_first: bool = False,
) -> ClusterConfig:
    """``kubeconfig`` if given, else ``$KUBECONFIG``, else the Pod's ServiceAccount (in a
    cluster), else ``~/.kube/config``; ``in_cluster_first`` (the operator's order) tries
    the ServiceAccount before ``$KUBECONFIG``."""
    if kubeconfig is not None:
        return from_kubeconfig(kubeconfig, context)
    pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and context is None
    if pod and in_cluster_first:
        return in_cluster()
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    if first:
        return from_kubeconfig(Path(first), context)
    if pod:
        return in_cluster()
    return from_kubeconfig(Path.home() / ".kube" / "config", context)


def kubeconfig_with_token(admin_kubeconfig: Path, token: str, user: str) -> dict[str, Any]:
    """A kubeconfig for ``admin_kubeconfig``'s cluster that authenticates with ``token``."""
    cluster = from_kubeconfig(admin_kubeconfig)
    cluster_out: dict[str, Any] = {"server": cluster.server}
    if cluster.ca_data is not None:
        cluster_out["certificate-authority-data"] = base64.b64encode(cluster.ca_data).decode()
    if cluster.insecure:
        cluster_out["insecure-skip-tls-verify"] = True
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster_out}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "cluster", "context": {"cluster": "cluster", "user": user}}],
        "current-context": "cluster",
    }
