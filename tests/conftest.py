"""Shared fixtures: event-store backends, a controllable clock, a dev PKI and a TaskLedger factory.

Backends come from ``TASKLEDGER_TEST_BACKENDS`` (default ``sqlite``; CI sets ``sqlite,postgres``):
every test that uses ``backend`` (directly or through ``make_ledger``) runs once per backend, with
ids ``[sqlite]`` / ``[postgres]``. A requested PostgreSQL that cannot be reached FAILS the tests.

Plain helpers and constants (``local``, ``OFFICE``, ...) are importable: ``from tests.conftest import ...``.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from connectors.eventstore import count_events, persistence_env
from connectors.pki import DevPki, init_dev_pki, read_trusted_roots, sign_document
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor
from domain.application import TaskLedger
from domain.errors import DomainError
from domain.signatures import document_digest

VN = ZoneInfo("Asia/Ho_Chi_Minh")  # UTC+07:00, no daylight saving time
START = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)  # = Friday 2026-04-24 15:00 local

OFFICE = Actor.parse("central_office:VPTW:an")
ASSIGNEE = Actor.parse("assignee:HN:binh")
APPROVER = Actor.parse("approver:HN:chi")
MONITOR = Actor.parse("monitor:BKT:dung")
INSPECTOR = Actor.parse("inspector:UBKTTW:em")

BACKENDS = ("sqlite", "postgres")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    """An instant given in Viet Nam local time."""
    return datetime(y, m, d, hh, mm, tzinfo=VN)


def requested_backends() -> list[str]:
    raw = os.environ.get("TASKLEDGER_TEST_BACKENDS", "sqlite")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown or not names:
        raise pytest.UsageError(f"TASKLEDGER_TEST_BACKENDS={raw!r}: use a list of {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        names = requested_backends()
        metafunc.parametrize("backend", names, ids=names, indirect=True)


# -- backends --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    """One fresh, empty event store: the eventsourcing environment and how to reach its table."""

    name: str
    env: dict[str, str]
    sqlite_path: Path | None = None
    database_url: str | None = None
    schema: str | None = None

    def raw_states(self) -> list[bytes]:
        """The ``state`` column of every stored event, read straight from the database."""
        if self.name == "sqlite":
            import sqlite3

            with sqlite3.connect(str(self.sqlite_path)) as conn:
                rows = conn.execute("SELECT state FROM stored_events").fetchall()
        else:
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                query = sql.SQL("SELECT state FROM {}.taskledger_events").format(sql.Identifier(self.schema))
                rows = conn.execute(query).fetchall()
        return [bytes(r[0]) for r in rows]


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    name = request.param
    if name == "sqlite":
        path = tmp_path / "events.sqlite"
        yield Backend(
            "sqlite",
            {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)},
            sqlite_path=path,
        )
        return
    import psycopg
    from psycopg import sql

    url = os.environ.get("TASKLEDGER_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    schema = f"tl_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL was requested (TASKLEDGER_TEST_BACKENDS) but {url} is unreachable: {error}")
    try:
        env = persistence_env(Settings(database_url=url, postgres_schema=schema))
        yield Backend("postgres", env, database_url=url, schema=schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def event_count(app: TaskLedger) -> int:
    """Events stored, counted in the database of the app.

    Meant to be ``count_events(app)["events"]``; but ``count_events`` names the table without its
    PostgreSQL schema (see test_idempotency::test_count_events_counts_the_backend_store), so the
    count is made here with the schema-qualified name, through the app's own datastore."""
    recorder = app.recorder
    table = recorder.events_table_name  # type: ignore[attr-defined]
    schema = getattr(recorder.datastore, "schema", None)  # type: ignore[attr-defined]
    name = f'"{schema}"."{table}"' if schema else f'"{table}"'
    with recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
        cursor.execute(f"SELECT COUNT(*) AS n FROM {name}")
        row = cursor.fetchone()
    return int(row["n"] if isinstance(row, dict) else row[0])


def events_via_connector(app: TaskLedger) -> int:
    return count_events(app)["events"]


