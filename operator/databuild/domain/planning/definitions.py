"""JobDefinitions: whether each one is usable, said once per generation and verdict."""

from __future__ import annotations

import dataclasses

from databuild.domain.actions import UpdateJobDefinitionStatus
from databuild.domain.planning.state import PlanningState
from databuild.domain.world import Condition

MAX_MESSAGE = 4096
"""Characters of a condition message, as the CRDs bound it."""


def report_job_definitions(st: PlanningState) -> None:
    """Each reported JobDefinition's Ready (and, while invalid, Stalled) condition,
    written once per generation and verdict."""
    for name in sorted(st.definition_statuses):
        jd = st.defs.get(name)
        if jd is None:
            continue
        status = st.definition_statuses[name]
        if jd.error is not None:
            ready = ("False", "InvalidJobDefinition", jd.error[:MAX_MESSAGE])
        else:
            ready = ("True", "Valid", "its outputs and inputs parse; Wants can use it")
        old = {c.type: c for c in status.conditions}
        now_ready = old.get("Ready")
        if (
            status.observed_generation == status.generation
            and now_ready is not None
            and (now_ready.status, now_ready.reason, now_ready.message) == ready
        ):
            continue
        wanted = [("Ready", *ready)]
        if ready[0] == "False":
            # kstatus: it will not become usable until someone fixes it.
            wanted.append(("Stalled", "True", *ready[1:]))
        conditions = []
        for ctype, cstatus, reason, message in wanted:
            prev = old.get(ctype)
            since = prev.last_transition_time if prev and prev.status == cstatus else st.now
            conditions.append(Condition(ctype, cstatus, reason, message, since))
        warning = (ready[1], ready[2][:1024]) if ready[0] == "False" else None
        st.actions.append(
            UpdateJobDefinitionStatus(name, tuple(conditions), status.generation, warning)
        )
        st.definition_statuses[name] = dataclasses.replace(
            status, observed_generation=status.generation, conditions=tuple(conditions)
        )


__all__ = ["MAX_MESSAGE", "report_job_definitions"]
