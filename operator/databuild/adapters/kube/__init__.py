"""The one Kubernetes boundary: an async client on a small transport protocol.

- :class:`Transport` (``transport``): method, path, query, body bytes, headers in;
  status, headers, body bytes out (and a streamed variant for watches).
  :class:`HttpTransport` (``network``) is the real one, on aiohttp.
- :class:`ApiClient` (``client``): get, paged list, create, merge/JSON patch, the
  status subresource, delete with preconditions, watch with bookmarks and relisting.
- One error type, :class:`KubeError` (``errors``), with a subclass per failure callers
  tell apart.
- One loader of connection settings, :func:`load` (``config``): kubeconfig or
  in-cluster.
- :class:`BlockingClient` (``blocking``): an :class:`ApiClient` on an event loop of its
  own, behind blocking calls, for synchronous code (the CLI, tests, the demo).

This package is the only code that imports an HTTP or Kubernetes client library (an
import contract in pyproject.toml checks it).
"""

from pathlib import Path

from databuild.adapters.kube.blocking import BlockingClient
from databuild.adapters.kube.client import (
    DEFAULT_PAGE_SIZE,
    ApiClient,
    Kind,
    ObjectList,
    PatchType,
    Propagation,
    WatchEvent,
)
from databuild.adapters.kube.config import (
    ClusterConfig,
    ConfigError,
    from_kubeconfig,
    in_cluster,
    kubeconfig_with_token,
    load,
)
from databuild.adapters.kube.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    TooLarge,
    error_from_response,
)
from databuild.adapters.kube.network import HttpTransport
from databuild.adapters.kube.transport import (
    DEFAULT_MAX_BODY_BYTES,
    Request,
    Response,
    StreamedResponse,
    Transport,
)

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PAGE_SIZE",
    "AlreadyExists",
    "ApiClient",
    "BlockingClient",
    "ClusterConfig",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "Gone",
    "HttpTransport",
    "Invalid",
    "Kind",
    "KubeError",
    "NotFound",
    "ObjectList",
    "PatchType",
    "Propagation",
    "Request",
    "Response",
    "StreamedResponse",
    "TooLarge",
    "Transport",
    "WatchEvent",
    "connect",
    "error_from_response",
    "from_kubeconfig",
    "in_cluster",
    "kubeconfig_with_token",
    "load",
]


def connect(
    kubeconfig: Path | None = None,
    *,
    context: str | None = None,
    connections: int = 64,
    user_agent: str = "databuild",
    timeout: float = 30.0,
) -> ApiClient:
    """An :class:`ApiClient` over HTTP for ``kubeconfig`` (see :func:`load` for the order)."""
    config = load(kubeconfig, context)
    return ApiClient(
        HttpTransport(config, connections=connections, user_agent=user_agent), timeout=timeout
    )
