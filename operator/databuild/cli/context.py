"""What every command gets: parsed arguments, output streams, the cluster, the BEL store."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from databuild.adapters.bel import BelStore, BelStoreError, open_store
from databuild.adapters.bel.sqlite import sqlite_path
from databuild.cli.errors import CliError, ExitCode
from databuild.cli.kube import Cluster, connect
from databuild.cli.remote_bel import SERVICE_SCHEME, ServiceBelStore, parse_service_url

__all__ = ["BEL_URL_ENV", "DEFAULT_BEL_FILE", "Context"]

BEL_URL_ENV = "DATABUILD_BEL_URL"
DEFAULT_BEL_FILE = Path(".databuild/bel.db")


def _now() -> datetime:
    return datetime.now(UTC)


def _open_for_reading(url: str) -> BelStore:
    return open_store(url, migrate=False)


@dataclass
class Context:
    """One invocation of ``databuild``."""

    args: argparse.Namespace
    out: TextIO
    err: TextIO
    connect_cluster: Callable[[], Cluster] | None = None
    open_bel: Callable[[str], BelStore] = _open_for_reading
    clock: Callable[[], datetime] = _now
    sleep: Callable[[float], None] = time.sleep
    _cluster: Cluster | None = field(default=None, repr=False)

    @property
    def cluster(self) -> Cluster:
        """The cluster, connected on first use (--kubeconfig, --context, -n)."""
        if self._cluster is None:
            if self.connect_cluster is not None:
                self._cluster = self.connect_cluster()
            else:
                self._cluster = connect(
                    self.args.kubeconfig, self.args.context, self.args.namespace
                )
        return self._cluster

    @property
    def output(self) -> str:
        """The -o format; ``wide`` is the table format with more detail (see :attr:`wide`)."""
        fmt = str(self.args.output)
        return "table" if fmt == "wide" else fmt

    @property
    def wide(self) -> bool:
        """``-o wide``: tables with more detail."""
        return str(self.args.output) == "wide"

    def bel_url(self, required: bool) -> str | None:
        """--bel-url, else $DATABUILD_BEL_URL, else the local default file if it exists."""
        url: str | None = self.args.bel_url or os.environ.get(BEL_URL_ENV)
        if url is None and DEFAULT_BEL_FILE.exists():
            url = f"sqlite:///{DEFAULT_BEL_FILE}"
        if url is None and required:
            raise CliError(
                "no Build Event Log store: pass --bel-url (sqlite:///path/to/bel.db or "
                f"postgresql://user@host/db) or set {BEL_URL_ENV}",
                ExitCode.USAGE,
            )
        return url

    def bel(self, url: str) -> BelStore:
        """Open the BEL store at `url` for reading (its schema is left alone)."""
        if url.startswith(SERVICE_SCHEME):
            try:
                service = parse_service_url(url)
            except ValueError as e:
                raise CliError(str(e), ExitCode.USAGE) from None
            return ServiceBelStore(service, self.cluster.history_fetch(service))
        try:
            if not url.startswith(("postgresql:", "postgres:")) and not sqlite_path(url).exists():
                raise CliError(
                    f"no Build Event Log at {url}: no such file (is the operator writing "
                    "to another --bel-url?)",
                    ExitCode.NOT_FOUND,
                )
            store = self.open_bel(url)
            if store.schema_version() == 0:
                store.close()
                raise CliError(
                    f"the BEL store at {store.url} is empty: the operator has not written to it",
                    ExitCode.NOT_FOUND,
                )
        except BelStoreError as e:
            raise CliError(f"cannot open the BEL store: {e}", ExitCode.UNAVAILABLE) from None
        return store

    def print(self, text: str = "") -> None:
        """A line to stdout."""
        self.out.write(text + "\n")

    def note(self, text: str) -> None:
        """A line to stderr (progress, hints)."""
        self.err.write(text + "\n")
        self.err.flush()
