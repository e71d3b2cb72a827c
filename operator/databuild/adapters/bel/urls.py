"""Opening a BEL store from a URL (what ``--bel-url`` and the operator's setting take)."""

from __future__ import annotations

from urllib.parse import urlsplit

from databuild.adapters.bel.sqlite import SqliteBelStore
from databuild.adapters.bel.store import BelStore, BelStoreError, redact_url

__all__ = ["DEFAULT_URL", "open_store"]

DEFAULT_URL = "sqlite:///.databuild/bel.db"
"""The embedded default: an SQLite file relative to the working directory."""


def open_store(url: str, *, migrate: bool = True) -> BelStore:
    """Open the store at `url` and (by default) bring its schema up to date.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or a bare file path:
      the embedded store;
    * ``postgresql://user:password@host:5432/dbname`` (also ``postgres://``): PostgreSQL.
    """
    scheme = urlsplit(url).scheme.lower()
    store: BelStore
    if scheme in ("postgresql", "postgres"):
        store = _postgres_store(url)
    elif scheme in ("sqlite", ""):
        store = SqliteBelStore.from_url(url)
    else:
        raise BelStoreError(
            f"unsupported BEL store URL {redact_url(url)!r}: use sqlite:///path/to/bel.db "
            "or postgresql://user@host:port/dbname"
        )
    if migrate:
        store.migrate()
    return store


def _postgres_store(url: str) -> BelStore:
    # Imported here: PostgreSQL support is the `postgres` extra, and an SQLite user's
    # operator must start without psycopg installed.
    try:
        from databuild.adapters.bel.postgres import PostgresBelStore  # noqa: PLC0415
    except ImportError as e:
        raise BelStoreError(
            f"BEL store URL {redact_url(url)!r} needs PostgreSQL support, which is not "
            f"installed ({e}): pip install 'databuild-operator[postgres]'"
        ) from None
    return PostgresBelStore(url)
