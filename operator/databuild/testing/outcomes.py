"""Names of the simulated job outcomes (pinned in the design) and a helper to set them.

On the local control plane no container runs: kwok plays the kubelet. A pod of a
batch Job succeeds about a second after it starts, unless its pod template says
otherwise:

- label `kwok.databuild.dev/outcome: fail`: every attempt fails;
- label `kwok.databuild.dev/outcome: fail-first`: the pod whose annotation
  `databuild.dev/attempt` is "1" (or absent) fails, later attempts succeed;
- a failing pod's containers exit with the code in annotation
  `kwok.databuild.dev/exit-code` (default 1) and the termination message in annotation
  `kwok.databuild.dev/message`;
- annotation `kwok.databuild.dev/duration` (a Go duration such as "5s") makes the pod
  run that long before it succeeds or fails.

Pods not owned by a Job (a Deployment's, say) turn Running and Ready and stay so.
"""

from __future__ import annotations

from typing import Literal

OUTCOME_LABEL = "kwok.databuild.dev/outcome"
EXIT_CODE_ANNOTATION = "kwok.databuild.dev/exit-code"
MESSAGE_ANNOTATION = "kwok.databuild.dev/message"
DURATION_ANNOTATION = "kwok.databuild.dev/duration"
ATTEMPT_ANNOTATION = "databuild.dev/attempt"

FAIL = "fail"
FAIL_FIRST = "fail-first"

Outcome = Literal["succeed", "fail", "fail-first"]


def simulated(
    outcome: Outcome = "succeed",
    *,
    exit_code: int | None = None,
    message: str | None = None,
    duration: str | None = None,
    attempt: int | None = None,
) -> dict[str, dict[str, str]]:
    """Pod template metadata (`{"labels": ..., "annotations": ...}`) for an outcome.

    Merge it into a Job's `spec.template.metadata`. For example
    `simulated("fail", exit_code=3, message="disk full", duration="2s")`.
    """
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if outcome != "succeed":
        labels[OUTCOME_LABEL] = outcome
    if exit_code is not None:
        annotations[EXIT_CODE_ANNOTATION] = str(exit_code)
    if message is not None:
        annotations[MESSAGE_ANNOTATION] = message
    if duration is not None:
        annotations[DURATION_ANNOTATION] = duration
    if attempt is not None:
        annotations[ATTEMPT_ANNOTATION] = str(attempt)
    return {"labels": labels, "annotations": annotations}
