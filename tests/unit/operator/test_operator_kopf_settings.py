"""The kopf settings the operator runs with: our prefixes, selectors and memory limits."""

from __future__ import annotations

import kopf

from databuild.adapters.labels import JOB_RUN_LABEL
from databuild.operator.handlers import configure


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, inactivity_timeout=70)
    assert settings.persistence.finalizer == "databuild.dev/kopf-finalizer"
    assert settings.watching.inactivity_timeout == 70
    assert settings.watching.label_selectors["v1", "pods"] == JOB_RUN_LABEL
    assert settings.scanning.disabled and settings.peering.standalone
    assert not settings.posting.enabled  # Events are the executor's, one per transition
    # Idle per-object workers hold their last event's body: let them go soon.
    assert settings.queueing.idle_timeout < 1
