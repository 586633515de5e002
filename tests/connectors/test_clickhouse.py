"""connectors.clickhouse: TASKLEDGER_CLICKHOUSE_URL, one clickhouse-connect client for chdb and servers,
versioned idempotent migrations, and the rebuild swap. Real chdb: one engine for the module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import clickhouse as ch
from connectors.clickhouse import ENV, ClickHouseError, MigrationError, Target, migrate, parse_url
from connectors.settings import Settings
from projections import schema
from tests.projections.support import fresh_database, open_engine

ROOT = Path(__file__).resolve().parents[2]


# -- URL ------------------------------------------------------------------------------------------------------------
def test_chdb_urls_map_to_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert parse_url("chdb:///srv/taskledger/olap") == Target(
        "chdb:///srv/taskledger/olap", "chdb", path="/srv/taskledger/olap"
    )
    assert parse_url("chdb://./var/olap").path == str(tmp_path / "var" / "olap")
    assert parse_url("chdb://var/olap").path == str(tmp_path / "var" / "olap")  # not location 'var', database 'olap'
    assert parse_url("chdb://:memory:").path == ":memory:"


def test_http_urls_are_split() -> None:
    target = parse_url("https://analyst:s%40cret@ch.example.org:8443/taskledger?connect_timeout=5")

    assert (target.kind, target.host, target.port, target.username, target.password, target.database) == (
        "https",
        "ch.example.org",
        8443,
        "analyst",
        "s@cret",
        "taskledger",
    )
    assert target.options == (("connect_timeout", "5"),)
    assert "s%40cret" not in target.redacted and "s@cret" not in target.redacted
    assert target.redacted == "https://analyst:***@ch.example.org:8443/taskledger?connect_timeout=5"
    assert parse_url("http://localhost").port is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("", "empty"),
        ("/var/olap", "no scheme"),
        ("clickhouse://host:9000", "unknown scheme 'clickhouse'"),
        ("http://host:port/db", "Port could not be cast"),
        ("http:///db", "names no host"),
        ("http://host/db/extra", "only name a database"),
        ("chdb://", "needs a directory"),
        ("chdb:///var/olap?x=1", "no query string"),
    ],
)
def test_a_malformed_url_is_refused_naming_the_variable(url: str, why: str) -> None:
    with pytest.raises(ClickHouseError) as caught:
        parse_url(url)

    assert ENV in str(caught.value)
    assert why in str(caught.value)


def test_the_default_url_is_chdb_under_home(tmp_path: Path) -> None:
    assert ch.clickhouse_url(environ={"TASKLEDGER_HOME": str(tmp_path)}) == f"chdb://{tmp_path}/olap"
    assert ch.clickhouse_url(Settings(home=tmp_path), environ={}) == f"chdb://{tmp_path}/olap"
    assert ch.clickhouse_url(environ={ENV: "http://h:8123/x", "TASKLEDGER_HOME": "/x"}) == "http://h:8123/x"
    relative = ch.clickhouse_url(environ={"TASKLEDGER_HOME": "var"})
    assert relative == f"chdb://{Path('var').resolve()}/olap" and parse_url(relative).path == str(
        Path("var").resolve() / "olap"
    )


def without_package(package: str, statement: str) -> str:
    """Run ``statement`` in a fresh interpreter in which ``package`` cannot be imported (``sys.modules[name] =
    None``: Python's own way to block an import) and return what it printed: the error's text, or "no error"."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{package!r}] = None
        from connectors import clickhouse as ch
        try:
            {statement}
        except ch.ClickHouseError as error:
            print(error)
        else:
            print("no error")
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_missing_chdb_is_a_clear_error(tmp_path: Path) -> None:
    said = without_package("chdb", f"ch.connect('chdb://{tmp_path}/olap')")

    assert ENV in said and "chdb package is not installed" in said
    assert "http://" in said


def test_missing_clickhouse_connect_is_a_clear_error() -> None:
    said = without_package("clickhouse_connect", "ch.connect('http://localhost:8123')")

    assert "clickhouse-connect package is not installed" in said


def test_an_unreachable_server_is_a_clear_error_without_the_password() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there

    with pytest.raises(ClickHouseError) as caught:
        ch.connect(f"http://default:topsecret@127.0.0.1:{port}/taskledger?connect_timeout=2")

    assert ENV in str(caught.value) and "cannot reach" in str(caught.value)
    assert "topsecret" not in str(caught.value)


# -- one chdb engine for the rest of the module ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("olap")


@pytest.fixture(scope="module")
def engine(engine_dir: Path) -> Iterator[Any]:
    yield from open_engine(engine_dir)


@pytest.fixture
def client(engine: Any) -> Iterator[Any]:
    yield from fresh_database(engine)


def test_the_client_is_clickhouse_connect_on_chdb(engine: Any, engine_dir: Path) -> None:
    from clickhouse_connect.driver.client import Client

    assert isinstance(engine, Client)
    assert engine.query("SELECT 1 + 1").result_rows == [(2,)]
    assert (engine_dir / "status").is_file()  # the engine runs on that directory (and holds its lock file)


def test_migrate_applies_everything_once(client: Any) -> None:
    names = [m.name for m in schema.MIGRATIONS]

    assert migrate(client) == names
    assert migrate(client) == []
    recorded = client.query("SELECT name, checksum FROM schema_migrations FINAL ORDER BY name").result_rows
    assert recorded == [(m.name, m.checksum) for m in schema.MIGRATIONS]
    tables = {
        r[0] for r in client.query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows
    }
    assert tables == {*schema.TABLES, *schema.VIEWS, schema.MIGRATIONS_TABLE}


def test_insert_columns_are_the_builders_columns(client: Any) -> None:
    migrate(client)

    for table, columns in schema.COLUMNS.items():
        assert tuple(ch.insert_columns(client, table)) == columns


def test_engines_and_keys(client: Any) -> None:
    migrate(client)

    got = dict(
        client.query(
            "SELECT name, concat(engine_full) FROM system.tables WHERE database = currentDatabase() "
            "AND engine LIKE '%MergeTree'"
        ).result_rows
    )
    assert (
        "ReplacingMergeTree PARTITION BY toYYYYMM(recorded_at) ORDER BY (aggregate_id, version)" in got["task_events"]
    )
    assert got["task_status"].startswith("ReplacingMergeTree(row_version) ORDER BY task_id")
    assert got["task_alerts"].startswith("ReplacingMergeTree(first_raised) ORDER BY (task_id, clock, kind, due_at)")


def test_a_new_migration_is_applied_alone(client: Any) -> None:
    migrate(client)
    extra = schema.Migration(
        "0099_probe", ("CREATE TABLE IF NOT EXISTS probe (a UInt8) ENGINE = MergeTree ORDER BY a",)
    )

    assert migrate(client, (*schema.MIGRATIONS, extra)) == ["0099_probe"]
    assert migrate(client, (*schema.MIGRATIONS, extra)) == []


def test_an_interrupted_migration_is_simply_applied_again(client: Any) -> None:
    migrate(client, schema.MIGRATIONS[:1])
    client.command(schema.MIGRATIONS[1].statements[0])  # half of 0002 ran, then the process died

    assert migrate(client) == [m.name for m in schema.MIGRATIONS[1:]]


def test_a_changed_applied_migration_is_refused(client: Any) -> None:
    migrate(client)
    first = schema.MIGRATIONS[0]
    edited = schema.Migration(
        first.name, (first.statements[0].replace("actor_user String", "actor_user Nullable(String)"),)
    )

    with pytest.raises(MigrationError) as caught:
        migrate(client, (edited, *schema.MIGRATIONS[1:]))

    message = str(caught.value)
    assert "0001_task_events" in message and first.checksum[:12] in message and edited.checksum[:12] in message
    assert "add a new migration" in message


def test_a_store_migrated_by_a_newer_version_is_refused(client: Any) -> None:
    migrate(client)

    with pytest.raises(MigrationError, match="does not know: 0005_status_slices"):
        migrate(client, schema.MIGRATIONS[:4])


def test_a_failing_statement_names_its_migration(client: Any) -> None:
    broken = schema.Migration("0001_broken", ("CREATE TABLE IF NOT EXISTS x (a NoSuchType) ENGINE = Memory",))

    with pytest.raises(MigrationError, match="migration 0001_broken failed"):
        migrate(client, (broken,))
    assert ch.applied_migrations(client) == {}


def test_rebuild_fills_a_fresh_copy_and_swaps_it_in(client: Any) -> None:
    migrate(client)
    client.insert("task_alerts", [[_alert_values(1)]][0], column_names=schema.ALERT_COLUMNS)

    fresh = ch.fresh_copy(client, "task_alerts")
    client.insert(fresh, [_alert_values(2), _alert_values(3)], column_names=schema.ALERT_COLUMNS)
    assert client.query("SELECT count() FROM task_alerts_once").result_rows == [(1,)]
    ch.swap_in(client, fresh, "task_alerts")

    assert client.query("SELECT count() FROM task_alerts_once").result_rows == [(2,)]  # the view follows the name
    assert fresh not in {r[0] for r in client.query("SHOW TABLES").result_rows}
    assert migrate(client) == []
    engine_of = client.query(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'task_alerts'"
    )
    assert engine_of.result_rows[0][0].startswith("ReplacingMergeTree(first_raised)")


def _alert_values(n: int) -> list[Any]:
    from datetime import UTC, datetime

    moment = datetime(2026, 6, n, tzinfo=UTC)
    return [
        f"00000000-0000-0000-0000-{n:012d}",
        f"00000000-0000-0000-0000-{n:012d}",
        "deadline",
        "overdue",
        moment,
        moment,
        None,
        "HN",
        "BKT",
        "regular",
        "key",
        1,
    ]


# -- one directory, one process ----------------------------------------------------------------------------------------
def test_another_process_cannot_open_the_directory_and_is_told_why(engine: Any, engine_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        from connectors.clickhouse import ClickHouseError, connect
        try:
            connect({f"chdb://{engine_dir}"!r})
        except ClickHouseError as error:
            print(error)
            raise SystemExit(3)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)

    assert done.returncode == 3, done.stderr
    assert "another process owns this directory" in done.stdout
    assert ENV in done.stdout


def test_this_process_cannot_open_a_second_directory(engine: Any, tmp_path: Path) -> None:
    with pytest.raises(ClickHouseError, match="already has another chdb directory open"):
        ch.connect(f"chdb://{tmp_path}/other")
