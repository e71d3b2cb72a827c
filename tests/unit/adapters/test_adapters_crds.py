"""The CRDs in crds/ are generated from the models, and are structural and complete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from databuild.adapters.crds import crd, openapi_schema, render_all
from databuild.adapters.resources import (
    PATTERN_PATTERN,
    REF_PATTERN,
    RESOURCES,
    JobDefinition,
    JobRun,
    Partition,
    Resource,
    TaintRequest,
    Want,
)

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_committed_crds_match_the_models() -> None:
    for name, text in render_all().items():
        path = CRDS / name
        assert path.exists(), f"{path} is missing: run `make crds`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} drifted from databuild.adapters.resources: "
            "run `make crds` and commit the result"
        )


def test_no_stray_crd_files() -> None:
    assert sorted(p.name for p in CRDS.glob("*.yaml")) == sorted(render_all())


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from _walk(value, f"{path}.{key}")
        if "items" in node:
            yield from _walk(node["items"], f"{path}[]")


def _schema(model: type[Resource]) -> dict[str, Any]:
    version = crd(model)["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


@pytest.mark.parametrize("model", RESOURCES, ids=lambda m: m.KIND)
def test_schema_is_structural(model: type[Resource]) -> None:
    for path, node in _walk(_schema(model)):
        for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
            assert forbidden not in node, f"{model.KIND}{path} has {forbidden}"
        assert "type" in node, f"{model.KIND}{path} has no type"
        if node["type"] == "object" and not node.get("x-kubernetes-preserve-unknown-fields"):
            assert (
                path.endswith("metadata")
                or "properties" in node
                or ("additionalProperties" in node)
            ), f"{model.KIND}{path} is an object without a schema"


@pytest.mark.parametrize("model", RESOURCES, ids=lambda m: m.KIND)
def test_every_field_has_a_description(model: type[Resource]) -> None:
    schema = _schema(model)
    for part in ("spec", "status"):
        for path, node in _walk(schema["properties"][part], part):
            if path.endswith("[]") and node["type"] != "object":
                continue  # a list's scalar items are described by the list
            assert node.get("description"), f"{model.KIND}.{path} has no description"


def test_names_short_names_and_category() -> None:
    short_names = set()
    for model in RESOURCES:
        names = crd(model)["spec"]["names"]
        assert names["categories"] == ["databuild"]
        assert len(names["shortNames"]) == 1
        short_names.add(names["shortNames"][0])
        assert crd(model)["spec"]["scope"] == "Namespaced"
        assert crd(model)["spec"]["versions"][0]["subresources"] == {"status": {}}
    assert short_names == {
        "dbjobdef",
        "dbwant",
        "dbpart",
        "dbrun",
        "dbsched",
        "dbtaint",
        "dbpool",
    }


def test_printer_columns() -> None:
    columns = {
        model.KIND: [
            c["name"]
            for c in crd(model)["spec"]["versions"][0]["additionalPrinterColumns"]
            if not c.get("priority")
        ]
        for model in RESOURCES
    }
    assert columns == {
        "JobDefinition": ["Outputs", "Age"],
        "Want": ["State", "Ready", "Partitions", "Priority", "Age"],
        "Partition": ["Ref", "State", "Built-By", "Age"],
        "JobRun": ["Job-Definition", "State", "Attempt", "Age"],
        "Schedule": ["Schedule", "Suspend", "Ready", "Last-Tick", "Next-Tick", "Age"],
        "TaintRequest": ["Ready", "Tainted", "Age"],
        "ConcurrencyPool": ["Max", "Running", "Waiting", "Ready", "Age"],
    }


def _rules(model: type[Resource], part: str) -> list[str]:
    node = _schema(model)["properties"]["spec"]
    for key in part.split(".")[1:]:
        node = node["properties"][key]
    return [v["rule"] for v in node.get("x-kubernetes-validations", [])]


def test_immutability_rules() -> None:
    want, partition, run = (
        RESOURCES[1],
        RESOURCES[2],
        RESOURCES[3],
    )
    assert "self.partitions == oldSelf.partitions" in _rules(want, "spec")
    assert "self.ref == oldSelf.ref" in _rules(partition, "spec")
    assert "self == oldSelf" in _rules(run, "spec")
    assert "self.limit >= 0" in _rules(RESOURCES[0], "spec.retry")
    assert "self == oldSelf" in _rules(TaintRequest, "spec")


def test_taint_request_refs_are_refs_with_the_wants_caps() -> None:
    spec = _schema(TaintRequest)["properties"]["spec"]
    wanted = _schema(RESOURCES[1])["properties"]["spec"]["properties"]["partitions"]
    assert spec["properties"]["partitions"] == wanted | {
        "description": spec["properties"]["partitions"]["description"]
    }
    assert spec["required"] == ["partitions"]
    assert spec["properties"]["reason"]["maxLength"] == 1024


def test_want_partitions_limits() -> None:
    partitions = _schema(RESOURCES[1])["properties"]["spec"]["properties"]["partitions"]
    assert partitions["minItems"] == 1
    assert partitions["maxItems"] >= 50
    assert partitions["x-kubernetes-list-type"] == "set"
    [rule] = partitions["items"]["x-kubernetes-validations"]
    assert rule["rule"].startswith('self.matches("^')
    assert "e.g. daily_summary/date=2025-01-01" in rule["message"]
    assert "pattern" not in partitions["items"]  # the CEL rule says it with a clear message
    assert partitions["items"]["maxLength"] > 0


def test_pattern_rules_use_the_models_regexes() -> None:
    outputs = _schema(RESOURCES[0])["properties"]["spec"]["properties"]["outputs"]
    [rule] = outputs["items"]["x-kubernetes-validations"]
    assert rule["rule"] == f"self.matches({json.dumps(PATTERN_PATTERN)})"
    ref = _schema(RESOURCES[2])["properties"]["spec"]["properties"]["ref"]
    [rule] = ref["x-kubernetes-validations"]
    assert rule["rule"] == f"self.matches({json.dumps(REF_PATTERN)})"


def test_template_preserves_unknown_fields() -> None:
    template = _schema(RESOURCES[0])["properties"]["spec"]["properties"]["template"]
    assert template == {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "description": template["description"],
    }


def test_crd_files_are_valid_yaml_documents() -> None:
    for path in CRDS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert doc["kind"] == "CustomResourceDefinition"


def test_unobserved_objects_read_as_in_progress_except_partitions() -> None:
    # kstatus reads an object without any status as Current; the default makes a Want,
    # JobDefinition or JobRun the operator has not written yet read as generation 0.
    for model in (Want, JobDefinition, JobRun):
        status = openapi_schema(model)["properties"]["status"]
        assert status["default"] == {"observedGeneration": 0}, model.KIND
        assert "observedGeneration" in status["properties"]
    assert "default" not in openapi_schema(Partition)["properties"]["status"]
