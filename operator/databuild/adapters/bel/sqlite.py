"""The embedded BEL store: one SQLite file in WAL mode, nothing to set up.

WAL lets readers (the CLI's ``events --follow``) read while the operator writes.
Times are stored as integer microseconds since the epoch (UTC), which sort and compare
exactly; details and refs as JSON text.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from databuild.adapters.bel._sql import Migration, SqlBelStore
from databuild.adapters.bel.model import BelEvent, glob_to_sqlite_glob, utc
from databuild.adapters.bel.store import BelStoreError, BelStoreUnavailable

__all__ = ["SqliteBelStore", "sqlite_path"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            "CREATE TABLE bel_events ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " event_id TEXT NOT NULL UNIQUE,"
            " time INTEGER NOT NULL,"
            " namespace TEXT NOT NULL,"
            " kind TEXT NOT NULL,"
            " name TEXT NOT NULL,"
            " from_state TEXT,"
            " to_state TEXT NOT NULL,"
            " reason TEXT NOT NULL,"
            " job_definition TEXT,"
            " refs TEXT NOT NULL DEFAULT '[]',"
            " details TEXT NOT NULL DEFAULT '{}')",
            "CREATE INDEX bel_events_entity ON bel_events(namespace, kind, name)",
            "CREATE INDEX bel_events_time ON bel_events(time)",
            "CREATE INDEX bel_events_job_definition ON bel_events(job_definition)",
            "CREATE INDEX bel_events_to_state ON bel_events(to_state)",
            "CREATE TABLE bel_event_refs ("
            " ref TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (ref, seq))",
            "CREATE INDEX bel_event_refs_seq ON bel_event_refs(seq)",
        ),
    ),
    (
        2,
        (
            "CREATE TABLE bel_baseline ("
            " namespace TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
            " state TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,"
            " PRIMARY KEY (namespace, kind, name))",
            "CREATE TABLE bel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
)


def sqlite_path(url: str) -> Path:
    """The file of ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain path."""
    parts = urlsplit(url)
    if parts.scheme == "":
        return Path(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise BelStoreError(
            f"invalid SQLite URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db (three slashes, then the path)"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise BelStoreError(f"invalid SQLite URL {url!r}: no file path")
    return Path(path)


class SqliteBelStore(SqlBelStore):
    """The embedded Build Event Log: an SQLite database file (WAL mode)."""

    MIGRATIONS = _MIGRATIONS

    def __init__(self, path: str | Path, *, timeout: float = 5.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as e:
            raise BelStoreUnavailable(f"cannot open the BEL store {self.path}: {e}") from e

    @classmethod
    def from_url(cls, url: str) -> SqliteBelStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or a plain path."""
        return cls(sqlite_path(url))

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        cur = self._conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
        except sqlite3.OperationalError as e:
            # "database is locked", disk full, file gone: worth retrying later.
            raise BelStoreUnavailable(f"BEL store {self.path}: {e}") from e
        except sqlite3.Error as e:
            raise BelStoreError(f"BEL store {self.path}: {e}") from e
        finally:
            cur.close()

    def _q(self, sql: str) -> str:
        return sql

    def _enc_time(self, value: datetime) -> Any:
        delta = utc(value) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds

    def _dec_time(self, value: Any) -> datetime:
        seconds, micros = divmod(int(value), 1_000_000)
        return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)

    def _enc_details(self, event: BelEvent) -> Any:
        return event.details_json()

    def _dec_details(self, value: Any) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(value)
        return decoded

    def _enc_refs(self, refs: Sequence[str]) -> Any:
        return json.dumps(list(refs))

    def _dec_refs(self, value: Any) -> tuple[str, ...]:
        return tuple(json.loads(value))

    def _ref_match(self, glob: str) -> tuple[str, Any]:
        return "r.ref GLOB ?", glob_to_sqlite_glob(glob)

    def _lock_schema(self, cur: Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def _lock_for_append(self, cur: Any) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's write lock

    def _insert_event(self, cur: Any, event: BelEvent) -> int | None:
        cur.execute(self._INSERT, self._insert_params(event))
        row = cur.fetchone()
        return int(row[0]) if row else None

    def _version_table_exists(self, cur: Any) -> bool:
        cur.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'bel_schema_version'"
        )
        return cur.fetchone() is not None
