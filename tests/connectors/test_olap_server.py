"""Reading the chdb store through its owner: the worker's read-only ClickHouse-HTTP endpoint.

Real parts: tansu broker, SQLite event store, relay, the worker subprocess (``python -m streams.run``) owning
the chdb directory, ``taskledger sql`` subprocesses, clickhouse-connect and plain HTTP against the endpoint."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.broker import DevBroker
from connectors.eventstore import open_ledger
from connectors.olap_server import discovery_path
from connectors.relay import Relay
from connectors.settings import Settings
from tests.connectors.stack_helpers import (
    ROOT,
    TASKS,
    endpoint_url,
    environment,
    make_history,
    sql_json,
    taskledger,
    wait_for,
)
from tests.kafka_fixtures import fresh_broker  # noqa: F401  (fixture)


def http(url: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def owned(
    fresh_broker: DevBroker,  # noqa: F811
    tmp_path: Path,
    signed: Callable[[bytes], tuple[str, dict[str, Any]]],
    pki: Any,
) -> Iterator[tuple[Path, dict[str, str], int, subprocess.Popen[bytes], Path]]:
    """A home whose history the worker has projected; the worker still runs and owns the chdb directory."""
    home = tmp_path / "home"
    home.mkdir()
    expected = make_history(home, signed, pki)
    settings = Settings(home=home, kafka_bootstrap=fresh_broker.bootstrap)
    relay = Relay(open_ledger(settings), fresh_broker.bootstrap)
    try:
        relay.run(until_caught_up=True, max_seconds=60)
    finally:
        relay.close()
    env = environment(home, pki, TASKLEDGER_KAFKA_BOOTSTRAP=fresh_broker.bootstrap)
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.run"], cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: endpoint_url(home) is not None, 120, "the endpoint's discovery file", log)

        def projected() -> bool:
            done = taskledger(env, "sql", "SELECT count() AS n FROM task_events FINAL", "--json")
            return done.returncode == 0 and json.loads(done.stdout) == [{"n": expected}]

        wait_for(projected, 120, f"{expected} events in ClickHouse", log)
        yield home, env, expected, worker, log
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def test_sql_reads_through_the_worker_while_it_owns_the_store(owned: Any) -> None:
    home, env, expected, worker, log = owned
    assert sql_json(env, "SELECT count() FROM task_events") == [{"count()": expected}]
    rows = sql_json(env, "SELECT task_id, status, lifecycle FROM task_status FINAL ORDER BY task_id")
    assert len(rows) == TASKS
    assert {r["status"] for r in rows} <= {"in_progress_on_time", "not_started_overdue", "awaiting_receipt"}
    # a table through the endpoint, same as direct
    done = taskledger(env, "sql", "SELECT type, count() AS n FROM task_events GROUP BY type ORDER BY type")
    assert done.returncode == 0, done.stderr
    assert "TaskAssigned" in done.stdout and str(TASKS) in done.stdout

    # refused before reaching anyone: one line naming the field, exit 2; the worker keeps running
    done = taskledger(env, "sql", "DROP TABLE task_events")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "refused (invalid) statement: is read-only: DROP is refused; "
        "only SELECT, WITH, SHOW, DESCRIBE or EXPLAIN statements run here"
    ]
    # an engine error comes back as one line, exit 1
    done = taskledger(env, "sql", "SELECT * FROM no_such_table")
    assert done.returncode == 1 and "UNKNOWN_TABLE" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert worker.poll() is None
    assert sql_json(env, "SELECT count() AS n FROM task_events FINAL") == [{"n": expected}]

    # stopped: the discovery file goes, and sql opens the (now free) directory itself
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(60) == 0, log.read_text()[-4000:]
    assert not discovery_path(home).exists()
    assert sql_json(env, "SELECT count() FROM task_events") == [{"count()": expected}]


def test_the_endpoint_speaks_clickhouse_http_and_refuses_writes(owned: Any) -> None:
    home, env, expected, worker, log = owned
    url = endpoint_url(home)
    assert url is not None and url.startswith("http://127.0.0.1:")

    status, _, body = http(url + "/ping")
    assert (status, body) == (200, b"Ok.\n")
    # curl-style: GET with ?query= (TabSeparated by default), POST body with default_format
    status, headers, body = http(url + "/?query=" + urllib.parse.quote("SELECT count() FROM task_events FINAL"))
    assert status == 200 and body == f"{expected}\n".encode()
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    status, headers, body = http(
        url + "/?default_format=JSONEachRow", b"SELECT type, count() AS n FROM task_events FINAL GROUP BY type"
    )
    assert status == 200 and headers["X-ClickHouse-Format"] == "JSONEachRow"
    counts = {row["type"]: int(row["n"]) for row in map(json.loads, body.splitlines())}
    assert sum(counts.values()) == expected and counts["TaskAssigned"] == TASKS
    # server-side parameters
    status, _, body = http(
        url + "/?param_kind=TaskAssigned",
        b"SELECT count() FROM task_events FINAL WHERE type = {kind:String} FORMAT JSONCompact",
    )
    assert status == 200 and json.loads(body)["data"] == [[TASKS]]

    # writes and DDL: refused by the statement check (HTTP 403, READONLY), nothing changes
    for statement in (
        b"INSERT INTO task_events SELECT * FROM task_events",
        b"DROP TABLE task_events",
        b"SELECT 1; DROP TABLE task_events",
    ):
        status, headers, body = http(url + "/", statement)
        assert status == 403, body
        assert headers["X-ClickHouse-Exception-Code"] == "164"
        assert body.decode().startswith("Code: 164. DB::Exception: refused (invalid) statement: ")
        assert len(body.decode().strip().splitlines()) == 1
    # ... and behind the check the session itself is read-only: no table functions, no settings
    status, _, body = http(url + "/?query=" + urllib.parse.quote("SELECT * FROM file('/etc/hostname', 'LineAsString')"))
    assert status == 403 and b"READONLY" in body
    status, _, body = http(url + "/?query=" + urllib.parse.quote("SELECT 1 SETTINGS readonly = 0"))
    assert status == 403 and b"READONLY" in body

    # clickhouse-connect, the client taskledger sql uses (one code path with a ClickHouse server)
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    client = clickhouse_connect.get_client(host="127.0.0.1", port=int(url.rsplit(":", 1)[1]), tz_mode="aware")
    try:
        result = client.query("SELECT event_id, occurred_at, position FROM task_events FINAL ORDER BY position")
        assert len(result.result_rows) == expected
        first = result.result_rows[0]
        assert first[1].tzinfo is not None and first[2] == 1
        assert client.command("SELECT count() FROM task_status FINAL") == TASKS
        with pytest.raises(DatabaseError, match="READONLY"):
            client.command("TRUNCATE TABLE task_events")
    finally:
        client.close()
    assert sql_json(env, "SELECT count() AS n FROM task_events FINAL") == [{"n": expected}]
    assert worker.poll() is None


def test_a_stale_discovery_file_is_ignored(
    tmp_path: Path, signed: Callable[[bytes], tuple[str, dict[str, Any]]], pki: Any
) -> None:
    """A worker killed without cleaning up leaves the file behind: sql checks the pid and opens the store."""
    home = tmp_path / "home"
    home.mkdir()
    make_history(home, signed, pki)
    env = environment(home, pki)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    discovery_path(home).write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid, "chdb": str(home / "olap")}) + "\n"
    )
    assert taskledger(env, "projections", "migrate").returncode == 0
    assert sql_json(env, "SELECT count() AS n FROM task_events") == [{"n": 0}]
