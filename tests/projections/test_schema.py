"""The schema as data: frozen, idempotent migrations; columns that match the builders; no free text."""

from __future__ import annotations

import re

from domain.values import CONTENT_FIELDS, Status
from projections import schema
from projections.rows import ALERT_KINDS

IDEMPOTENT = re.compile(
    r"^\s*(CREATE TABLE IF NOT EXISTS|CREATE OR REPLACE VIEW|CREATE DATABASE IF NOT EXISTS|"
    r"ALTER TABLE \w+ (ADD|DROP|MODIFY) COLUMN IF (NOT )?EXISTS|DROP (TABLE|VIEW) IF EXISTS)\b",
    re.IGNORECASE,
)


def test_migrations_are_named_in_order_and_unique() -> None:
    names = [m.name for m in schema.MIGRATIONS]

    assert names == sorted(names)
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+", n) for n in names)


def test_every_statement_is_idempotent() -> None:
    for migration in schema.MIGRATIONS:
        for statement in migration.statements:
            assert IDEMPOTENT.match(statement), (migration.name, statement[:80])
    assert IDEMPOTENT.match(schema.MIGRATIONS_TABLE_DDL)


def test_checksums_ignore_formatting_but_not_content() -> None:
    first = schema.MIGRATIONS[0]
    reformatted = schema.Migration(first.name, tuple("\n\n  " + s.replace(" ", "   ") for s in first.statements))
    changed = schema.Migration(first.name, (first.statements[0].replace("UInt64", "UInt32"), *first.statements[1:]))

    assert reformatted.checksum == first.checksum
    assert changed.checksum != first.checksum
    assert len({m.checksum for m in schema.MIGRATIONS}) == len(schema.MIGRATIONS)


def test_the_frozen_status_list_is_the_domains() -> None:
    # a new Status needs a NEW migration with new slice views, never an edit of 0005
    assert schema.STATUS_NAMES == tuple(s.value for s in Status)


def test_no_table_has_a_free_text_column() -> None:
    ddl = " ".join(s for m in schema.MIGRATIONS for s in m.statements if "CREATE TABLE" in s)
    columns = set(re.findall(r"^\s+(\w+) [A-Z]", ddl, re.MULTILINE))
    forbidden = set(CONTENT_FIELDS) | {"reason", "title", "signer", "authority", "payload", "text", "comment"}

    assert columns & forbidden == set()
    assert set(schema.EVENT_COLUMNS) | set(schema.STATUS_COLUMNS) | set(schema.ALERT_COLUMNS) <= columns


def test_every_view_is_created_by_a_migration() -> None:
    created = re.findall(r"CREATE OR REPLACE VIEW (\w+)", " ".join(s for m in schema.MIGRATIONS for s in m.statements))

    assert sorted(created) == sorted(schema.VIEWS)


def test_alert_kinds_are_counted_by_the_daily_view() -> None:
    for kind in ALERT_KINDS:
        assert f"countIf(kind = '{kind}') AS {kind}" in schema.AGENCY_DAILY_ALERTS
