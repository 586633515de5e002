"""A batching writer: rows in, size- and time-bounded ``client.insert`` calls out.

ClickHouse (and chdb even more: ~250k rows/s in 10k batches, ~230 rows/s one by one) wants few large
inserts. ``BatchWriter`` buffers row dicts and inserts them through a clickhouse-connect client with
``client.insert(table, rows, column_names=columns)`` when ``max_rows`` are buffered or when the oldest
buffered row has waited ``max_seconds`` (checked on every ``add`` and by ``flush_if_due()``, which a
stream processor calls from a periodic timer so a quiet stream still flushes).

Idempotency is the tables' job (ReplacingMergeTree keyed by row identity, read with FINAL; see
``projections.schema``): inserting a batch twice - a retry after a failed insert, a replayed event - never
double-counts. So a failed insert keeps its rows buffered and re-raises: the caller retries (``flush``)
and commits its consumer offsets only after a successful flush.

Not thread-safe on purpose beyond a lock around the buffer swap: one writer per consumer task.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Protocol


class InsertClient(Protocol):
    """The part of a clickhouse-connect client the writer uses."""

    def insert(self, table: str, data: Any, column_names: Any = ..., **kwargs: Any) -> Any: ...


class BatchWriter:
    """Buffer rows for ``table`` and insert them in batches of at most ``max_rows``."""

    def __init__(
        self,
        client: InsertClient,
        table: str,
        columns: Iterable[str],
        max_rows: int = 10_000,
        max_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        if max_seconds < 0:
            raise ValueError("max_seconds may not be negative")
        self.client = client
        self.table = table
        self.columns = tuple(columns)
        if not self.columns:
            raise ValueError("a writer needs the table's insert columns")
        self._values = itemgetter(*self.columns) if len(self.columns) > 1 else lambda row: (row[self.columns[0]],)
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self._clock = clock
        self._buffer: list[tuple[Any, ...]] = []
        self._oldest: float | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._context: Any = None
        self.rows_written = 0
        self.batches_written = 0

    # -- input ------------------------------------------------------------------------------------------------
    def add(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Buffer ``rows`` (dicts with at least ``columns``); insert full batches, and everything when the
        oldest buffered row is due. Returns the number of rows inserted by this call."""
        if self._closed:
            raise RuntimeError(f"BatchWriter({self.table}) is closed")
        values = self._values
        with self._lock:
            buffered = len(self._buffer)
            try:
                self._buffer.extend(map(values, rows))  # the row's values in column order, in C
            except KeyError as missing:
                del self._buffer[buffered:]  # nothing of a refused call stays buffered
                raise ValueError(
                    f"{self.table}: row lacks column {missing.args[0]!r} (insert columns: {', '.join(self.columns)})"
                ) from None
            if self._oldest is None and len(self._buffer) > buffered:
                self._oldest = self._clock()
            written = 0
            while len(self._buffer) >= self.max_rows:
                written += self._insert(self.max_rows)
            if self.due():
                written += self.flush()
            return written

    def append(self, row: Mapping[str, Any]) -> int:
        """``add([row])``."""
        return self.add((row,))

    # -- output -----------------------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Rows buffered, not yet inserted."""
        return len(self._buffer)

    def due(self) -> bool:
        """True when rows are buffered and the oldest has waited ``max_seconds``."""
        return self._oldest is not None and self._clock() - self._oldest >= self.max_seconds

    def flush_if_due(self) -> int:
        """Insert everything when the time bound is reached (call it from a timer)."""
        with self._lock:
            return self.flush() if self.due() else 0

    def flush(self) -> int:
        """Insert every buffered row now (in batches of at most ``max_rows``). Returns rows inserted.
        On an insert error the rows not yet inserted stay buffered and the error propagates."""
        with self._lock:
            written = 0
            while self._buffer:
                written += self._insert(self.max_rows)
            return written

    def _insert(self, limit: int) -> int:
        batch = self._buffer[:limit]
        context = self._insert_context()
        if context is None:
            self.client.insert(self.table, batch, column_names=self.columns)
        else:
            try:
                self.client.insert(data=batch, context=context)
            except BaseException:
                self._context = None  # rebuilt (column types read again) on the retry
                raise
        del self._buffer[: len(batch)]
        if not self._buffer:
            self._oldest = None  # else keep the old mark: the rest waited at least that long (bounds latency)
        self.rows_written += len(batch)
        self.batches_written += 1
        return len(batch)

    def _insert_context(self) -> Any:
        """clickhouse-connect's reusable insert context for (table, columns): the column types are read from
        the server once, not before every batch (on chdb that read costs as much as a 10k-row insert)."""
        if self._context is None:
            create = getattr(self.client, "create_insert_context", None)
            if create is not None:
                self._context = create(self.table, column_names=list(self.columns))
        return self._context

    def close(self) -> None:
        """Flush what is buffered, then refuse further rows (also when the flush fails)."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"BatchWriter({self.table!r}, max_rows={self.max_rows}, max_seconds={self.max_seconds}, "
            f"pending={self.pending}, written={self.rows_written})"
        )
