"""The README and install guide cannot rot: their commands are checked against the repo.

Every shell block is parsed. `make` targets must exist in the Makefile; files named must
exist; `kubectl apply -f/-k` inputs must parse as our kinds (validated by the models);
`helm install` commands must render with `helm template`; names used later (`kubectl
wait`, `helm uninstall`, `kubectl delete crd`) must match what was installed. The values
table must match values.yaml.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.unit.chart.helmtool import CHART, ROOT, helm, kube_version, tool_binary

from databuild.adapters.resources import JobDefinition, Want

README = ROOT / "README.md"
DOCS = [README, ROOT / "docs" / "install.md", ROOT / "docs" / "gitops.md"]
OUR_KINDS = {"JobDefinition": JobDefinition, "Want": Want}
ALLOWED_KINDS = {"Namespace", "CustomResourceDefinition", *OUR_KINDS}
# Paths in commands that are created by the commands themselves, not shipped.
GENERATED = (".databuild/",)


@dataclass(frozen=True)
class Command:
    """One shell command from a document's code block."""

    doc: Path
    argv: list[str]

    def __str__(self) -> str:
        return f"{self.doc.relative_to(ROOT)}: {shlex.join(self.argv)}"


def _blocks(doc: Path, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", doc.read_text(), flags=re.S | re.M)


def _commands(doc: Path) -> list[Command]:
    commands = []
    for block in _blocks(doc, "sh"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(Command(doc, argv))
    return commands


def _all_commands() -> list[Command]:
    return [c for doc in DOCS for c in _commands(doc)]


def _named(tool: str, sub: str | None = None) -> list[Command]:
    return [
        c
        for c in _all_commands()
        if c.argv[0] == tool and (sub is None or (len(c.argv) > 1 and c.argv[1] == sub))
    ]


def _flag_values(argv: list[str], *names: str) -> list[str]:
    """Values of `--flag value` and `--flag=value` options (any of `names`)."""
    values = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.split("=", 1)[1])
    return values


def _positionals(argv: list[str], flags_with_values: set[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in flags_with_values:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def _yaml_files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        yield from sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    else:
        yield path


def _applied() -> list[tuple[str | None, dict[str, Any]]]:
    """(namespace flag, document) for everything `kubectl apply` is told to apply."""
    applied = []
    for cmd in _named("kubectl", "apply"):
        namespace = next(iter(_flag_values(cmd.argv, "--namespace", "-n")), None)
        for path in _flag_values(cmd.argv, "-f", "--filename"):
            for file in _yaml_files(ROOT / path):
                for doc in yaml.safe_load_all(file.read_text()):
                    if doc:
                        applied.append((namespace, doc))
    return applied


# --------------------------------------------------------------------------------------


def test_the_two_commands_section_is_intact() -> None:
    text = README.read_text()
    assert "## The two commands" in text
    block = text.split("## The two commands", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in block.splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


def test_readme_has_the_sections_users_look_for() -> None:
    text = README.read_text()
    for heading in ("Install with Helm", "A first Want", "Concepts", "Configuration", "Uninstall"):
        assert re.search(rf"^## {heading}$", text, flags=re.M), heading
    assert _blocks(README, "mermaid"), "the README explains itself with a diagram"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_documents_contain_commands(doc: Path) -> None:
    # Guards the parser: a doc whose blocks it cannot read would check nothing.
    assert _commands(doc), f"no shell commands parsed from {doc.name}"


def test_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", makefile, flags=re.M))
    named = [(c, t) for c in _named("make") for t in c.argv[1:] if not t.startswith("-")]
    assert named
    for cmd, target in named:
        assert target in targets, f"{cmd}: no Makefile target {target!r}"


def test_every_file_named_in_a_command_exists() -> None:
    checked = 0
    for cmd in _all_commands():
        for arg in cmd.argv[1:]:
            value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
            if "/" not in value or "://" in value or "$" in value or value.startswith("-"):
                continue
            if value.startswith(GENERATED) or "{" in value:
                continue
            if not re.match(r"^[\w.-]+(/[\w.-]*)+$", value):
                continue
            top = value.split("/", 1)[0]
            if not (ROOT / top).exists():
                continue  # not a repository path (e.g. registry.example.com/image)
            assert (ROOT / value).exists(), f"{cmd}: {value} does not exist"
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_relative_links_resolve(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_kubectl_apply_inputs_are_our_kinds_and_valid() -> None:
    applied = _applied()
    assert any(doc["kind"] == "Want" for _, doc in applied), "no Want is applied"
    for _, doc in applied:
        assert doc.get("kind") in ALLOWED_KINDS, f"unexpected kind {doc.get('kind')}"
        model = OUR_KINDS.get(doc["kind"])
        if model is not None:
            model.model_validate(doc)
            assert doc["apiVersion"] == "databuild.dev/v1alpha1"


def test_kubectl_apply_k_builds() -> None:
    for cmd in _named("kubectl", "apply"):
        for path in _flag_values(cmd.argv, "-k", "--kustomize"):
            out = subprocess.run(
                [str(tool_binary("kubectl")), "kustomize", str(ROOT / path)],
                capture_output=True,
                text=True,
                check=False,
                timeout=120,
            )
            assert out.returncode == 0, f"{cmd}: {out.stderr}"


def test_waited_for_wants_are_the_applied_ones() -> None:
    wants = {(ns, doc["metadata"]["name"]) for ns, doc in _applied() if doc["kind"] == "Want"}
    waits = _named("kubectl", "wait")
    assert waits
    for cmd in waits:
        namespace = next(iter(_flag_values(cmd.argv, "--namespace", "-n")), None)
        for target in _positionals(cmd.argv[2:], {"--namespace", "-n", "--timeout"}):
            kind, _, name = target.partition("/")
            if kind == "want":
                assert (namespace, name) in wants, f"{cmd}: Want {name} is never applied there"


def test_helm_install_commands_render() -> None:
    installs = _named("helm", "install")
    assert len(installs) >= 2, "both RBAC modes are shown"
    modes = set()
    for cmd in installs:
        _, chart = _positionals(
            cmd.argv[2:], {"--namespace", "-n", "--set", "--values", "-f", "--timeout"}
        )[:2]
        assert (ROOT / chart).resolve() == CHART, f"{cmd}: installs {chart}, not our chart"
        args = [a for a in cmd.argv[2:] if a not in ("--create-namespace", "--wait")]
        docs = helm("template", *args, "--kube-version", kube_version()).documents()
        kinds = {d["kind"] for d in docs}
        assert "Deployment" in kinds, str(cmd)
        modes.add("ClusterRoleBinding" in kinds)  # only the cluster-wide mode binds one
        for value in _flag_values(cmd.argv, "--set"):
            if value.startswith("watchNamespaces="):
                listed = set(value.split("=", 1)[1].strip("{}").split(","))
                roles = {
                    d["metadata"]["namespace"]
                    for d in docs
                    if d["kind"] == "Role"
                    and not d["metadata"]["name"].endswith(("-election", "-history-reader"))
                }
                assert roles == listed, str(cmd)
    assert modes == {True, False}, "show the cluster-wide and the namespaced install"


def test_uninstall_and_rollout_name_the_installed_release() -> None:
    installs = {
        (
            _positionals(c.argv[2:], {"--namespace", "--set"})[0],
            _flag_values(c.argv, "--namespace")[0],
        )
        for c in _named("helm", "install")
    }
    for cmd in _named("helm", "uninstall"):
        release = _positionals(cmd.argv[2:], {"--namespace"})[0]
        namespace = _flag_values(cmd.argv, "--namespace")[0]
        assert (release, namespace) in installs, f"{cmd}: no such release installed"
    for cmd in _named("helm", "upgrade"):
        release = _positionals(cmd.argv[2:], {"--namespace", "--set"})[0]
        assert release in {r for r, _ in installs}, str(cmd)
    for cmd in _named("kubectl"):
        for target in cmd.argv:
            if target.startswith("deployment/"):
                assert target == f"deployment/{next(iter(installs))[0]}-databuild-operator"


def test_deleted_crds_are_ours() -> None:
    crds = {
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in (ROOT / "crds").glob("*.yaml")
    }
    deletes = [c for c in _named("kubectl", "delete") if c.argv[2:3] == ["crd"]]
    assert deletes
    for cmd in deletes:
        assert set(cmd.argv[3:]) == crds, f"{cmd}: name exactly our CRDs"


def _leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        yield path
        if isinstance(value, dict) and value:
            yield from _leaf_keys(value, path + ".")


def test_values_table_matches_values_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = set(_leaf_keys(values))
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in re.findall(r"^\| (`[^|]+)\|", section, flags=re.M):
        documented.update(re.findall(r"`([\w.]+)`", row))
    assert documented, "no values table found"
    unknown = documented - keys
    assert not unknown, f"README documents values that do not exist: {sorted(unknown)}"
    undocumented = {k.split(".", 1)[0] for k in keys} - {d.split(".", 1)[0] for d in documented}
    assert not undocumented, f"values missing from the README table: {sorted(undocumented)}"
