"""BatchWriter: size- and time-bounded batches, retries that keep rows, flush on close. A fake client."""

from __future__ import annotations

from typing import Any

import pytest

from projections.writer import BatchWriter

COLUMNS = ("id", "name")


class FakeClient:
    def __init__(self, fail: int = 0) -> None:
        self.inserts: list[tuple[str, list[list[Any]], tuple[str, ...]]] = []
        self.fail = fail

    def insert(self, table: str, data: Any, column_names: Any = None, **kwargs: Any) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("server went away")
        self.inserts.append((table, [list(r) for r in data], tuple(column_names)))

    @property
    def sizes(self) -> list[int]:
        return [len(batch) for _, batch, _ in self.inserts]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"r{i}", "extra": "ignored"} for i in range(start, start + n)]


def test_full_batches_are_inserted_at_once_the_rest_waits() -> None:
    client = FakeClient()
    writer = BatchWriter(client, "t", COLUMNS, max_rows=10, max_seconds=60, clock=FakeClock())

    assert writer.add(rows(25)) == 20

    assert client.sizes == [10, 10]
    assert writer.pending == 5
    assert client.inserts[0] == ("t", [[i, f"r{i}"] for i in range(10)], COLUMNS)
    assert writer.flush() == 5
    assert client.sizes == [10, 10, 5]
    assert (writer.rows_written, writer.batches_written, writer.pending) == (25, 3, 0)
    assert writer.flush() == 0 and client.sizes == [10, 10, 5]


def test_the_oldest_row_bounds_the_wait() -> None:
    client, clock = FakeClient(), FakeClock()
    writer = BatchWriter(client, "t", COLUMNS, max_rows=1000, max_seconds=1.0, clock=clock)

    writer.add(rows(3))
    clock.now += 0.5
    writer.add(rows(2, start=3))
    assert writer.flush_if_due() == 0 and client.sizes == []
    clock.now += 0.5  # the first rows have waited 1 s

    assert writer.flush_if_due() == 5
    assert client.sizes == [5]

    writer.add(rows(1, start=5))
    clock.now += 2
    assert writer.add(rows(1, start=6)) == 2  # add() itself flushes when due
    assert client.sizes == [5, 2]


def test_a_failed_insert_keeps_its_rows_for_the_retry() -> None:
    client = FakeClient(fail=1)
    writer = BatchWriter(client, "t", COLUMNS, max_rows=10, max_seconds=60, clock=FakeClock())
    writer.add(rows(4))

    with pytest.raises(ConnectionError):
        writer.flush()
    assert writer.pending == 4 and client.inserts == []

    assert writer.flush() == 4
    assert client.inserts[0][1] == [[i, f"r{i}"] for i in range(4)]


def test_close_flushes_even_when_the_body_failed_and_refuses_more_rows() -> None:
    client = FakeClient()
    with pytest.raises(RuntimeError, match="boom"):
        with BatchWriter(client, "t", COLUMNS, max_rows=10, max_seconds=60) as writer:
            writer.add(rows(3))
            raise RuntimeError("boom")

    assert client.sizes == [3]
    with pytest.raises(RuntimeError, match="closed"):
        writer.add(rows(1))
    writer.close()  # idempotent
    assert client.sizes == [3]


def test_close_marks_closed_even_if_the_last_flush_fails() -> None:
    writer = BatchWriter(FakeClient(fail=1), "t", COLUMNS)
    writer.append({"id": 1, "name": "a"})

    with pytest.raises(ConnectionError):
        writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.append({"id": 2, "name": "b"})


def test_a_row_without_a_column_is_refused_by_name() -> None:
    writer = BatchWriter(FakeClient(), "task_events", COLUMNS)

    with pytest.raises(ValueError, match="task_events: row lacks column 'name'"):
        writer.add([{"id": 1}])


def test_a_refused_row_leaves_nothing_of_its_call_buffered() -> None:
    writer = BatchWriter(FakeClient(), "task_events", COLUMNS)
    writer.add([{"id": 0, "name": "kept"}])
    with pytest.raises(ValueError, match="row lacks column 'name'"):
        writer.add([{"id": 1, "name": "a"}, {"id": 2}])
    assert writer.pending == 1
    assert writer.flush() == 1


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        BatchWriter(FakeClient(), "t", COLUMNS, max_rows=0)
    with pytest.raises(ValueError):
        BatchWriter(FakeClient(), "t", ())
