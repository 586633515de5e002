"""ClickHouse access: one clickhouse-connect client for both an in-process chdb and a server.

``TASKLEDGER_CLICKHOUSE_URL`` says where the analytical store lives:

* ``chdb://<path>`` (default ``chdb://$TASKLEDGER_HOME/olap``): in-process ClickHouse (chdb) on a
  directory. Everything after ``chdb://`` is the path, so ``chdb:///srv/olap`` is absolute and
  ``chdb://./var/olap`` relative to the working directory; ``chdb://:memory:`` is a throw-away engine.
* ``http://[user[:password]@]host[:port][/database][?option=value...]`` or ``https://...``: a server.

Both give a clickhouse-connect ``Client`` (``query`` / ``insert`` / ``command``): clickhouse-connect 1.12
has a chdb backend (``get_client(interface="chdb", path=...)``, also reached with a ``chdb:///abs`` DSN;
its DSN form reads ``chdb://x/y`` as location ``x``, database ``y``, so the URL is mapped here instead).
The rest of taskledger only ever sees the client object.

chdb hosts ONE directory per process and locks it against other processes: while ``taskledger up`` owns
the directory, other processes cannot open it (``ClickHouseError`` says so), and inside one process every
client must use the same path (close them all before opening another).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from connectors.errors import ConnectorError
from projections.schema import MIGRATIONS, MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL, Migration

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from connectors.settings import Settings

ENV = "TASKLEDGER_CLICKHOUSE_URL"
DEFAULT_DIRECTORY = "olap"
MEMORY = ":memory:"


class ClickHouseError(ConnectorError):
    """The analytical store is misconfigured or cannot be opened; the message says what to do."""


class MigrationError(ClickHouseError):
    """The schema recorded in ``schema_migrations`` does not match ``projections.schema``."""


# -- the URL ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where the store is: a chdb directory (``path``) or a server (``host`` ...)."""

    url: str
    kind: str  # "chdb" | "http" | "https"
    path: str | None = None
    host: str | None = None
    port: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def redacted(self) -> str:
        """The URL without its password (for messages and logs)."""
        if self.password is None:
            return self.url
        parts = urlsplit(self.url)
        netloc = parts.netloc.rpartition("@")
        user = netloc[0].partition(":")[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


def default_url(home: str | os.PathLike[str]) -> str:
    """``chdb://<absolute home>/olap``."""
    return f"chdb://{Path(home).resolve() / DEFAULT_DIRECTORY}"


def clickhouse_url(settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The configured URL: ``settings.clickhouse_url`` (once Settings has it), else the environment
    variable, else ``chdb://$TASKLEDGER_HOME/olap``."""
    env = os.environ if environ is None else environ
    configured = getattr(settings, "clickhouse_url", None) if settings is not None else None
    url = configured or env.get(ENV)
    if url:
        return url
    home = settings.home if settings is not None else env.get("TASKLEDGER_HOME", "./var")
    return default_url(home)


def _bad(url: str, why: str) -> ClickHouseError:
    return ClickHouseError(
        f"{ENV}={url!r} is not a valid ClickHouse URL: {why}. Use chdb://<directory> (in-process, default "
        f"chdb://$TASKLEDGER_HOME/{DEFAULT_DIRECTORY}) or http(s)://[user[:password]@]host[:port][/database]"
    )


def parse_url(url: str) -> Target:
    """Check and split a ``TASKLEDGER_CLICKHOUSE_URL``; ``ClickHouseError`` naming the variable if malformed."""
    if not isinstance(url, str) or not url.strip():
        raise _bad(str(url), "it is empty")
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise _bad(url, "it has no scheme (chdb://, http:// or https://)")
    if scheme == "chdb":
        if not rest:
            raise _bad(url, "chdb:// needs a directory, e.g. chdb:///srv/taskledger/olap")
        if "?" in rest or "#" in rest:
            raise _bad(url, "a chdb URL takes no query string or fragment")
        if rest in (MEMORY, "memory"):
            return Target(url, "chdb", path=MEMORY)
        return Target(url, "chdb", path=os.path.abspath(os.path.expanduser(rest)))
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise _bad(url, str(error)) from None
        if not parts.hostname:
            raise _bad(url, "it names no host")
        if parts.fragment:
            raise _bad(url, "it has a #fragment")
        segments = [s for s in parts.path.split("/") if s]
        if len(segments) > 1:
            raise _bad(url, "the path may only name a database (/taskledger)")
        return Target(
            url,
            scheme,
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            database=unquote(segments[0]) if segments else None,
            options=tuple(parse_qsl(parts.query, keep_blank_values=True)),
        )
    raise _bad(url, f"unknown scheme {scheme!r}")


# -- the client ---------------------------------------------------------------------------------------------------
def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _chdb_lock_holder(path: str) -> bool:
    """True if another process holds the chdb/ClickHouse lock on ``path`` (``<path>/status``, flock)."""
    status = Path(path) / "status"
    if not status.exists():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def connect(url: str | None = None, *, settings: Settings | None = None, database: str | None = None) -> Client:
    """A clickhouse-connect client for ``url`` (default: the configured one). Instants come back as
    timezone-aware UTC datetimes. The caller closes it (``client.close()`` / ``contextlib.closing``)."""
    url = url or clickhouse_url(settings)
    target = parse_url(url)
    if not _module_available("clickhouse_connect"):
        raise ClickHouseError(
            f"{ENV}={target.redacted!r}: the clickhouse-connect package is not installed "
            "(pip install 'taskledger[stream]', or pip install clickhouse-connect)"
        )
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

    if target.kind == "chdb":
        return _connect_chdb(target, database, clickhouse_connect, DriverError)
    kwargs: dict[str, Any] = dict(target.options)
    try:
        return clickhouse_connect.get_client(
            interface=target.kind,
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password or "",
            database=database or target.database,
            tz_mode="aware",
            **kwargs,
        )
    except TypeError as error:
        raise ClickHouseError(f"{ENV}={target.redacted!r}: unsupported option in the query string: {error}") from None
    except DriverError as error:
        raise ClickHouseError(
            f"cannot reach the ClickHouse server at {ENV}={target.redacted!r}: {error}. Is it running, and are "
            "the host, port, user, password and database right?"
        ) from error


def _connect_chdb(target: Target, database: str | None, clickhouse_connect: Any, driver_error: type) -> Client:
    if not _module_available("chdb"):
        raise ClickHouseError(
            f"{ENV}={target.redacted!r} asks for in-process ClickHouse, but the chdb package is not installed: "
            "pip install 'taskledger[stream]' (or pip install chdb), or point "
            f"{ENV} at a server: http://host:8123/database"
        )
    path = target.path or MEMORY
    if path != MEMORY:
        try:
            Path(path).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ClickHouseError(f"{ENV}={target.redacted!r}: cannot create the directory {path}: {error}") from None
    try:
        return clickhouse_connect.get_client(interface="chdb", path=path, database=database, tz_mode="aware")
    except driver_error as error:
        text = str(error)
        if "already initialized with path" in text:
            why = (
                "this process already has another chdb directory open (chdb hosts one directory per process; "
                "close every client of the other one first)"
            )
        elif path != MEMORY and _chdb_lock_holder(path):
            why = (
                "another process owns this directory (chdb lets one process open it: while `taskledger up` "
                "runs, query through it, or use a ClickHouse server with http://...)"
            )
        else:
            why = text
        raise ClickHouseError(f"cannot open the chdb store {path} ({ENV}={target.redacted!r}): {why}") from error


# -- migrations ---------------------------------------------------------------------------------------------------
def applied_migrations(client: Client) -> dict[str, str]:
    """name -> checksum of every migration recorded in ``schema_migrations`` (created if missing)."""
    client.command(MIGRATIONS_TABLE_DDL)
    result = client.query(f"SELECT name, checksum FROM {MIGRATIONS_TABLE} FINAL ORDER BY name")
    return {str(name): str(checksum) for name, checksum in result.result_rows}


def pending_migrations(client: Client, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """The migrations ``migrate`` would apply, after checking the applied ones (``MigrationError``)."""
    applied = applied_migrations(client)
    known = {m.name for m in migrations}
    if len(known) != len(migrations):
        raise MigrationError("projections.schema lists a migration name twice")
    changed = [m for m in migrations if m.name in applied and applied[m.name] != m.checksum]
    if changed:
        detail = "; ".join(
            f"{m.name}: recorded checksum {applied[m.name][:12]}..., projections/schema.py now {m.checksum[:12]}..."
            for m in changed
        )
        raise MigrationError(
            f"applied migration(s) changed since they were applied ({detail}). An applied migration is frozen: "
            "restore its statements and add a new migration, or rebuild the store "
            "(taskledger projections rebuild)"
        )
    unknown = sorted(set(applied) - known)
    if unknown:
        raise MigrationError(
            f"the store has migration(s) this taskledger does not know: {', '.join(unknown)} "
            "(a newer version migrated it; upgrade taskledger)"
        )
    return [m for m in migrations if m.name not in applied]


def migrate(client: Client, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Apply the missing migrations in order, record each (name, checksum); return the names applied.
    Re-running applies none. A migration whose recorded checksum differs raises ``MigrationError``."""
    done = []
    for migration in pending_migrations(client, migrations):
        for statement in migration.statements:
            try:
                client.command(statement)
            except Exception as error:
                raise MigrationError(f"migration {migration.name} failed: {error}") from error
        client.insert(MIGRATIONS_TABLE, [[migration.name, migration.checksum]], column_names=["name", "checksum"])
        done.append(migration.name)
    return done


# -- rebuild: fill a fresh copy, then swap it in ------------------------------------------------------------------
REBUILD_SUFFIX = "__rebuild"


def fresh_copy(client: Client, table: str) -> str:
    """An empty table with exactly the live ``table``'s structure and engine (``CREATE TABLE .. AS``), so the
    migrations stay the one source of the schema. Returns its name."""
    fresh = table + REBUILD_SUFFIX
    client.command(f"DROP TABLE IF EXISTS {fresh}")
    client.command(f"CREATE TABLE {fresh} AS {table}")
    return fresh


def swap_in(client: Client, fresh: str, table: str) -> None:
    """Atomically exchange ``fresh`` and ``table`` (views follow the name), then drop the old data."""
    client.command(f"EXCHANGE TABLES {fresh} AND {table}")
    client.command(f"DROP TABLE IF EXISTS {fresh}")


def insert_columns(client: Client, table: str) -> list[str]:
    """The columns of ``table`` a writer must supply (no DEFAULT / MATERIALIZED / ALIAS), in table order."""
    result = client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = %(table)s "
        "AND default_kind = '' ORDER BY position",
        parameters={"table": table},
    )
    return [str(r[0]) for r in result.result_rows]
