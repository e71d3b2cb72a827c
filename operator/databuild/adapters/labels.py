"""Label, annotation and name conventions shared by everything the operator creates.

Kubernetes limits label values and most names to 63 characters; anything longer is
shortened deterministically (a readable prefix plus a short hash), so the same input
always gives the same value and two different inputs practically never collide.
"""

from __future__ import annotations

import hashlib
import re

from databuild.adapters.resources import GROUP

# Pinned by DESIGN.md section 2: selects every pod and Job of a JobRun.
JOB_RUN_LABEL = f"{GROUP}/job-run"
# Pinned: "1" for a JobRun's first batch Job.
ATTEMPT_ANNOTATION = f"{GROUP}/attempt"
JOB_DEFINITION_LABEL = f"{GROUP}/job-definition"
# On every batch Job the operator creates: the Job cannot go away (TTL, deletion) before
# the operator has recorded its outcome in the JobRun's status and removed this.
OUTCOME_FINALIZER = f"{GROUP}/outcome"
# A taint request annotated by whoever may patch Partitions (users create a TaintRequest):
# the reason, and when it was asked (clamped to when the API server saw it written).
TAINT_ANNOTATION = f"{GROUP}/taint"
TAINT_REQUESTED_AT_ANNOTATION = f"{GROUP}/taint-requested-at"

APP_NAME = "app.kubernetes.io/name"
APP_INSTANCE = "app.kubernetes.io/instance"
APP_COMPONENT = "app.kubernetes.io/component"
APP_PART_OF = "app.kubernetes.io/part-of"
APP_MANAGED_BY = "app.kubernetes.io/managed-by"

PART_OF = "databuild"
MANAGED_BY = "databuild-operator"

LABEL_VALUE_MAX = 63
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NOT_LABEL_CHAR = re.compile(r"[^-A-Za-z0-9_.]+")
_HASH_LENGTH = 10


def short_hash(text: str, length: int = _HASH_LENGTH) -> str:
    """A stable lowercase hex digest prefix of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def label_value(text: str) -> str:
    """``text`` as a valid label value: unchanged when valid, else a readable prefix + hash."""
    if len(text) <= LABEL_VALUE_MAX and _LABEL_VALUE.match(text):
        return text
    digest = short_hash(text)
    prefix = _NOT_LABEL_CHAR.sub("-", text)[: LABEL_VALUE_MAX - _HASH_LENGTH - 1]
    prefix = prefix.strip("-_.")
    return f"{prefix}-{digest}" if prefix else digest
