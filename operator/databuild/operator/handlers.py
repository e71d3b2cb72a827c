"""The kopf handlers: watch events go into the world store, nothing else.

This module only holds the decorators. kopf delivers every event of the six custom
kinds and of the batch Jobs and pods carrying the ``databuild.dev/job-run`` label
(selected on the server, so other pods never reach the operator); the orchestration
loop does all the thinking. Handlers are trivial and async, so none blocks the loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from databuild.adapters.kinds import KINDS, WATCHED_KINDS
from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.adapters.resources import GROUP
from databuild.operator.store import WorldStore


def observe(store: WorldStore, kind: str, event: Mapping[str, Any]) -> None:
    """Apply one raw watch event to the store."""
    obj = event.get("object")
    if not isinstance(obj, Mapping):
        return
    if event.get("type") == "DELETED":
        store.delete(kind, obj)
    else:
        store.put(kind, obj)


def register(registry: kopf.OperatorRegistry, store: WorldStore) -> None:
    """Register one event handler per watched kind."""
    for kind in WATCHED_KINDS:
        info = KINDS[kind]

        async def on_event(event: Mapping[str, Any], _kind: str = kind, **_: Any) -> None:
            observe(store, _kind, event)

        labels = {JOB_RUN_LABEL: kopf.PRESENT} if info.labelled else None
        resource = (
            (info.group, info.version, info.plural) if info.group else (info.version, info.plural)
        )
        kopf.on.event(*resource, labels=labels, registry=registry, id=f"watch-{info.plural}")(
            on_event
        )


def configure(settings: kopf.OperatorSettings, *, inactivity_timeout: float) -> None:
    """kopf settings: our own storage prefixes, server-side selectors, quiet posting."""
    # Our own prefix for anything kopf may ever store on objects (we use no handlers
    # that need it, but a stray kopf default must never appear on users' objects).
    settings.persistence.finalizer = f"{GROUP}/kopf-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.watching.inactivity_timeout = inactivity_timeout
    # kopf keeps a worker per object alive this long after its last event, holding that
    # event's whole body; with the default 5 s, a burst of thousands of new Jobs and
    # pods keeps thousands of full bodies alive. Our handlers are instant.
    settings.queueing.idle_timeout = 0.5
    settings.watching.label_selectors["batch", "v1", "jobs"] = JOB_RUN_LABEL
    settings.watching.label_selectors["v1", "pods"] = JOB_RUN_LABEL
    # Least privilege: no list/watch of Namespaces and CRDs. kopf discovers the resources
    # once at startup instead, so the CRDs must exist before the operator starts (the
    # chart installs them first); namespaces are served by exact name or cluster-wide.
    settings.scanning.disabled = True
    # The Lease elects the orchestrator; kopf's own peering (and its CRDs) is not needed.
    settings.peering.standalone = True
    # Kubernetes Events are ours to write (through the gateway, one per transition).
    settings.posting.enabled = False
    settings.posting.reporting_component = "databuild-operator"
