"""Writing to the BEL without ever holding up reconciliation.

:class:`BelWriter` takes events into a bounded in-memory buffer (``submit`` never waits
for the store) and a background thread appends them, in order, in batches. When the
store is down the thread retries with exponential backoff and the buffer grows; nothing
is lost unless the buffer's bound is hit, which is counted, logged as an error and
reported in :meth:`BelWriter.health`. Appends are idempotent (stable event ids), so a
batch retried after an ambiguous failure is never stored twice.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from databuild.adapters.bel.model import BelEvent
from databuild.adapters.bel.retention import RetentionPolicy
from databuild.adapters.bel.store import BelStore

__all__ = ["BelWriter", "WriterHealth"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """A snapshot of the writer's state, for metrics and health checks."""

    buffered: int
    """Events accepted but not yet stored."""
    written_total: int
    """Events stored (duplicates skipped by the store included)."""
    dropped_total: int
    """Events lost because the buffer was full."""
    errors_total: int
    """Failed append attempts."""
    last_error: str | None
    """The last append error, cleared by the next successful append."""
    last_success: float | None
    """``time.time()`` of the last successful append."""
    healthy: bool
    """No error since the last successful append, and nothing dropped."""


class BelWriter:
    """Buffers BEL events in memory and appends them to a store from a background thread.

    Pass either ``store`` or ``opener``, a zero-argument function opening one; the
    opener is called (again) after it fails, so the operator can start while the store
    is down. With a ``retention`` policy the writer's thread also applies it every
    ``retention_interval`` seconds (the first time right after the first append).
    """

    def __init__(
        self,
        store: BelStore | None = None,
        *,
        opener: Callable[[], BelStore] | None = None,
        max_buffer: int = 100_000,
        batch_size: int = 500,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        on_error: Callable[[BaseException], None] | None = None,
        retention: RetentionPolicy | None = None,
        retention_interval: float = 3600.0,
    ) -> None:
        if max_buffer < 1 or batch_size < 1:
            raise ValueError("max_buffer and batch_size must be at least 1")
        if (store is None) == (opener is None):
            raise ValueError("pass exactly one of store and opener")
        self._opener = opener
        self._store = store
        self._max_buffer = max_buffer
        self._batch_size = batch_size
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._on_error = on_error
        self._retention = retention
        self._retention_interval = retention_interval
        self._next_retention = 0.0
        self._retention_deleted = 0
        self._buffer: collections.deque[BelEvent] = collections.deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._written = 0
        self._dropped = 0
        self._errors = 0
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._thread: threading.Thread | None = None

    # --- producer side -------------------------------------------------------------------

    def submit(self, events: Iterable[BelEvent]) -> int:
        """Queue `events` for appending; returns how many were accepted. Never blocks.

        When the buffer is full the newest events are refused (so what is stored stays a
        gap-free prefix up to the overflow), counted in ``dropped_total`` and logged.
        """
        accepted = 0
        refused = 0
        with self._cond:
            for event in events:
                if len(self._buffer) + self._in_flight >= self._max_buffer:
                    refused += 1
                    continue
                self._buffer.append(event)
                accepted += 1
            self._dropped += refused
            if accepted:
                self._cond.notify_all()
        if refused:
            log.error(
                "BEL writer buffer is full (%d events waiting for the store): dropped %d "
                "event(s), %d dropped so far. Last store error: %s",
                self._max_buffer,
                refused,
                self._dropped,
                self._last_error,
            )
        return accepted

    def health(self) -> WriterHealth:
        """Buffered count, totals and the last error."""
        with self._cond:
            return WriterHealth(
                buffered=len(self._buffer) + self._in_flight,
                written_total=self._written,
                dropped_total=self._dropped,
                errors_total=self._errors,
                last_error=self._last_error,
                last_success=self._last_success,
                healthy=self._last_error is None and self._dropped == 0,
            )

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> BelWriter:
        """Start the background thread (idempotent)."""
        with self._cond:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(
                    target=self._run, name="databuild-bel-writer", daemon=True
                )
                self._thread.start()
        return self

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is stored; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._buffer or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush for up to `timeout` seconds, then stop. False if events were left over."""
        flushed = self.flush(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=max(1.0, timeout))
        if not flushed:
            log.error(
                "BEL writer stopped with %d event(s) not stored (last error: %s)",
                self.health().buffered,
                self._last_error,
            )
        return flushed

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._backoff_initial
        while True:
            with self._cond:
                while not self._buffer and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                size = min(self._batch_size, len(self._buffer))
                batch = [self._buffer.popleft() for _ in range(size)]
                self._in_flight = len(batch)
            try:
                self._append(batch)
            except Exception as e:
                self._failed(batch, e)
                # Exponential backoff with jitter; close() interrupts the wait.
                delay = backoff * (0.5 + random.random() / 2)
                backoff = min(self._backoff_max, backoff * 2)
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(delay)
                continue
            backoff = self._backoff_initial
            with self._cond:
                self._in_flight = 0
                self._written += len(batch)
                self._last_error = None
                self._last_success = time.time()
                self._cond.notify_all()
            self._maybe_apply_retention()

    def _maybe_apply_retention(self) -> None:
        if self._retention is None or self._store is None:
            return
        now = time.monotonic()
        if now < self._next_retention:
            return
        self._next_retention = now + self._retention_interval
        try:
            deleted = self._retention.apply(self._store)
        except Exception as e:  # retried at the next interval; appends go on
            log.warning("BEL retention failed (retrying in %.0fs): %s", self._retention_interval, e)
            return
        self._retention_deleted += deleted
        if deleted:
            log.info(
                "BEL retention deleted %d event(s) older than %s days",
                deleted,
                self._retention.days,
            )

    def _append(self, batch: list[BelEvent]) -> None:
        if self._store is None:
            assert self._opener is not None
            self._store = self._opener()
        self._store.append(batch)

    def _failed(self, batch: list[BelEvent], error: Exception) -> None:
        with self._cond:
            # Put the batch back in front, in order: it is retried before anything newer.
            self._buffer.extendleft(reversed(batch))
            self._in_flight = 0
            self._errors += 1
            first = self._last_error is None
            self._last_error = f"{type(error).__name__}: {error}"
            buffered = len(self._buffer)
        if first:
            log.warning(
                "BEL store append failed, retrying with backoff (%d event(s) buffered): %s",
                buffered,
                error,
            )
        else:
            log.debug("BEL store append failed again (%d buffered): %s", buffered, error)
        if self._on_error is not None:
            self._on_error(error)
