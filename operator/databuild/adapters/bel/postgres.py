"""The BEL store for installations that outgrow SQLite: PostgreSQL (psycopg 3).

Appends take a table lock (``SHARE ROW EXCLUSIVE``: readers are not blocked) so that the
order of sequence numbers is the order of commits, and a follower that reads
``seq > last`` never skips an event committed late. A lost connection is reported as
:class:`~databuild.adapters.bel.store.BelStoreUnavailable` and re-opened on the next
call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from databuild.adapters.bel._sql import Migration, SqlBelStore
from databuild.adapters.bel.model import BelEvent, glob_to_like, utc
from databuild.adapters.bel.store import BelStoreError, BelStoreUnavailable, redact_url

__all__ = ["PostgresBelStore"]

_MIGRATIONS: tuple[Migration, ...] = (
    (
        1,
        (
            "CREATE TABLE bel_events ("
            " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
            " event_id TEXT NOT NULL UNIQUE,"
            " time TIMESTAMPTZ NOT NULL,"
            " namespace TEXT NOT NULL,"
            " kind TEXT NOT NULL,"
            " name TEXT NOT NULL,"
            " from_state TEXT,"
            " to_state TEXT NOT NULL,"
            " reason TEXT NOT NULL,"
            " job_definition TEXT,"
            " refs TEXT[] NOT NULL DEFAULT '{}',"
            " details JSONB NOT NULL DEFAULT '{}')",
            "CREATE INDEX bel_events_entity ON bel_events(namespace, kind, name)",
            "CREATE INDEX bel_events_time ON bel_events(time)",
            "CREATE INDEX bel_events_job_definition ON bel_events(job_definition)",
            "CREATE INDEX bel_events_to_state ON bel_events(to_state)",
            "CREATE TABLE bel_event_refs ("
            " ref TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (ref, seq))",
            "CREATE INDEX bel_event_refs_seq ON bel_event_refs(seq)",
            "CREATE INDEX bel_event_refs_prefix ON bel_event_refs(ref text_pattern_ops)",
        ),
    ),
    (
        2,
        (
            "CREATE TABLE bel_baseline ("
            " namespace TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,"
            " state TEXT NOT NULL, seq BIGINT NOT NULL, time TIMESTAMPTZ NOT NULL,"
            " PRIMARY KEY (namespace, kind, name))",
            "CREATE TABLE bel_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        ),
    ),
)


class PostgresBelStore(SqlBelStore):
    """The Build Event Log in a PostgreSQL database."""

    MIGRATIONS = _MIGRATIONS

    def __init__(self, url: str, *, connect_timeout: int = 5) -> None:
        super().__init__()
        self._dsn = url
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def url(self) -> str:
        return redact_url(self._dsn)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                options="-c statement_timeout=30000 -c lock_timeout=10000",
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Any]:
        try:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as e:
            # Refused, lost or timed out. Whether a COMMIT that was in flight landed is
            # unknown; appends are idempotent, so the caller just retries.
            self._drop_connection()
            raise BelStoreUnavailable(f"BEL store {self.url}: {e}") from e
        except psycopg.Error as e:
            if self._conn is not None and self._conn.broken:
                self._drop_connection()
                raise BelStoreUnavailable(f"BEL store {self.url}: {e}") from e
            raise BelStoreError(f"BEL store {self.url}: {e}") from e

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _enc_time(self, value: datetime) -> Any:
        return utc(value)

    def _dec_time(self, value: Any) -> datetime:
        if not isinstance(value, datetime):
            raise BelStoreError(f"unexpected time value {value!r} in the BEL store")
        return utc(value)

    def _enc_details(self, event: BelEvent) -> Any:
        return Jsonb(dict(event.details), dumps=lambda _: event.details_json())

    def _dec_details(self, value: Any) -> dict[str, Any]:
        return dict(value)

    def _enc_refs(self, refs: Sequence[str]) -> Any:
        return list(refs)

    def _dec_refs(self, value: Any) -> tuple[str, ...]:
        return tuple(value)

    def _ref_match(self, glob: str) -> tuple[str, Any]:
        return "r.ref LIKE ? ESCAPE '\\'", glob_to_like(glob)

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('databuild.bel.schema'))")

    def _lock_for_append(self, cur: Any) -> None:
        cur.execute("LOCK TABLE bel_events IN SHARE ROW EXCLUSIVE MODE")

    def _insert_event(self, cur: Any, event: BelEvent) -> int | None:
        cur.execute(self._q(self._INSERT), self._insert_params(event))
        row = cur.fetchone()
        return int(row[0]) if row else None

    def _version_table_exists(self, cur: Any) -> bool:
        cur.execute("SELECT to_regclass('bel_schema_version') IS NOT NULL")
        row = cur.fetchone()
        return bool(row and row[0])
