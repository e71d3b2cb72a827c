"""Every kind the operator reads or writes, in one registry: where it lives in the API,
whether it has a status subresource, and whether the operator watches it.

The operator's own kinds come from their models (:data:`~databuild.adapters.resources.RESOURCES`);
the gateway, the watches, the world store and the initial listing all read this table, so
a new kind is added in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from databuild.adapters.resources import API_VERSION, RESOURCES

__all__ = ["KINDS", "WATCHED_KINDS", "KindInfo", "kind_info"]


@dataclass(frozen=True)
class KindInfo:
    """Where a kind lives in the API, and how the operator follows it."""

    kind: str
    api_version: str
    plural: str
    has_status: bool = True
    watched: bool = False
    """Listed at start and watched into the world store."""
    labelled: bool = False
    """Watched only with the job-run label (a server-side label selector)."""

    @property
    def group(self) -> str:
        """The API group ("" for the core group)."""
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        """The API version within the group."""
        return self.api_version.rpartition("/")[2]

    def collection(self, namespace: str | None) -> str:
        """The URL path of the kind's collection in ``namespace`` (``None``: all namespaces)."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if namespace is None:
            return f"{prefix}/{self.plural}"
        return f"{prefix}/namespaces/{namespace}/{self.plural}"


KINDS: Mapping[str, KindInfo] = {
    info.kind: info
    for info in (
        *(KindInfo(r.KIND, API_VERSION, r.PLURAL, watched=True) for r in RESOURCES),
        KindInfo("Job", "batch/v1", "jobs", watched=True, labelled=True),
        KindInfo("Pod", "v1", "pods", watched=True, labelled=True),
        KindInfo("Event", "v1", "events", has_status=False),
        KindInfo("Lease", "coordination.k8s.io/v1", "leases", has_status=False),
    )
}

WATCHED_KINDS: tuple[str, ...] = tuple(k for k, info in KINDS.items() if info.watched)
"""The kinds in the world store, in listing order (the operator's own first)."""


def kind_info(kind: str) -> KindInfo:
    """The :class:`KindInfo` of a kind the operator knows, or ``ValueError``."""
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"the gateway does not handle kind {kind!r}") from None
