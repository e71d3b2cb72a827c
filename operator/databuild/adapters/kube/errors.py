"""The one error type of every request to the API server.

:class:`KubeError` carries what the API server's ``Status`` body said (HTTP status,
reason, message) and which object it was about. The subclasses are the failures callers
must tell apart; everything else is a plain :class:`KubeError` (``status`` 0: no
response came at all).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeError",
    "NotFound",
    "TooLarge",
    "error_from_response",
]


class KubeError(Exception):
    """An API request failed. ``status`` is the HTTP status (0: no response)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        reason: str = "",
        kind: str = "",
        name: str = "",
        namespace: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.kind = kind
        self.name = name
        self.namespace = namespace


class NotFound(KubeError):
    """The object (or its kind) does not exist (harmless for deletes)."""


class AlreadyExists(KubeError):
    """Create found an object of that name (harmless for deterministic names)."""


class Conflict(KubeError):
    """The object changed since the resourceVersion (or uid) the write was based on."""


class Invalid(KubeError):
    """The API server rejected the object (schema or CEL validation)."""


class Forbidden(KubeError):
    """The identity may not do this (RBAC), or an admission rule refused it."""


class Gone(KubeError):
    """A resourceVersion or ``continue`` token is too old: list again from scratch."""


class TooLarge(KubeError):
    """A response was bigger than the client accepts (see ``max_body_bytes``)."""


def _status_body(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def error_from_response(
    status: int,
    body: bytes,
    what: str,
    *,
    kind: str = "",
    name: str = "",
    namespace: str = "",
) -> KubeError:
    """The error for an HTTP ``status`` >= 300 and its ``Status`` body.

    ``what`` (e.g. ``"PATCH Want data/w"``) starts the message, so a log line says
    which request failed and the API server's own words why.
    """
    data = _status_body(body)
    reason = str(data.get("reason") or "")
    message = str(data.get("message") or "") or repr(body[:300])
    text = f"{what}: HTTP {status} {reason}: {message}".replace("  ", " ")
    cls: type[KubeError] = KubeError
    if status == 404:
        cls = NotFound
    elif status == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif status == 422:
        cls = Invalid
    elif status == 403:
        cls = Forbidden
    elif status == 410:
        cls = Gone
    details = data.get("details")
    details = details if isinstance(details, dict) else {}
    return cls(
        text,
        status=status,
        reason=reason,
        kind=kind or str(details.get("kind") or ""),
        name=name or str(details.get("name") or ""),
        namespace=namespace,
    )
