"""What the SQL stores share: migrations runner, appends, queries and retention.

Each backend supplies its dialect (placeholders, how times, details and refs are
encoded, how to lock for an append, its migrations); the statements are the same.
"""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from databuild.adapters.bel.model import BelEvent, EntityKey, EventQuery, StoredEvent, utc
from databuild.adapters.bel.store import Baseline, BelStoreError

Migration = tuple[int, tuple[str, ...]]

_EVENT_COLUMNS = (
    "seq, event_id, time, namespace, kind, name, from_state, to_state, reason, "
    "job_definition, refs, details"
)


class SqlBelStore(abc.ABC):
    """A BEL store on an SQL database (see the backends for the dialects)."""

    MIGRATIONS: tuple[Migration, ...] = ()
    """(version, statements) in ascending order; each runs in one transaction."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # --- dialect -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where the store lives, without credentials."""

    @abc.abstractmethod
    def _transaction(self, *, write: bool) -> contextlib.AbstractContextManager[Any]:
        """A cursor inside one transaction; commits on success, rolls back on error."""

    @abc.abstractmethod
    def _q(self, sql: str) -> str:
        """`sql` written with ``?`` placeholders, in the backend's placeholder style."""

    @abc.abstractmethod
    def _enc_time(self, value: datetime) -> Any: ...

    @abc.abstractmethod
    def _dec_time(self, value: Any) -> datetime: ...

    @abc.abstractmethod
    def _enc_details(self, event: BelEvent) -> Any: ...

    @abc.abstractmethod
    def _dec_details(self, value: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def _enc_refs(self, refs: Sequence[str]) -> Any: ...

    @abc.abstractmethod
    def _dec_refs(self, value: Any) -> tuple[str, ...]: ...

    @abc.abstractmethod
    def _ref_match(self, glob: str) -> tuple[str, Any]:
        """SQL condition on column ``r.ref`` matching `glob`, and its parameter."""

    @abc.abstractmethod
    def _lock_schema(self, cur: Any) -> None:
        """Serialise migrations between processes (inside the migration transaction)."""

    @abc.abstractmethod
    def _lock_for_append(self, cur: Any) -> None:
        """Serialise appends so sequence order is commit order."""

    @abc.abstractmethod
    def _insert_event(self, cur: Any, event: BelEvent) -> int | None:
        """Insert one event unless its id exists; its new seq, or None when skipped."""

    @abc.abstractmethod
    def _version_table_exists(self, cur: Any) -> bool: ...

    # --- schema --------------------------------------------------------------------------

    @property
    def latest_version(self) -> int:
        """The newest schema version this code knows."""
        return self.MIGRATIONS[-1][0] if self.MIGRATIONS else 0

    def schema_version(self) -> int:
        with self._lock, self._transaction(write=False) as cur:
            return self._schema_version(cur)

    def _schema_version(self, cur: Any) -> int:
        if not self._version_table_exists(cur):
            return 0
        cur.execute("SELECT MAX(version) FROM bel_schema_version")
        row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def migrate(self, target: int | None = None) -> int:
        target = self.latest_version if target is None else target
        if target > self.latest_version:
            raise BelStoreError(
                f"BEL schema version {target} is unknown to this version of databuild "
                f"(newest: {self.latest_version})"
            )
        with self._lock:
            for version, statements in self.MIGRATIONS:
                if version > target:
                    break
                with self._transaction(write=True) as cur:
                    self._lock_schema(cur)
                    cur.execute(
                        "CREATE TABLE IF NOT EXISTS bel_schema_version ("
                        "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
                    )
                    current = self._schema_version(cur)
                    if current >= version:
                        continue
                    if current != version - 1:
                        raise BelStoreError(
                            f"BEL schema is at version {current}; cannot apply {version}"
                        )
                    for statement in statements:
                        cur.execute(statement)
                    cur.execute(
                        self._q("INSERT INTO bel_schema_version(version, applied_at) VALUES(?, ?)"),
                        (version, utc(datetime.now()).isoformat()),
                    )
            current = self.schema_version()
        if current > self.latest_version:
            raise BelStoreError(
                f"BEL schema version {current} is newer than this version of databuild "
                f"understands ({self.latest_version}): upgrade databuild"
            )
        return current

    # --- log -----------------------------------------------------------------------------

    def append(self, events: Sequence[BelEvent]) -> int:
        if not events:
            return 0
        added = 0
        with self._lock, self._transaction(write=True) as cur:
            self._lock_for_append(cur)
            for event in events:
                seq = self._insert_event(cur, event)
                if seq is None:
                    continue
                added += 1
                for ref in dict.fromkeys(event.refs):
                    cur.execute(
                        self._q("INSERT INTO bel_event_refs(ref, seq) VALUES(?, ?)"), (ref, seq)
                    )
        return added

    def _insert_params(self, event: BelEvent) -> tuple[Any, ...]:
        return (
            event.event_id,
            self._enc_time(event.time),
            event.namespace,
            event.kind,
            event.name,
            event.from_state,
            event.to_state,
            event.reason,
            event.job_definition,
            self._enc_refs(event.refs),
            self._enc_details(event),
        )

    _INSERT = (
        "INSERT INTO bel_events(event_id, time, namespace, kind, name, from_state, to_state, "
        "reason, job_definition, refs, details) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(event_id) DO NOTHING RETURNING seq"
    )

    def query(self, query: EventQuery | None = None) -> list[StoredEvent]:
        q = query or EventQuery()
        where, params = self._where(q)
        sql = f"SELECT {_EVENT_COLUMNS} FROM bel_events e {where} ORDER BY seq"
        if q.limit is not None:
            sql += " LIMIT ?"
            params.append(q.limit)
        with self._lock, self._transaction(write=False) as cur:
            cur.execute(self._q(sql), tuple(params))
            rows = cur.fetchall()
        return [self._row(row) for row in rows]

    def _where(self, q: EventQuery) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("namespace", q.namespace),
            ("kind", q.kind),
            ("name", q.name),
            ("job_definition", q.job_definition),
            ("to_state", q.state),
        ):
            if value is not None:
                clauses.append(f"e.{column} = ?")
                params.append(value)
        if q.since is not None:
            clauses.append("e.time >= ?")
            params.append(self._enc_time(q.since))
        if q.until is not None:
            clauses.append("e.time < ?")
            params.append(self._enc_time(q.until))
        if q.after_seq:
            clauses.append("e.seq > ?")
            params.append(q.after_seq)
        if q.reasons is not None:
            if not q.reasons:
                clauses.append("1 = 0")
            else:
                clauses.append(f"e.reason IN ({', '.join('?' for _ in q.reasons)})")
                params.extend(q.reasons)
        if q.ref_glob is not None:
            condition, param = self._ref_match(q.ref_glob)
            clauses.append(
                f"EXISTS (SELECT 1 FROM bel_event_refs r WHERE r.seq = e.seq AND {condition})"
            )
            params.append(param)
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), params

    def _row(self, row: Sequence[Any]) -> StoredEvent:
        (seq, event_id, time, namespace, kind, name, from_state, to_state, reason, jobdef) = row[
            :10
        ]
        return StoredEvent(
            seq=int(seq),
            event=BelEvent(
                namespace=namespace,
                kind=kind,
                name=name,
                from_state=from_state,
                to_state=to_state,
                reason=reason,
                time=self._dec_time(time),
                details=self._dec_details(row[11]),
                refs=self._dec_refs(row[10]),
                job_definition=jobdef,
                event_id=event_id,
            ),
        )

    def last_seq(self) -> int:
        with self._lock, self._transaction(write=False) as cur:
            cur.execute("SELECT MAX(seq) FROM bel_events")
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # --- retention -----------------------------------------------------------------------

    def delete_older_than(self, cutoff: datetime) -> int:
        cutoff = utc(cutoff)
        t = self._enc_time(cutoff)
        with self._lock, self._transaction(write=True) as cur:
            self._lock_for_append(cur)
            # Remember where the deleted events left each entity, so replay still works.
            cur.execute(
                self._q(
                    "INSERT INTO bel_baseline(namespace, kind, name, state, seq, time) "
                    "SELECT e.namespace, e.kind, e.name, e.to_state, e.seq, e.time "
                    "FROM bel_events e WHERE e.seq IN ("
                    "SELECT MAX(seq) FROM bel_events WHERE time < ? "
                    "GROUP BY namespace, kind, name) "
                    "ON CONFLICT(namespace, kind, name) DO UPDATE SET "
                    "state = excluded.state, seq = excluded.seq, time = excluded.time"
                ),
                (t,),
            )
            cur.execute(
                self._q(
                    "DELETE FROM bel_event_refs WHERE seq IN "
                    "(SELECT seq FROM bel_events WHERE time < ?)"
                ),
                (t,),
            )
            cur.execute(self._q("DELETE FROM bel_events WHERE time < ?"), (t,))
            deleted = int(cur.rowcount)
            previous = self._retained_since(cur)
            if previous is None or cutoff > previous:
                cur.execute(
                    self._q(
                        "INSERT INTO bel_meta(key, value) VALUES('retained_since', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
                    ),
                    (cutoff.isoformat(),),
                )
        return deleted

    def _retained_since(self, cur: Any) -> datetime | None:
        cur.execute("SELECT value FROM bel_meta WHERE key = 'retained_since'")
        row = cur.fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def baseline(self) -> Baseline:
        with self._lock, self._transaction(write=False) as cur:
            since = self._retained_since(cur)
            cur.execute("SELECT namespace, kind, name, seq, state FROM bel_baseline")
            rows = cur.fetchall()
        return Baseline(
            retained_since=since,
            states={EntityKey(r[0], r[1], r[2]): (int(r[3]), r[4]) for r in rows},
        )
