"""The Build Event Log's durable stores: SQLite (embedded default) and PostgreSQL.

One protocol (:class:`BelStore`), two implementations, opened by URL with
:func:`open_store`; :class:`BelWriter` buffers writes so a store outage never stops the
operator; :func:`replay_at` answers "what was the state at time T".
"""

from databuild.adapters.bel.model import (
    ENTITY_KINDS,
    BelEvent,
    EntityKey,
    EntityKind,
    EventQuery,
    StoredEvent,
    stable_event_id,
)
from databuild.adapters.bel.recorder import BelRecorder, attach
from databuild.adapters.bel.replay import from_domain, replay_at, replay_stored, to_domain
from databuild.adapters.bel.retention import RetentionPolicy
from databuild.adapters.bel.store import (
    Baseline,
    BelStore,
    BelStoreError,
    BelStoreUnavailable,
    HistoryTruncated,
    redact_url,
)
from databuild.adapters.bel.urls import open_store
from databuild.adapters.bel.writer import BelWriter, WriterHealth

__all__ = [
    "ENTITY_KINDS",
    "Baseline",
    "BelEvent",
    "BelRecorder",
    "BelStore",
    "BelStoreError",
    "BelStoreUnavailable",
    "BelWriter",
    "EntityKey",
    "EntityKind",
    "EventQuery",
    "HistoryTruncated",
    "RetentionPolicy",
    "StoredEvent",
    "WriterHealth",
    "attach",
    "from_domain",
    "open_store",
    "redact_url",
    "replay_at",
    "replay_stored",
    "stable_event_id",
    "to_domain",
]
