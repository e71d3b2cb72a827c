"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

``python -m databuild.adapters.crds [DIR]`` writes one YAML file per kind (default
directory: ``crds``). A unit test regenerates them and fails when the committed files
drift from the models.

The models' JSON schema is turned into a *structural* OpenAPI v3 schema: references
are inlined, ``Optional[X]`` becomes ``X`` (absence, not null, means unset), titles are
dropped, and the ``x-kubernetes-*`` extensions the models declare are kept.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from databuild.adapters.resources import (
    CATEGORY,
    GROUP,
    PATTERN_MESSAGE_KEY,
    RESOURCES,
    VERSION,
    ConcurrencyPool,
    JobDefinition,
    JobRun,
    Partition,
    Resource,
    Schedule,
    TaintRequest,
    Want,
)

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

PRINTER_COLUMNS: Mapping[str, list[dict[str, Any]]] = {
    JobDefinition.KIND: [
        {
            "name": "Outputs",
            "type": "string",
            "jsonPath": ".spec.outputs",
            "description": "Partition patterns the job builds.",
        },
        {
            "name": "Retries",
            "type": "integer",
            "jsonPath": ".spec.retry.limit",
            "priority": 1,
            "description": "Retries after a failed attempt.",
        },
        _AGE,
    ],
    Want.KIND: [
        {
            "name": "State",
            "type": "string",
            "jsonPath": ".status.state",
            "description": "The Want's state.",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Whether every wanted partition is Live.",
        },
        {
            "name": "Partitions",
            "type": "string",
            "jsonPath": ".status.progress",
            "description": "Live partitions out of all wanted.",
        },
        {
            "name": "Priority",
            "type": "integer",
            "jsonPath": ".spec.priority",
            "description": "Runs for higher priorities start first when a limit holds runs back.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "priority": 1,
            "description": "Why the Want is (not) ready.",
        },
        _AGE,
    ],
    Partition.KIND: [
        {
            "name": "Ref",
            "type": "string",
            "jsonPath": ".spec.ref",
            "description": "The partition ref.",
        },
        {
            "name": "State",
            "type": "string",
            "jsonPath": ".status.state",
            "description": "The partition's state.",
        },
        {
            "name": "Built-By",
            "type": "string",
            "jsonPath": ".status.jobRun",
            "description": "The JobRun that built or is building it.",
        },
        _AGE,
    ],
    JobRun.KIND: [
        {
            "name": "Job-Definition",
            "type": "string",
            "jsonPath": ".spec.jobDefinition",
            "description": "The JobDefinition it runs.",
        },
        {
            "name": "State",
            "type": "string",
            "jsonPath": ".status.state",
            "description": "The run's state.",
        },
        {
            "name": "Attempt",
            "type": "integer",
            "jsonPath": ".status.attempt",
            "description": "Batch Jobs created so far.",
        },
        {
            "name": "Admission",
            "type": "string",
            "jsonPath": ".status.admission",
            "priority": 1,
            "description": "Whether a queueing system admitted the current batch Job.",
        },
        {
            "name": "Job",
            "type": "string",
            "jsonPath": ".status.jobName",
            "priority": 1,
            "description": "The batch Job of the current or last attempt.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": ".status.reason",
            "priority": 1,
            "description": "Reason of the last transition.",
        },
        _AGE,
    ],
    Schedule.KIND: [
        {
            "name": "Schedule",
            "type": "string",
            "jsonPath": ".spec.schedule",
            "description": "The cron expression.",
        },
        {
            "name": "Suspend",
            "type": "boolean",
            "jsonPath": ".spec.suspend",
            "description": "Whether it is suspended.",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Whether every due tick has its Want.",
        },
        {
            "name": "Last-Tick",
            "type": "date",
            "jsonPath": ".status.lastTick",
            "description": "The newest tick a Want was created for.",
        },
        {
            "name": "Next-Tick",
            "type": "string",
            "jsonPath": ".status.nextTick",
            "description": "The next tick that will be due.",
        },
        {
            "name": "Wants",
            "type": "integer",
            "jsonPath": ".status.wants.total",
            "priority": 1,
            "description": "Wants it owns.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
            "priority": 1,
            "description": "Why it is (not) ready.",
        },
        _AGE,
    ],
    TaintRequest.KIND: [
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Whether the request was applied.",
        },
        {
            "name": "Tainted",
            "type": "string",
            "jsonPath": ".status.tainted",
            "description": "Refs Tainted when it was applied.",
        },
        {
            "name": "Not-Live",
            "type": "string",
            "jsonPath": ".status.notLive",
            "priority": 1,
            "description": "Refs left alone (not Live, or rebuilt after the request).",
        },
        {
            "name": "Unknown",
            "type": "string",
            "jsonPath": ".status.unknown",
            "priority": 1,
            "description": "Refs with no Partition.",
        },
        {
            "name": "Reason",
            "type": "string",
            "jsonPath": ".spec.reason",
            "priority": 1,
            "description": "Why the data is bad.",
        },
        _AGE,
    ],
    ConcurrencyPool.KIND: [
        {
            "name": "Max",
            "type": "integer",
            "jsonPath": ".spec.maxConcurrentRuns",
            "description": "Runs of all members at once.",
        },
        {
            "name": "Running",
            "type": "integer",
            "jsonPath": ".status.running",
            "description": "Runs of its members Running.",
        },
        {
            "name": "Waiting",
            "type": "integer",
            "jsonPath": ".status.waiting",
            "description": "Runs of its members Queued.",
        },
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
            "description": "Whether the operator applies the limit.",
        },
        _AGE,
    ],
}

