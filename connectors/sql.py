"""``taskledger sql``: one read-only statement against the analytical store.

Only a single ``SELECT`` / ``WITH`` / ``SHOW`` / ``DESCRIBE`` (``DESC``) / ``EXPLAIN`` statement is accepted
(leading comments and parentheses are skipped, one trailing ``;`` is allowed); anything else, several
statements, or ``INTO OUTFILE`` is refused with ``ValidationError("statement", ...)`` before reaching
ClickHouse. (No per-query ``readonly`` setting: on chdb clickhouse-connect applies it with SET and a failed
statement can leave the shared session read-only.)
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID

from domain.errors import ValidationError

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


def run_sql(client: Any, statement: str) -> tuple[list[str], list[tuple]]:
    """Run one read-only statement; return (column names, rows as tuples)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError as DriverError

    from connectors.clickhouse import ClickHouseError

    text = check_read_only(statement)
    try:
        result = client.query(text)
    except DriverError as error:  # one clear line instead of the driver's traceback
        reason = str(error).splitlines()[0].split(" (version")[0]
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
