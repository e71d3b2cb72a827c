"""``databuild`` (also ``kubectl databuild``): Wants, status, lineage and the BEL.

Exit codes: 0 success; 1 the Want failed (or the request was refused); 2 usage error;
3 the Want expired, or --timeout ran out; 4 not found; 5 cluster or BEL store
unreachable. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from databuild import __version__
from databuild.cli.commands import (
    backfill,
    events,
    explain,
    graph,
    logs,
    status,
    taint,
    ui,
    wait,
    want,
)
from databuild.cli.completion import NO_FILES, SCRIPTS, candidates
from databuild.cli.context import BEL_URL_ENV, Context
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Cluster
from databuild.cli.render import OUTPUT_FORMATS

__all__ = ["build_parser", "kubectl_complete", "main", "run"]

_COMMANDS = (want, wait, backfill, status, explain, events, graph, taint, logs, ui)

EPILOG = """exit codes:
  0  success (with --wait: the Want is Successful)
  1  the Want failed, or the request was refused
  2  usage error
  3  the Want expired, or --timeout ran out
  4  not found (Want, Partition, BEL store)
  5  the cluster or the BEL store could not be reached
"""


class _Parser(argparse.ArgumentParser):
    """argparse, exiting with our usage code (2, like argparse's own)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _common(output: bool) -> argparse.ArgumentParser:
    # Defaults are SUPPRESSed so that an option given before the command is not reset
    # by the subcommand's parser.
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    g = p.add_argument_group("cluster and store")
    g.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG)")
    g.add_argument("--context", help="kubeconfig context (default: the current one)")
    g.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")
    g.add_argument(
        "--bel-url",
        help=(
            "Build Event Log: sqlite:///path, postgresql://..., or an in-cluster operator's "
            f"history API as service://NAMESPACE/SERVICE[:PORT] (env {BEL_URL_ENV})"
        ),
    )
    if output:
        g.add_argument("-o", "--output", choices=OUTPUT_FORMATS, help="output format")
    return p


def build_parser(prog: str = "databuild") -> argparse.ArgumentParser:
    """The whole command line (``prog``: ``kubectl databuild`` when run as the plugin)."""
    parser = _Parser(
        prog=prog,
        description="Ask for data partitions and follow how they are built.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(output=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(kubeconfig=None, context=None, namespace=None, bel_url=None, output="table")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common, common_out = _common(output=False), _common(output=True)
    for module in _COMMANDS:
        module.register(sub, common, common_out, _Parser)
    c = sub.add_parser(
        "completion",
        help="print a shell completion script (bash or zsh)",
        description=(
            "Print a completion script: `source <(databuild completion bash)` in ~/.bashrc. "
            "`kubectl databuild` completes through kubectl_complete-databuild (installed "
            "with the package; kubectl 1.26 or later)."
        ),
    )
    c.add_argument("shell", choices=sorted(SCRIPTS))
    c.set_defaults(handler=lambda ctx: _print_script(ctx.out, ctx.args.shell))
    return parser


def _print_script(out: TextIO, shell: str) -> int:
    out.write(SCRIPTS[shell])
    return ExitCode.OK


def _prog() -> str:
    """``kubectl databuild`` when kubectl runs us as its plugin, else ``databuild``."""
    name = Path(sys.argv[0]).name
    return "kubectl databuild" if name.startswith("kubectl-databuild") else "databuild"


def run(
    argv: Sequence[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    connect_cluster: Callable[[], Cluster] | None = None,
    prog: str = "databuild",
    **context: object,
) -> int:
    """Run one command line; returns the exit code (tests call this directly)."""
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser(prog)
    if argv and argv[0] == "__complete":  # what the completion scripts ask
        for word in candidates(parser, argv[1:]):
            out.write(word + "\n")
        return ExitCode.OK
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else ExitCode.USAGE
    ctx = Context(args, out, err, connect_cluster, **context)  # type: ignore[arg-type]
    handler: Callable[[Context], int] = args.handler
    try:
        return handler(ctx)
    except CliError as e:
        err.write(f"error: {e}\n")
        return int(e.code)
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``databuild`` and ``kubectl-databuild``."""
    return run(sys.argv[1:] if argv is None else argv, prog=_prog())


def kubectl_complete(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``kubectl_complete-databuild``: kubectl's plugin completion."""
    words = list(sys.argv[1:] if argv is None else argv)
    for word in candidates(build_parser("kubectl databuild"), words):
        sys.stdout.write(word + "\n")
    sys.stdout.write(f":{NO_FILES}\n")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
