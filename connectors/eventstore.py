"""Event-store wiring: settings -> eventsourcing environment -> TaskLedger application."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

from connectors.settings import Settings, make_clock
from domain.application import TaskLedger
from domain.errors import ValidationError


def persistence_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for the configured store (SQLite file by default)."""
    env: dict[str, str] = {}
    if settings.database_url:
        url = urlparse(settings.database_url)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValidationError("TASKLEDGER_DATABASE_URL", "must be a postgresql://user@host:port/db URL")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=url.path.lstrip("/") or "postgres",
            POSTGRES_HOST=url.hostname or "127.0.0.1",
            POSTGRES_PORT=str(url.port or 5432),
            POSTGRES_USER=unquote(url.username or "postgres"),
            POSTGRES_PASSWORD=unquote(url.password or ""),
        )
        if settings.postgres_schema:
            env["POSTGRES_SCHEMA"] = settings.postgres_schema
    elif settings.eventsourcing_module:
        pass  # PERSISTENCE_MODULE, SQLITE_DBNAME, POSTGRES_* are read by eventsourcing itself
    else:
        settings.home.mkdir(parents=True, exist_ok=True)
        env.update(PERSISTENCE_MODULE="eventsourcing.sqlite", SQLITE_DBNAME=str(settings.sqlite_path))
    if settings.cipher_key:
        env.update(CIPHER_TOPIC="eventsourcing.cryptography:AESCipher", CIPHER_KEY=settings.cipher_key)
    return env


def trusted_roots(settings: Settings) -> tuple[Any, ...]:
    from connectors.pki import read_trusted_roots

    paths = [p for p in settings.trusted_root_paths() if p.exists()]
    return read_trusted_roots(paths) if paths else ()


def open_ledger(settings: Settings | None = None, clock: Callable[[], datetime] | None = None) -> TaskLedger:
    settings = settings or Settings()
    return TaskLedger(
        env=persistence_env(settings),
        clock=clock or make_clock(settings.clock),
        trusted_roots=trusted_roots(settings),
        calendar_overrides=settings.overrides(),
    )


def events_table(app: TaskLedger) -> tuple[str, str]:
    """The stored-events table as a quoted, schema-qualified SQL name, and its position column."""
    recorder: Any = app.recorder
    table = recorder.events_table_name
    if "sqlite" in type(recorder).__module__:
        return f'"{table}"', "rowid"
    schema = getattr(recorder.datastore, "schema", "") or ""
    qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
    return qualified, "notification_id"


def query(app: TaskLedger, sql: str) -> list[Any]:
    """Run a read-only statement on the event store's own connection pool."""
    with app.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(sql)
        return list(cursor.fetchall())


def count_events(app: TaskLedger) -> dict[str, int]:
    """Stored events by aggregate kind, counted in the database (not by replaying)."""
    table, _ = events_table(app)
    rows = query(app, f"SELECT topic, COUNT(*) AS n FROM {table} GROUP BY topic")
    counts = {"directives": 0, "tasks": 0, "events": 0, "calendar_changes": 0}
    for row in rows:
        topic, n = (row["topic"], row["n"]) if isinstance(row, dict) else (row[0], row[1])
        counts["events"] += n
        if topic.endswith("Directive.Registered"):
            counts["directives"] += n
        elif topic.endswith("Task.Assigned"):
            counts["tasks"] += n
        elif "WorkingCalendar" in topic:
            counts["calendar_changes"] += n
    return counts
