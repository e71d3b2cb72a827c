"""Which batch Jobs and pods belong to a JobRun: by controller owner uid, never by label.

Anyone who may create Jobs or pods in a namespace can copy our labels, annotations and
owner names, so none of them proves anything. A Job counts only when its controller
owner is the JobRun with the uid the API server gave it, and a pod only when its
controller owner is that Job (the job controller's own rule); a Job already there under
the name the operator was about to use must pass the same test. Copying a uid takes
reading the JobRun first: that leaves a deliberate forger with Job rights, who could
run any pod anyway, but no longer a stray or copied Job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def controller_of(obj: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    """The ``(name, uid)`` of ``obj``'s controller owner when it is a ``kind``, else None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if isinstance(ref, Mapping) and ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("name") or ""), str(ref.get("uid") or "")
    return None


def uid_of(obj: Mapping[str, Any]) -> str:
    """``metadata.uid``, or the empty string."""
    return str((obj.get("metadata") or {}).get("uid") or "")


def controlled_by(obj: Mapping[str, Any], kind: str, uid: str) -> bool:
    """Whether ``obj``'s controller owner is the ``kind`` with ``uid`` (never for no uid)."""
    owner = controller_of(obj, kind)
    return bool(uid) and owner is not None and owner[1] == uid


def pods_of_job(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The pods ``job`` controls, out of ``pods``."""
    job_uid = uid_of(job)
    return [p for p in pods if controlled_by(p, "Job", job_uid)]


def foreign_job(existing: Mapping[str, Any], rendered: Mapping[str, Any]) -> str | None:
    """Why ``existing`` (found under ``rendered``'s name) is not the Job the operator
    would create, or None when it is (e.g. created before a restart).

    The test is the controller owner's uid. The pod template is not compared: a
    JobDefinition edited since the Job was made would fail a Job that is genuinely ours.
    """
    want = controller_of(rendered, "JobRun")
    if want is None or not controlled_by(existing, "JobRun", want[1]):
        owner = controller_of(existing, "JobRun")
        found = f"JobRun {owner[0]} uid {owner[1] or '(none)'}" if owner else "nothing"
        return f"it is controlled by {found}, not by this JobRun"
    return None
