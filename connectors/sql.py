"""``taskledger sql``: one read-only statement against the analytical store.

Only a single ``SELECT`` / ``WITH`` / ``SHOW`` / ``DESCRIBE`` (``DESC``) / ``EXPLAIN`` statement is accepted
(leading comments and parentheses are skipped, one trailing ``;`` is allowed); anything else, several
statements, or ``INTO OUTFILE`` is refused with ``ValidationError("statement", ...)`` before reaching
ClickHouse. (No per-query ``readonly`` setting: on chdb clickhouse-connect applies it with SET and a failed
statement can leave the shared session read-only.)

Where the statement runs (``connect_reader``): a ClickHouse server URL directly; a chdb directory through
the read-only endpoint of the process that owns it (``connectors.olap_server``, found through
``$TASKLEDGER_HOME/olap-endpoint.json``) while a worker runs, else by opening the directory. Either way the
client is clickhouse-connect and ``run_sql`` is the same.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any
from uuid import UUID

from domain.errors import ValidationError

if TYPE_CHECKING:
    from connectors.settings import Settings

READ_ONLY = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
_WORD = re.compile(r"[A-Za-z_]+")


def _code(statement: str) -> str:
    """The statement with comments removed and every quoted literal / identifier replaced by ``_``: only
    keywords and punctuation outside quotes survive (to find the first keyword and stray ``;``)."""
    out: list[str] = []
    i, n = 0, len(statement)
    while i < n:
        ch = statement[i]
        if statement.startswith("--", i) or ch == "#":
            end = statement.find("\n", i)
            i = n if end < 0 else end + 1
            out.append(" ")
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            if end < 0:
                raise ValidationError("statement", "has an unterminated /* comment")
            i = end + 2
            out.append(" ")
        elif ch in "'\"`":
            j = i + 1
            while j < n:
                if statement[j] == "\\":
                    j += 2
                    continue
                if statement[j] == ch:
                    if j + 1 < n and statement[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise ValidationError("statement", f"has an unterminated {ch}quoted{ch} literal")
            i = j + 1
            out.append(" _ ")
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def check_read_only(statement: str) -> str:
    """The statement (stripped, without a trailing ``;``) if it is one read-only statement, else
    ``ValidationError`` naming ``statement``."""
    if not isinstance(statement, str) or not statement.strip():
        raise ValidationError("statement", "is empty: give one SELECT, WITH, SHOW, DESCRIBE or EXPLAIN statement")
    code = _code(statement).strip()
    trailing = code.endswith(";")
    if trailing:
        code = code[:-1].rstrip()
    if ";" in code:
        raise ValidationError("statement", "must be a single statement (found ';' between statements)")
    first = _WORD.search(code.lstrip("( \t\r\n"))
    keyword = first.group(0).upper() if first else ""
    if keyword not in READ_ONLY:
        shown = keyword or code[:20]
        raise ValidationError(
            "statement",
            f"is read-only: {shown} is refused; only SELECT, WITH, SHOW, DESCRIBE or EXPLAIN statements run here",
        )
    if re.search(r"\bINTO\s+OUTFILE\b", code, re.IGNORECASE):
        raise ValidationError("statement", "is read-only: INTO OUTFILE is refused")
    text = statement.strip()
    return text[:-1].rstrip() if trailing and text.endswith(";") else text


def owner_endpoint(settings: Settings) -> Any:
    """A client of the read-only endpoint served by the process that owns the configured chdb directory
    (``$TASKLEDGER_HOME/olap-endpoint.json``, see ``connectors.olap_server``), or None when no live owner
    serves it (no file, another directory, a dead process, no answer)."""
    import json

    from connectors.clickhouse import MEMORY, ClickHouseError, clickhouse_url, connect, parse_url
    from connectors.olap_server import discovery_path

    target = parse_url(clickhouse_url(settings))
    if target.kind != "chdb" or target.path in (None, MEMORY):
        return None
    try:
        found = json.loads(discovery_path(settings.home).read_text())
        url, pid, path = str(found["url"]), int(found["pid"]), str(found["chdb"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if os.path.realpath(path) != os.path.realpath(target.path):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # stale: the owner died without removing the file
    except PermissionError:
        pass  # alive, another user's
    try:
        return connect(url)
    except ClickHouseError:
        return None


def connect_reader(settings: Settings) -> Any:
    """The client ``taskledger sql`` (and any reader) uses: a ClickHouse server URL directly; for a chdb
    directory, the owner's endpoint while a worker (``taskledger up`` / ``worker``) owns it, else the
    directory itself (``ClickHouseError`` if it is locked and nobody serves it)."""
    from connectors.clickhouse import clickhouse_url, connect

    return owner_endpoint(settings) or connect(clickhouse_url(settings))


def run_sql(client: Any, statement: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement; return (column names, rows as tuples)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

    from connectors.clickhouse import ClickHouseError

    text = check_read_only(statement)
    try:
        result = client.query(text)
    except DriverError as error:  # one clear line instead of the driver's traceback
        reason = str(error).splitlines()[0].split(" (version")[0].split(" (for url")[0]
        reason = reason.split("server response: ", 1)[-1]  # the HTTP driver's prefix (server or endpoint)
        hint = ""
        if "UNKNOWN_TABLE" in reason or "Unknown table" in reason:
            hint = "; run 'taskledger projections migrate' (and 'projections rebuild') first"
        raise ClickHouseError(f"the statement failed: {reason}{hint}") from error
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def jsonable(value: Any) -> Any:
    """A value of a result row as JSON (instants ISO 8601, UUIDs text, decimals as strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


def as_objects(columns: list[str], rows: list[tuple]) -> list[dict[str, Any]]:
    """Rows as JSON-ready objects (``taskledger sql --json``)."""
    return [{c: jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
