"""The operator's read-only history API, read by the CLI's remote BEL store over real HTTP."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tests.unit.bel.events import at, jobrun_event, partition_event

from databuild.adapters.bel import BelStoreError, EventQuery, open_store, replay_at
from databuild.cli.remote_bel import ServiceBelStore, ServiceRef, parse_service_url
from databuild.operator.history_api import HistoryServer, serve_history

pytestmark = pytest.mark.unit

REF = "daily/date=2025-01-01"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HistoryServer]:
    url = f"sqlite:///{tmp_path / 'bel.db'}"
    store = open_store(url)
    store.append(
        [
            partition_event(REF, None, "Missing", 0),
            jobrun_event("run-1", None, "Queued", 1, job_definition="daily", outputs=(REF,)),
            partition_event(REF, "Missing", "Building", 2, jobRun="run-1"),
            jobrun_event("run-1", "Queued", "Running", 3, job_definition="daily", outputs=(REF,)),
            jobrun_event(
                "run-1", "Running", "Succeeded", 9, job_definition="daily", outputs=(REF,)
            ),
            partition_event(REF, "Building", "Live", 10, jobRun="run-1"),
            partition_event("other/x=1", None, "Missing", 5, namespace="elsewhere"),
        ]
    )
    store.close()
    srv = serve_history(url, 0, addr="127.0.0.1")
    yield srv
    srv.stop()


def _fetch(server: HistoryServer) -> ServiceBelStore:
    """The CLI's store, with the service proxy replaced by a direct connection."""

    def fetch(path: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", f"{path}?{urllib.parse.urlencode(dict(params))}")
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    return ServiceBelStore(ServiceRef("databuild-system", "op", "history"), fetch)


def test_events_through_the_api_equal_the_store(server: HistoryServer) -> None:
    remote = _fetch(server)
    local = open_store(server.bel_url, migrate=False)
    for query in (
        EventQuery(),
        EventQuery(namespace="data", kind="JobRun"),
        EventQuery(ref_glob="daily/*", state="Live"),
        EventQuery(since=at(3), until=at(10)),
        EventQuery(limit=2),
    ):
        assert remote.query(query) == local.query(query), query
    assert remote.last_seq() == local.last_seq() == 7
    assert remote.schema_version() == local.schema_version()
    # Replay through the API gives the same states as replaying the file.
    assert replay_at(remote, at(4), namespace="data") == replay_at(local, at(4), namespace="data")
    local.close()


def test_paging_reads_past_one_page(server: HistoryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("databuild.cli.remote_bel.MAX_PAGE", 2)
    assert [e.seq for e in _fetch(server).query()] == [1, 2, 3, 4, 5, 6, 7]


def test_history_and_lineage_endpoints(server: HistoryServer) -> None:
    status, body = server.answer("/api/v1/history", {"at": at(4).isoformat(), "namespace": "data"})
    assert status == 200
    states = {(e["kind"], e["state"]) for e in body["entities"]}
    assert states == {("Partition", "Building"), ("JobRun", "Running")}
    status, body = server.answer("/api/v1/lineage", {"namespace": "data", "ref": REF})
    assert status == 200
    assert body["jobRuns"] == ["run-1"]
    assert [e["to"] for e in body["events"]] == [
        "Missing",
        "Queued",
        "Building",
        "Running",
        "Succeeded",
        "Live",
    ]


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/api/v1/events", {"limit": "many"}, "limit='many' is not a whole number"),
        ("/api/v1/events", {"since": "yesterday"}, "since='yesterday' is not an RFC 3339 time"),
        ("/api/v1/history", {}, "history needs at="),
        ("/api/v1/lineage", {"ref": REF}, "lineage needs namespace="),
    ],
)
def test_bad_requests_say_which_parameter(
    server: HistoryServer, path: str, params: dict[str, str], says: str
) -> None:
    status, body = server.answer(path, params)
    assert status == 400
    assert says in body["error"]
    # The server still answers good requests afterwards.
    assert server.answer("/api/v1/status", {})[0] == 200


def test_read_only_and_unknown_paths(server: HistoryServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("DELETE", "/api/v1/events")
    response = conn.getresponse()
    assert response.status == 405
    assert "read-only" in json.loads(response.read())["error"]
    conn.close()
    status, body = server.answer("/api/v1/nope", {})
    assert status == 404 and "/api/v1/events" in body["endpoints"]
    with pytest.raises(BelStoreError, match="read-only history API"):
        _fetch(server).append([])


def test_an_unreachable_store_is_503_and_forbidden_says_what_right_is_missing(
    tmp_path: Path,
) -> None:
    broken = HistoryServer(("127.0.0.1", 0), "postgresql://nobody@127.0.0.1:1/none")
    status, body = broken.answer("/api/v1/status", {})
    broken.server_close()
    assert status == 503 and "connection failed" in body["error"]
    refused = ServiceBelStore(
        ServiceRef("databuild-system", "op", "history"), lambda path, params: (403, b"{}")
    )
    with pytest.raises(BelStoreError, match="get` on services/proxy for Service op"):
        refused.last_seq()


def test_service_urls() -> None:
    ref = parse_service_url("service://databuild-system/databuild-op:8090")
    assert ref.proxy_path("/api/v1/events") == (
        "/api/v1/namespaces/databuild-system/services/databuild-op:8090/proxy/api/v1/events"
    )
    assert parse_service_url("service://ns/svc").port == "history"
    with pytest.raises(ValueError, match="service://NAMESPACE/SERVICE"):
        parse_service_url("service://Bad Name/x")
