"""Which HTTP client stack sends the operator's writes for the least CPU.

``python -m databuild.bench.client`` creates ``--requests`` small ConfigMaps (one API
write each) with 1, 8 and 32 requests in flight through each candidate, against a local
control plane it starts (or ``--kubeconfig``), and prints requests per second and the
client's CPU seconds per 1,000 requests (``time.process_time``: this process only, not
the API server's). The candidates:

- ``kubernetes-threads``: the synchronous kubernetes client's ``call_api`` in a pool of
  worker threads, one per request in flight (how the gateway sent writes before the
  async client);
- ``aiohttp``: :class:`databuild.adapters.kube.ApiClient` on its
  :class:`~databuild.adapters.kube.HttpTransport`, the stack the operator uses;
- ``httpx``: a plain ``httpx.AsyncClient`` (HTTP/1.1), only if httpx is installed (it
  is not a dependency: ``pip install httpx`` to include it).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from databuild.adapters.kinds import KindInfo
from databuild.adapters.kube import ApiClient, HttpTransport, from_kubeconfig

CONFIG_MAP = KindInfo("ConfigMap", "v1", "configmaps", has_status=False)
NAMESPACE = KindInfo("Namespace", "v1", "namespaces", has_status=False)
IN_FLIGHT = (1, 8, 32)

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Row:
    """One candidate at one concurrency."""

    client: str
    in_flight: int
    requests: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        """Requests per second (wall clock)."""
        return self.requests / self.seconds

    @property
    def cpu_per_1000(self) -> float:
        """Client CPU seconds per 1,000 requests."""
        return self.cpu_seconds * 1000 / self.requests


def _config_map(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"state": "Building"},
    }


async def _drive(send: Send, namespace: str, count: int, in_flight: int, label: str) -> None:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await send(_config_map(namespace, f"{label}-{in_flight}-{i}"))

    await asyncio.gather(*(worker() for _ in range(in_flight)))


async def _measure(name: str, send: Send, namespace: str, count: int, in_flight: int) -> Row:
    await _drive(send, namespace, min(count, 50), in_flight, f"warm-{name}")
    started, cpu = time.perf_counter(), time.process_time()
    await _drive(send, namespace, count, in_flight, name)
    return Row(name, in_flight, count, time.perf_counter() - started, time.process_time() - cpu)


@contextmanager
def _kubernetes_threads(kubeconfig: Path, in_flight: int) -> Iterator[Send]:
    # The synchronous client's request path, as the gateway used it.
    from kubernetes import client, config  # noqa: PLC0415

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = in_flight
    api = client.ApiClient(configuration)
    pool = ThreadPoolExecutor(in_flight)

    def post(obj: dict[str, Any]) -> None:
        path = f"/api/v1/namespaces/{obj['metadata']['namespace']}/configmaps"
        params = api.param_serialize(
            method="POST",
            resource_path=path,
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=obj,
            auth_settings=["BearerToken"],
        )
        response = api.call_api(*params, _request_timeout=30)
        data = response.read()  # type: ignore[no-untyped-call]
        if int(response.status) >= 300:
            raise RuntimeError(f"POST {path}: HTTP {response.status}: {data[:200]!r}")
        json.loads(data)

    async def send(obj: dict[str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(pool, post, obj)

    try:
        yield send
    finally:
        pool.shutdown()
        api.close()  # type: ignore[no-untyped-call]


async def _run(kubeconfig: Path, count: int, clients: list[str]) -> list[Row]:
    kube = ApiClient(HttpTransport(from_kubeconfig(kubeconfig), connections=max(IN_FLIGHT)))
    namespace = f"bench-client-{uuid.uuid4().hex[:6]}"
    await kube.create({"metadata": {"name": namespace}}, kind=NAMESPACE)
    rows: list[Row] = []
    try:
        for in_flight in IN_FLIGHT:
            for name in clients:
                if name == "kubernetes-threads":
                    with _kubernetes_threads(kubeconfig, in_flight) as send:
                        rows.append(await _measure(name, send, namespace, count, in_flight))
                elif name == "aiohttp":
                    api = ApiClient(
                        HttpTransport(from_kubeconfig(kubeconfig), connections=in_flight)
                    )

                    async def create(obj: dict[str, Any], api: ApiClient = api) -> None:
                        await api.create(obj, kind=CONFIG_MAP)

                    rows.append(await _measure(name, create, namespace, count, in_flight))
                    await api.close()
                elif name == "httpx":
                    rows.append(await _httpx(kubeconfig, namespace, count, in_flight))
    finally:
        await kube.delete(NAMESPACE, None, namespace)
        await kube.close()
    return rows


async def _httpx(kubeconfig: Path, namespace: str, count: int, in_flight: int) -> Row:
    import httpx  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

    cluster = from_kubeconfig(kubeconfig)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(
        base_url=cluster.server,
        verify=cluster.ssl_context() or False,
        limits=limits,
        trust_env=False,
    ) as http:

        async def send(obj: dict[str, Any]) -> None:
            path = f"/api/v1/namespaces/{namespace}/configmaps"
            response = await http.post(
                path,
                content=json.dumps(obj).encode(),
                headers={"Content-Type": "application/json", **cluster.headers()},
            )
            if response.status_code >= 300:
                raise RuntimeError(f"POST {path}: HTTP {response.status_code}")
            json.loads(response.content)

        return await _measure("httpx", send, namespace, count, in_flight)


def render(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| client | in flight | requests/s | client CPU s per 1,000 requests |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r.client} | {r.in_flight} | {r.per_second:,.0f} | {r.cpu_per_1000:.2f} |" for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print the table."""
    parser = argparse.ArgumentParser(prog="python -m databuild.bench.client", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="writes per measurement")
    parser.add_argument("--kubeconfig", type=Path, help="an existing cluster's kubeconfig")
    args = parser.parse_args(argv)
    clients = ["kubernetes-threads", "aiohttp"]
    if importlib.util.find_spec("httpx") is not None:
        clients.append("httpx")
    if args.kubeconfig is not None:
        rows = asyncio.run(_run(args.kubeconfig, args.requests, clients))
    else:
        from databuild.testing import ControlPlane  # noqa: PLC0415

        with ControlPlane() as plane:
            rows = asyncio.run(_run(plane.kubeconfig, args.requests, clients))
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