# -- clock -----------------------------------------------------------------------------------
class Clock:
    """The application's 'now': a UTC instant the test sets or advances."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, instant: datetime) -> datetime:
        self.now = instant.astimezone(UTC)
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now = self.now + timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


# -- PKI -------------------------------------------------------------------------------------
SIGNED_AT = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return init_dev_pki(tmp_path / "pki", now=datetime(2026, 1, 1, tzinfo=UTC))


def sign_with(pki: DevPki, document: bytes) -> tuple[str, dict[str, Any]]:
    bundle = sign_document(
        document,
        key_pem=pki.signer_key.read_bytes(),
        cert_chain_pem=pki.signer_cert.read_bytes(),
        now=SIGNED_AT,
    )
    return document_digest(document), bundle


@pytest.fixture
def signed(pki: DevPki) -> Callable[[bytes], tuple[str, dict[str, Any]]]:
    """document bytes -> (document_sha256, signature bundle) signed by the trusted dev PKI."""
    return lambda document: sign_with(pki, document)


# -- the application -------------------------------------------------------------------------
# eventsourcing's AES-GCM cipher on the ``cryptography`` package (a declared dependency), as the
# connector wires it (checked by test_confidentiality::test_the_connector_cipher_settings_open_a_ledger).
CIPHER_TOPIC = "eventsourcing.cryptography:AESCipher"


def new_cipher_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


@pytest.fixture
def make_ledger(backend: Backend, clock: Clock, pki: DevPki) -> Iterator[Callable[..., TaskLedger]]:
    opened: list[TaskLedger] = []
    roots = read_trusted_roots([pki.trusted_roots])

    def _make(cipher_key: str | None = None) -> TaskLedger:
        env = dict(backend.env)
        if cipher_key:
            env.update(CIPHER_TOPIC=CIPHER_TOPIC, CIPHER_KEY=cipher_key)
        app = TaskLedger(env=env, clock=clock, trusted_roots=roots)
        opened.append(app)
        return app

    yield _make
    for app in opened:
        app.close()


@pytest.fixture
def ledger(make_ledger: Callable[..., TaskLedger]) -> TaskLedger:
    return make_ledger()


# -- use-case helpers ------------------------------------------------------------------------
def directive_command(
    signed: Callable[[bytes], tuple[str, dict[str, Any]]] | None,
    symbol: str = "57-NQ/TW",
    **overrides: Any,
) -> c.RegisterDirective:
    """A Regular directive issued Wed 2026-04-22, signed by the dev PKI unless overridden."""
    fields: dict[str, Any] = {
        "symbol": symbol,
        "title": f"Resolution {symbol}",
        "summary": "Breakthroughs in science, technology and innovation",
        "issued_on": date(2026, 4, 22),
        "signer": "To Lam",
        "issuing_body": "Politburo",
        "presenting_body": "Central Party Office",
        "confidentiality": "regular",
    }
    if signed is not None and overrides.get("confidentiality", "regular") == "regular":
        sha, bundle = signed(f"document of {symbol}".encode())
        fields.update(document_sha256=sha, signature=bundle)
    fields.update(overrides)
    return c.RegisterDirective(**fields)


def assign_command(directive_id: UUID, **overrides: Any) -> c.AssignTask:
    fields: dict[str, Any] = {
        "directive_id": directive_id,
        "content": "Draft the provincial digital-transformation plan",
        "assignee": "HN",
        "monitor": "BKT",
        "deadline": date(2026, 5, 15),
    }
    fields.update(overrides)
    return c.AssignTask(**fields)


@pytest.fixture
def register(signed: Callable[[bytes], tuple[str, dict[str, Any]]]) -> Callable[..., UUID]:
    """register(app, symbol=..., **fields) -> directive id of a signed Regular directive."""

    def _register(app: TaskLedger, symbol: str = "57-NQ/TW", **overrides: Any) -> UUID:
        return app.execute(OFFICE, directive_command(signed, symbol, **overrides)).aggregate_id

    return _register


@pytest.fixture
def assign(register: Callable[..., UUID]) -> Callable[..., UUID]:
    """assign(app, directive_id=None, **fields) -> task id (registers 57-NQ/TW when no directive is given)."""

    def _assign(app: TaskLedger, directive_id: UUID | None = None, **overrides: Any) -> UUID:
        if directive_id is None:
            directive_id = register(app)
        return app.execute(OFFICE, assign_command(directive_id, **overrides)).aggregate_id

    return _assign


def expect_refusal(
    app: TaskLedger,
    actor: Actor,
    command: c.Command,
    error: type[DomainError],
    field: str,
    fragment: str,
    task_id: UUID | None = None,
) -> DomainError:
    """The command is refused with ``error`` naming ``field`` and a rule containing ``fragment``;
    nothing was appended and the task (if given) kept its version."""
    before = event_count(app)
    version = app.get_task(task_id).version if task_id else None
    with pytest.raises(error) as caught:
        app.execute(actor, command)
    assert caught.value.field == field, caught.value
    assert fragment in caught.value.rule, caught.value.rule
    assert event_count(app) == before
    if task_id is not None:
        assert app.get_task(task_id).version == version
    return caught.value


def types_of(app: TaskLedger, aggregate_id: UUID) -> list[str]:
    return [e["type"] for e in app.history(aggregate_id)]
