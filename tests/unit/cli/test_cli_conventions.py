"""--version, kubectl plugin naming, shell completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from databuild import __version__
from databuild.cli.completion import candidates
from databuild.cli.main import build_parser

from .fake import cli


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(None, "--version").code == 0  # argparse writes it to sys.stdout
    assert capsys.readouterr().out == f"databuild {__version__}\n"


def test_help_says_kubectl_databuild_when_run_as_the_plugin() -> None:
    plugin = Path(sys.executable).parent / "kubectl-databuild"
    out = subprocess.run([plugin, "--help"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: kubectl databuild ")
    plain = Path(sys.executable).parent / "databuild"
    out = subprocess.run([plain, "logs", "--help"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("usage: databuild logs ")


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["w"], ["wait", "want"]),
        (["-n", "data", "lo"], ["logs"]),
        (["logs", "--at"], ["--attempt"]),
        (["status", "-o", ""], ["table", "wide", "name", "json", "yaml"]),
        (["completion", ""], []),  # a positional with choices: argparse checks it
        (["status", "x", "--wa"], ["--watch"]),
    ],
)
def test_completion_candidates_come_from_the_parser(words: list[str], expected: list[str]) -> None:
    assert candidates(build_parser(), words) == expected


def test_completion_scripts_and_the_kubectl_plugin_protocol() -> None:
    assert "complete -o default -F _databuild databuild kubectl-databuild" in (
        cli(None, "completion", "bash").out
    )
    assert "bashcompinit" in cli(None, "completion", "zsh").out
    assert cli(None, "__complete", "sta").out == "status\n"
    helper = Path(sys.executable).parent / "kubectl_complete-databuild"
    out = subprocess.run([helper, "logs", "--ta"], capture_output=True, text=True, check=True)
    assert out.stdout == "--tail\n:4\n"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_script_completes_a_command(tmp_path: Path) -> None:
    script = tmp_path / "c.sh"
    script.write_text(
        cli(None, "completion", "bash").out
        + 'COMP_WORDS=(databuild wai); COMP_CWORD=1; _databuild; echo "${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    out = subprocess.run(["bash", script], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "wait"