_DROP = frozenset({"title", "$defs", "discriminator"})


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """Resolve ``$ref``s, flatten ``Optional`` and drop what a structural schema forbids."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        # Keys beside the $ref (description, extensions) win over the target's.
        node = {**copy.deepcopy(target), **node}
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v != {"type": "null"}]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {variants}")
        inner = variants[0]
        if "$ref" in inner:
            inner = {**defs[inner["$ref"].rsplit("/", 1)[-1]]}
        node = {**inner, **node}
        if node.get("default", ...) is None:
            del node["default"]
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs)
    message = out.pop(PATTERN_MESSAGE_KEY, None)
    if message is not None and "pattern" in out:
        # Same regex (RE2 in both), but the API server then reports our message.
        rule = {"rule": f"self.matches({json.dumps(out.pop('pattern'))})", "message": message}
        out["x-kubernetes-validations"] = [*out.get("x-kubernetes-validations", []), rule]
    if out.get("x-kubernetes-preserve-unknown-fields"):
        # Structural schemas spell "anything goes" with the extension, not additionalProperties.
        out.pop("additionalProperties", None)
        out["type"] = "object"
    return out


def openapi_schema(model: type[Resource]) -> dict[str, Any]:
    """The structural ``openAPIV3Schema`` of one resource kind (spec and status)."""
    spec_model = model.model_fields["spec"].annotation
    status_model = model.model_fields["status"].annotation
    assert isinstance(spec_model, type)
    assert isinstance(status_model, type)

    def part(sub: Any) -> dict[str, Any]:
        schema = sub.model_json_schema(by_alias=True, mode="validation")
        result: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
        return result

    return {
        "type": "object",
        "description": (model.__doc__ or model.KIND).strip().splitlines()[0],
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "databuild.dev/v1alpha1."},
            "kind": {"type": "string", "description": f"{model.KIND}."},
            "metadata": {"type": "object"},
            "spec": part(spec_model),
            "status": {
                **part(status_model),
                # Applied when the object is read without a status (never stored).
                **({"default": {"observedGeneration": 0}} if model.UNOBSERVED_IN_PROGRESS else {}),
            },
        },
    }


def crd(model: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one resource kind."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{model.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "databuild"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": model.KIND,
                "listKind": f"{model.KIND}List",
                "plural": model.PLURAL,
                "singular": model.KIND.lower(),
                "shortNames": [model.SHORT_NAME],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[model.KIND],
                    "schema": {"openAPIV3Schema": openapi_schema(model)},
                }
            ],
        },
    }


def file_name(model: type[Resource]) -> str:
    """The file a kind's CRD lives in, e.g. ``databuild.dev_wants.yaml``."""
    return f"{GROUP}_{model.PLURAL}.yaml"


_HEADER = (
    "---\n# Generated from databuild.adapters.resources by `python -m databuild.adapters.crds`.\n"
)


def render_all() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    return {
        file_name(model): _HEADER + yaml.safe_dump(crd(model), sort_keys=False, width=100)
        for model in RESOURCES
    }


def write_all(directory: Path) -> list[Path]:
    """Write every CRD into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: write the CRDs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", nargs="?", default="crds", type=Path)
    args = parser.parse_args(argv)
    for path in write_all(args.directory):
        print(path)


if __name__ == "__main__":
    main()
