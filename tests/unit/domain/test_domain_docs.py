"""Generated docs stay in sync with the code; the domain stays pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from databuild.domain import diagrams
from databuild.domain.events import EntityKind

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_state_machine_diagrams_match_the_code() -> None:
    committed = (DOCS / "state-machines.md").read_text()
    assert committed == diagrams.render_markdown(), (
        "docs/state-machines.md is out of date: run python -m databuild.domain.diagrams"
    )


def test_diagrams_show_every_edge() -> None:
    text = diagrams.render_mermaid(EntityKind.JOB_RUN)
    assert "[*] --> Queued" in text
    assert "Running --> WaitingForUpstream: dependency_miss" in text
    assert "Succeeded --> [*]" in text


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    target = tmp_path / "sm.md"
    assert diagrams.main([str(target), "--check"]) == 1
    assert diagrams.main([str(target)]) == 0
    assert diagrams.main([str(target), "--check"]) == 0
    target.write_text(target.read_text().replace("Queued", "Waiting", 1))
    assert diagrams.main([str(target), "--check"]) == 1


def test_the_domain_imports_only_the_standard_library_and_re2() -> None:
    # RE2 (google-re2 with its absl runtime) runs capture regexes in linear time.
    code = (
        "import sys, databuild.domain, databuild.domain.simulation, databuild.domain.bench,"
        " databuild.domain.diagrams\n"
        "mods = {m.split('.')[0] for m in sys.modules}\n"
        "site = {'databuild', '__main__', '_distutils_hack', 're2'}\n"  # _distutils_hack: .pth
        "print(sorted(mods - set(sys.stdlib_module_names) - site))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
