"""A read-only ClickHouse-HTTP endpoint served by the process that owns the chdb directory.

chdb (in-process ClickHouse) lets ONE process open a directory. While the stream worker owns it, analysts
read through the worker: it serves ``http://127.0.0.1:<port>`` (``TASKLEDGER_OLAP_PORT``, default 0 = an
ephemeral port) speaking enough of the ClickHouse HTTP interface for ``clickhouse-connect`` (so
``taskledger sql`` keeps its one code path: ``connect("http://127.0.0.1:PORT")``), curl and other HTTP
clients:

* ``POST /`` with the statement as the body, or ``GET /?query=...`` (both may be combined: query
  parameter first, then the body, like ClickHouse); ``GET /`` and ``GET /ping`` answer ``Ok.``.
* The output format is the statement's trailing ``FORMAT <name>`` (clickhouse-connect appends
  ``FORMAT Native``), else the ``default_format`` parameter, else ``TabSeparated``; the body is chdb's
  output verbatim (no compression), with ``X-ClickHouse-Format`` / ``X-ClickHouse-Timezone`` headers.
* ``param_<name>=<value>`` fills ``{name:Type}`` placeholders. Other URL parameters (session id, query id,
  settings) are accepted and ignored; ``compress=1`` (ClickHouse's own block compression) is refused.
* Only one read-only statement passes (``connectors.sql.check_read_only``); anything else gets HTTP 403 with
  ``X-ClickHouse-Exception-Code: 164`` (READONLY) and a one-line reason naming the ``statement`` field.
  Behind that check the statements run on a dedicated chdb session with ``readonly = 1`` (no writes, no
  setting changes, no table functions such as ``file()`` / ``url()``) and ``max_execution_time``
  (``QUERY_TIMEOUT_S``): the worker's own session and writers are untouched.

Every chdb call runs through the owner's ``submit(fn)`` (the worker's single chdb thread), so analyst
queries are serialised with the worker's batches. Listening on 127.0.0.1 only; no authentication (the
data is the non-confidential projection, read-only).

Discovery: the owner writes ``$TASKLEDGER_HOME/olap-endpoint.json`` (``{"url", "pid", "chdb"}``) once the
endpoint answers and removes it on shutdown; ``connectors.sql.connect_reader`` uses it when its configured
chdb directory is the one served and the endpoint answers, else it opens the directory itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

from domain.errors import ValidationError

log = logging.getLogger("taskledger.olap")

DISCOVERY_FILE = "olap-endpoint.json"
QUERY_TIMEOUT_S = 60
DEFAULT_FORMAT = "TabSeparated"
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code:\s*(\d+)")
_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
    "csvwithnames": "text/csv; charset=UTF-8",
}

T = TypeVar("T")
Submit = Callable[[Callable[[], Any]], Any]


def discovery_path(home: str | os.PathLike[str]) -> Path:
    return Path(home) / DISCOVERY_FILE


def open_reader(path: str) -> Any:
    """A dedicated read-only chdb session on ``path`` (call it in the owner's chdb thread)."""
    from connectors.clickhouse import connect

    client = connect(f"chdb://{path}")
    try:
        client.command(f"SET max_execution_time = {QUERY_TIMEOUT_S}")
        client.command("SET readonly = 1")  # last: after it no setting can change on this session
    except Exception:
        client.close()
        raise
    return client


def _content_type(fmt: str) -> str:
    name = fmt.lower()
    if name in _CONTENT_TYPES:
        return _CONTENT_TYPES[name]
    if name.startswith("json"):
        return "application/json; charset=UTF-8" if name in ("json", "jsoncompact") else "text/plain; charset=UTF-8"
    if name.startswith(("tabseparated", "tsv", "pretty", "markdown", "vertical")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


class _Answer(Exception):
    """An error response: HTTP status, ClickHouse error code and a one-line message."""

    def __init__(self, status: int, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.name = status, code, name

    def body(self) -> bytes:
        return f"Code: {self.code}. DB::Exception: {self} ({self.name})\n".encode()


class OlapServer:
    """The endpoint. ``submit(fn)`` runs ``fn`` in the owner's chdb thread and returns its result."""

    def __init__(self, chdb_path: str, submit: Submit, host: str = "127.0.0.1", port: int = 0) -> None:
        self.chdb_path = chdb_path
        self.submit = submit
        self.reader: Any = None
        self.timezone = "UTC"
        self.version = ""
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None
        self.discovery: Path | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- lifecycle ------------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the read-only session (through ``submit``) and start serving in a daemon thread."""

        def start() -> tuple[str, str]:
            if self.reader is None:
                self.reader = open_reader(self.chdb_path)
            text = self.reader.raw_query("SELECT version(), timezone()", fmt="TabSeparated").decode()
            version, _, zone = text.strip().partition("\t")
            return version, zone

        self.version, self.timezone = self.submit(start)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="taskledger-olap", daemon=True)
        self._thread.start()

    def publish(self, home: str | os.PathLike[str]) -> Path:
        """Write the discovery file (atomically) under ``home``."""
        path = discovery_path(home)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"url": self.url, "pid": os.getpid(), "chdb": self.chdb_path}) + "\n")
        os.replace(tmp, path)
        self.discovery = path
        return path

    def close(self) -> None:
        """Remove the discovery file, stop serving, close the session (through ``submit``)."""
        if self.discovery is not None:
            try:
                current = json.loads(self.discovery.read_text())
                if current.get("pid") == os.getpid():
                    self.discovery.unlink()
            except (OSError, ValueError):
                pass
            self.discovery = None
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self.httpd.server_close()
        reader, self.reader = self.reader, None
        if reader is not None:
            try:
                self.submit(reader.close)
            except Exception as error:  # noqa: BLE001 - closing: report and go on
                log.warning("olap: closing the read-only session failed: %s", error)

    # -- one request ------------------------------------------------------------------------------------
    def answer(self, query: str, params: dict[str, str]) -> tuple[str, bytes]:
        """(format, body) for one request, or ``_Answer`` with the error."""
        from connectors.sql import check_read_only

        if params.get("compress") not in (None, "", "0"):
            raise _Answer(400, 1, "BAD_ARGUMENTS", "compress=1 is not supported by this endpoint; leave it off")
        database = params.get("database")
        if database not in (None, "", "default"):
            raise _Answer(404, 81, "UNKNOWN_DATABASE", f"only the default database is served, not {database}")
        try:
            text = check_read_only(query)
        except ValidationError as error:
            raise _Answer(403, 164, "READONLY", f"refused ({error.kind}) {error.field}: {error.rule}") from None
        match = _TRAILING_FORMAT.search(text)
        fmt = match.group(1) if match else (params.get("default_format") or DEFAULT_FORMAT)
        if not match:
            text = f"{text}\nFORMAT {fmt}"
        bind = {k[len("param_") :]: v for k, v in params.items() if k.startswith("param_")}

        def run() -> bytes:
            if self.reader is None:
                self.reader = open_reader(self.chdb_path)
            return self.reader.raw_query(text, parameters=bind or None)

        try:
            return fmt, self.submit(run)
        except _Answer:
            raise
        except Exception as error:  # noqa: BLE001 - the engine's error goes back to the client
            message = " ".join(str(error).split())
            found = _CODE.search(message)
            code = int(found.group(1)) if found else 1000
            inner = message.split("DB::Exception: ", 1)[-1]
            name_match = re.search(r"\(([A-Z_]+)\)\s*(\(version [^)]*\))?\.?\s*$", inner)
            name = name_match.group(1) if name_match else "STD_EXCEPTION"
            inner = inner[: name_match.start()].rstrip(" .") if name_match else inner
            status = 404 if name in ("UNKNOWN_TABLE", "UNKNOWN_DATABASE") else 500
            if name in ("SYNTAX_ERROR", "UNKNOWN_IDENTIFIER", "UNKNOWN_FUNCTION", "READONLY"):
                status = 400 if name != "READONLY" else 403
            raise _Answer(status, code, name, inner) from None


def _handler(server: OlapServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "taskledger-olap"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler API
            log.debug("olap: %s " + format, self.client_address[0], *args)

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler API
            self._send(200, b"", {"Content-Type": "text/plain; charset=UTF-8"})

        def do_GET(self) -> None:  # noqa: N802
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            self._serve()

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
            if parts.path.rstrip("/") == "/ping" or (parts.path in ("", "/") and not body and "query" not in params):
                self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                return
            try:
                if parts.path not in ("", "/"):
                    raise _Answer(404, 1000, "BAD_ARGUMENTS", f"unknown path {parts.path}: query at /")
                if self.headers.get("Content-Encoding") not in (None, "", "identity"):
                    raise _Answer(400, 1000, "BAD_ARGUMENTS", "compressed request bodies are not supported")
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise _Answer(400, 1000, "BAD_ARGUMENTS", "the request body is not UTF-8") from None
                query = "\n".join(part for part in (params.get("query", ""), text) if part)
                fmt, out = server.answer(query, params)
            except _Answer as error:
                log.info("olap: %s from %s: %s", error.name, self.client_address[0], error)
                headers = {
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(error.code),
                }
                self._send(error.status, error.body(), headers)
                return
            self._send(
                200,
                out,
                {
                    "Content-Type": _content_type(fmt),
                    "X-ClickHouse-Format": fmt,
                    "X-ClickHouse-Timezone": server.timezone,
                    "X-ClickHouse-Server-Display-Name": "taskledger",
                },
            )

    return Handler


def serve_owner(settings: Any, submit: Submit) -> OlapServer | None:
    """For the process that owns the chdb store (call after the store is open and migrated): serve the
    endpoint on 127.0.0.1:``settings.olap_port`` and publish the discovery file; None (nothing served) for
    a ClickHouse server URL or ``chdb://:memory:``, or if the port cannot be bound (logged). ``submit(fn)``
    runs ``fn`` where the owner serialises its chdb use (its chdb thread, or under its lock); the caller
    ``close()``s the server before closing its own client."""
    from connectors.clickhouse import MEMORY, clickhouse_url, parse_url

    target = parse_url(clickhouse_url(settings))
    if target.kind != "chdb" or target.path in (None, MEMORY):
        return None
    try:
        server = OlapServer(str(target.path), submit, port=settings.olap_port)
        server.open()
    except Exception as error:  # noqa: BLE001 - the owner keeps working; only the endpoint is missing
        log.error("olap: cannot serve the read-only endpoint on port %s: %s", settings.olap_port, error)
        return None
    server.publish(settings.home)
    log.info(
        "olap: read-only ClickHouse HTTP endpoint on %s (taskledger sql uses it; curl '%s/?query=SELECT+1')",
        server.url,
        server.url,
    )
    return server
