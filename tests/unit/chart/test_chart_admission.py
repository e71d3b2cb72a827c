"""The chart's admission policies as rendered: what they match, which identities they
name, and which namespaces their bindings cover. Their behaviour on a real API server is
tested in tests/e2e/test_admission_e2e.py."""

from __future__ import annotations

from typing import Any

from tests.unit.chart.helmtool import template

FULLNAME = "databuild-databuild-operator"
OPERATOR = f"system:serviceaccount:databuild-system:{FULLNAME}"


def _by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_default_install_ships_the_jobdefinition_and_operator_field_policies() -> None:
    docs = template()
    policies = _by_name(docs, "ValidatingAdmissionPolicy")
    bindings = _by_name(docs, "ValidatingAdmissionPolicyBinding")
    assert set(policies) == {f"{FULLNAME}-jobdefinitions", f"{FULLNAME}-operator-fields"}
    assert {b["spec"]["policyName"] for b in bindings.values()} == set(policies)
    for binding in bindings.values():
        assert binding["spec"]["validationActions"] == ["Deny"]
        assert "matchResources" not in binding["spec"]  # cluster-wide mode: everywhere
    for policy in policies.values():
        assert policy["spec"]["failurePolicy"] == "Fail"

    jd = policies[f"{FULLNAME}-jobdefinitions"]["spec"]
    (rule,) = jd["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["jobdefinitions"]  # not the status subresource
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}
    expressions = " ".join(v["expression"] for v in jd["validations"])
    assert "authorizer.group('batch').resource('jobs')" in expressions
    assert "check('create').allowed()" in expressions
    assert "request.namespace != 'databuild-system'" in expressions
    assert f"serviceAccountName == '{FULLNAME}'" in expressions

    fields = policies[f"{FULLNAME}-operator-fields"]["spec"]
    assert fields["matchConstraints"]["resourceRules"][0]["resources"] == ["wants"]
    assert f"request.userInfo.username == '{OPERATOR}'" in fields["validations"][0]["expression"]


def test_restricted_templates_are_opt_in() -> None:
    policies = _by_name(
        template("--set", "admission.restrictedPodTemplates=true"), "ValidatingAdmissionPolicy"
    )
    restricted = policies[f"{FULLNAME}-restricted-templates"]["spec"]
    messages = " ".join(v["message"] for v in restricted["validations"])
    for rule in (
        "hostNetwork",
        "volumes",
        "privileged",
        "allowPrivilegeEscalation",
        "capabilities",
        "runAsNonRoot",
        "runAsUser",
        "seccompProfile",
        "hostPort",
    ):
        assert rule in messages, rule


def test_namespaced_bindings_cover_only_the_watched_namespaces() -> None:
    docs = template("--set", "watchNamespaces={team-a,team-b}")
    for binding in _by_name(docs, "ValidatingAdmissionPolicyBinding").values():
        selector = binding["spec"]["matchResources"]["namespaceSelector"]
        assert selector["matchExpressions"] == [
            {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}
        ]


def test_admission_can_be_turned_off() -> None:
    docs = template("--set", "admission.enabled=false")
    assert not [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
