"""`python -m databuild.testing.cluster` without a cluster: stale and missing state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from databuild.testing.cluster import Layout, main, read_state


def test_no_state_means_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABUILD_DIR", str(tmp_path))

    assert main(["status"]) == 1
    assert main(["down"]) == 0
    assert "not running" in capsys.readouterr().out


def test_unreadable_state_is_no_state(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.cluster.mkdir(parents=True)
    layout.state.write_text("{not json")
    assert read_state(layout) is None


def test_stale_state_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABUILD_DIR", str(tmp_path))
    layout = Layout(tmp_path)
    layout.cluster.mkdir(parents=True)
    # Our own pid with a start time it never had: a recycled pid, not our supervisor.
    stale = {"pid": os.getpid(), "start_time": -1}
    layout.state.write_text(
        json.dumps({"supervisor": stale, "components": {"etcd": stale}, "ready": True})
    )
    layout.kubeconfig.write_text("stale")

    assert main(["status"]) == 1
    assert "stale state" in capsys.readouterr().out
    assert main(["down"]) == 0  # and it does not signal this process

    assert not layout.cluster.exists()
    assert not layout.kubeconfig.exists()
