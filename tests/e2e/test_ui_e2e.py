"""``databuild ui`` in a real headless browser (Debian's chromium) against a built namespace.

Set ``DATABUILD_UI_SCREENSHOTS=docs/ui`` to refresh the screenshots in docs/ui.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from e2e_support import Scenario, free_port, jobdef
from tests.manifests import want

ROOT = Path(__file__).resolve().parents[2]
DATES = [f"2025-01-{d:02d}" for d in range(1, 8)]
CLI = (sys.executable, "-m", "databuild.cli.main", "--kubeconfig")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium (.ci/run installs it)")


def _browser(url: str, tmp: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot, if asked)."""
    assert CHROMIUM is not None
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # tests may run as root
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={tmp / 'chromium'}",
        "--window-size=1280,800",
        "--virtual-time-budget=8000",
    ]
    if screenshot is not None:
        run = subprocess.run(
            [*args, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert screenshot.exists(), run.stderr.decode()[-2000:]
    dom = subprocess.run(
        [*args, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    return dom.stdout


def test_ui_pages_show_partitions_lineage_and_timeline(scenario: Scenario, tmp_path: Path) -> None:
    sc = scenario
    bel = f"sqlite:///{tmp_path / 'bel.db'}"
    sc.start_operator("--bel-url", bel)
    sc.apply(
        jobdef("raw", ["raw/date={date}"]),
        jobdef("clean", ["clean/date={date}"], ["raw/date={date}"]),
        jobdef(
            "daily",
            ["daily/date={date}"],
            ["clean/date={date}", "raw/date={date}"],
            labels={"kwok.databuild.dev/outcome": "fail-first"},
            retry={"limit": 1},
        ),
        jobdef("broken", ["broken/date={date}"], labels={"kwok.databuild.dev/outcome": "fail"}),
        want("week", [f"daily/date={d}" for d in DATES]),
        want("bad", ["broken/date=2025-01-01"]),
    )
    sc.wait_for_want("week", "Successful", timeout=120)
    sc.wait_for_want("bad", "Failed")

    port = free_port()
    argv = ["-n", sc.namespace, "--bel-url", bel, "ui", "--port", str(port)]
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen([*CLI, str(sc.cluster.kubeconfig), *argv], stdout=out, stderr=out)
    shots = Path(os.environ.get("DATABUILD_UI_SCREENSHOTS", tmp_path / "shots"))
    shots = shots if shots.is_absolute() else ROOT / shots
    shots.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(base, timeout=2).read()
                break
            except OSError:
                assert ui.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the UI did not start"
                time.sleep(0.3)

        wants = _browser(base + "#/wants", tmp_path, shots / "wants.png")
        assert 'data-loaded="wants"' in wants
        assert ">week<" in wants and ">bad<" in wants and ">Failed<" in wants

        grid = _browser(base + "#/grid", tmp_path, shots / "grid.png")
        assert 'data-loaded="grid"' in grid
        for d in DATES:
            assert f'data-ref="daily/date={d}" data-state="Live"' in grid
        assert 'data-ref="broken/date=2025-01-01" data-state="Failed"' in grid

        ref = "clean/date=2025-01-03"
        lineage = _browser(base + f"#/lineage?ref={ref}", tmp_path, shots / "lineage.png")
        assert 'data-loaded="lineage"' in lineage
        for node in ("raw/date=2025-01-03", ref, "daily/date=2025-01-03"):
            assert f'data-ref="{node}"' in lineage  # upstream and downstream

        timeline = _browser(base + "#/timeline?want=week", tmp_path, shots / "timeline.png")
        assert 'data-loaded="timeline"' in timeline
        # Each daily run failed its first attempt and succeeded on the second.
        assert timeline.count('data-state="Failed"') >= len(DATES)
        assert timeline.count('class="run"') >= 3 * len(DATES) + len(DATES)

        events = _browser(base + "#/events", tmp_path, shots / "events.png")
        assert 'data-loaded="events"' in events and ">PartitionFailed<" in events
    finally:
        ui.terminate()
        ui.wait(timeout=10)
