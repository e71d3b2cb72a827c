"""The web UI's server and data, against the in-memory cluster (the browser test is e2e)."""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from databuild.cli.ui import data
from databuild.cli.ui.server import UiServer

from .fake import FakeCluster, partition, sample

pytestmark = pytest.mark.unit


@pytest.fixture
def ui() -> Iterator[UiServer]:
    server = UiServer(0, FakeCluster.of(sample()), None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _get(server: UiServer, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def _json(server: UiServer, path: str) -> Any:
    status, kind, body = _get(server, path)
    assert kind == "application/json"
    return status, json.loads(body)


def test_pages_and_assets_ship_in_the_package_with_no_remote_url(ui: UiServer) -> None:
    status, kind, body = _get(ui, "/")
    assert status == 200 and kind.startswith("text/html")
    assets = re.findall(rb'(?:src|href)="([^"#]+)"', body)
    assert sorted(assets) == [b"app.css", b"app.js"]
    for asset in assets:
        assert _get(ui, "/" + asset.decode())[0] == 200
    static = resources.files("databuild.cli.ui").joinpath("static")
    for name in ("index.html", "app.js", "app.css"):
        text = static.joinpath(name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"remote URL in {name}"
    assert _get(ui, "/../server.py")[0] == 404
    assert _get(ui, "/nope.js")[0] == 404


def test_api_answers_what_the_pages_draw(ui: UiServer) -> None:
    status, wants = _json(ui, "/api/wants")
    assert status == 200
    daily = next(w for w in wants["wants"] if w["name"] == "daily-jan")
    assert daily["counts"] == {"Live": 1, "Building": 1}
    status, grid = _json(ui, "/api/grid")
    by_dataset = {r["dataset"]: r["cells"] for r in grid["rows"]}
    assert by_dataset["daily"] == {"date=2025-01-01": "Live", "date=2025-01-02": "Building"}
    status, lineage = _json(ui, "/api/lineage?ref=clean/date=2025-01-01")
    levels = {n["ref"]: n["level"] for n in lineage["nodes"]}
    assert levels == {
        "raw/date=2025-01-01": -1,
        "clean/date=2025-01-01": 0,
        "daily/date=2025-01-01": 1,
    }
    status, timeline = _json(ui, "/api/timeline?want=daily-jan")
    names = [r["name"] for r in timeline["runs"]]
    assert {"daily-1", "daily-2", "clean-1", "raw-1"} <= set(names)
    daily2 = next(r for r in timeline["runs"] if r["name"] == "daily-2")
    assert [a["state"] for a in daily2["attempts"]] == ["Failed", "Running"]
    assert _json(ui, "/api/timeline?want=nope")[0] == 404
    assert _json(ui, "/api/lineage?ref=nope/x=1")[0] == 404
    status, events = _json(ui, "/api/events")
    assert status == 200 and "--bel-url" in events["note"]


def test_grid_keeps_the_newest_columns_of_a_large_namespace() -> None:
    cluster = FakeCluster()
    for day in range(1000):
        for dataset in ("a", "b"):
            ref = f"{dataset}/day={day:04d}"
            cluster.partitions[ref] = partition(ref, "Live")
    grid = data.grid(cluster.snapshot())
    assert grid["partitions"] == 2000
    assert len(grid["columns"]) == data.MAX_COLUMNS
    assert grid["hiddenColumns"] == 1000 - data.MAX_COLUMNS
    assert grid["columns"][-1] == "day=0999"


#: Where the API server's service proxy shows the chart's in-cluster UI; the proxy strips
#: this prefix before it forwards a request to the pod.
PROXY = (
    "https://apiserver:6443/api/v1/namespaces/ops/services/rel-databuild-operator-history:ui/proxy/"
)

#: Every path the server answers.
SERVED = {"/app.css", "/app.js"} | {
    f"/api/{name}" for name in ("wants", "grid", "lineage", "timeline", "events")
}


def test_every_url_of_the_pages_stays_under_the_service_proxy_prefix(ui: UiServer) -> None:
    page = _get(ui, "/")[2].decode()
    script = resources.files("databuild.cli.ui").joinpath("static", "app.js").read_text()
    urls = re.findall(r'(?:src|href)="([^"#]+)"', page)
    # The script's fetches: get("api/...") and get(`api/...${...}`), placeholders filled in.
    fetched = re.findall(r"""get\(["`]([^"`]+)["`]""", script)
    assert len(fetched) == 5, fetched
    urls += [re.sub(r"\$\{[^}]*\}", "x", u) for u in fetched]
    for url in urls:
        resolved = urljoin(PROXY, url)
        assert resolved.startswith(PROXY), f"{url!r} escapes the proxy prefix: {resolved}"
        # What the pod receives once the proxy has stripped its prefix.
        path = "/" + resolved[len(PROXY) :]
        status = _get(ui, path)[0]
        assert status in (200, 404), (url, status)  # 404: the placeholder names nothing
        assert urlsplit(path).path in SERVED, path
    assert _get(ui, "/api/wants")[0] == 200 and _get(ui, "/api/events")[0] == 200
