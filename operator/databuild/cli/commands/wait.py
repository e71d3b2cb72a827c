"""``databuild wait WANT...``: follow Wants made by anyone (GitOps, ``kubectl apply``)."""

from __future__ import annotations

from typing import Any

from databuild.cli.context import Context
from databuild.cli.live import follow_wants
from databuild.cli.render import parse_duration

__all__ = ["register"]


def register(sub: Any, common: Any, common_out: Any, parser_class: type) -> None:
    """Add the ``wait`` command."""
    p = sub.add_parser(
        "wait",
        parents=[common_out],
        help="follow Wants until they finish (exit 0 Successful, 1 Failed, 3 Expired)",
        description=(
            "Follow existing Wants on watches until every one is Successful (exit 0), or "
            "as soon as one fails (exit 1); 3 when one expired or --timeout ran out."
        ),
    )
    p.add_argument("wants", nargs="+", metavar="WANT", help="the Wants' names")
    p.add_argument("--timeout", help="give up after this long (exit 3), e.g. 10m")
    p.add_argument(
        "--interval", type=float, default=1.0, help="redraw at least this often, in seconds"
    )
    p.set_defaults(handler=run)


def run(ctx: Context) -> int:
    """Follow the Wants."""
    timeout = parse_duration(ctx.args.timeout) if ctx.args.timeout else None
    names = list(dict.fromkeys(ctx.args.wants))
    return follow_wants(ctx, names, timeout, ctx.args.interval)
