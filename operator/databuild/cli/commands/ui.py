"""``databuild ui [--port N] [--address A]``: the read-only web UI (default 127.0.0.1:8088).

The chart runs it in the operator pod with ``--address 0.0.0.0`` behind the history
Service, where only the API server's service proxy reaches it (see docs/ui.md).
"""

from __future__ import annotations

from typing import Any

from databuild.adapters.bel import BelStore
from databuild.cli.context import Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.ui.server import UiServer

__all__ = ["DEFAULT_PORT", "register"]

DEFAULT_PORT = 8088


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``ui`` command."""
    p = sub.add_parser(
        "ui",
        parents=[common],
        help="serve the read-only web UI on localhost",
        description=(
            "Serve a read-only web UI for the current kubeconfig context and namespace on "
            "http://127.0.0.1:PORT/: Wants and progress, the partition grid, lineage, "
            "the timeline of a Want's runs and the event history (with --bel-url)."
        ),
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8088; 0: any)")
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help=(
            "address to listen on (default 127.0.0.1: the UI acts with your credentials; "
            "0.0.0.0 only in a pod behind the service proxy)"
        ),
    )
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    """Serve until interrupted."""
    url = ctx.bel_url(required=False)
    open_bel = None
    if url is not None:
        bel_url = url

        def open_bel() -> BelStore:
            return ctx.bel(bel_url)

    cluster = ctx.cluster
    try:
        server = UiServer(ctx.args.port, cluster, open_bel, host=ctx.args.address)
    except OSError as e:
        where = f"{ctx.args.address}:{ctx.args.port}"
        raise CliError(f"cannot listen on {where}: {e}", ExitCode.USAGE) from None
    ctx.note(
        f"DataBuild UI for namespace {cluster.namespace}: http://{ctx.args.address}:{server.port}/"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return ExitCode.OK
