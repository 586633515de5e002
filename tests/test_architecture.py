"""The domain is pure: it imports nothing of ours but the domain, and no I/O library.

Every .py under domain/ is parsed with ``ast`` (imports inside functions and ``TYPE_CHECKING``
blocks included, since they still couple the modules), without importing it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = ROOT / "domain"
OUR_PACKAGES = {"projections", "streams", "connectors", "bench", "tests"} | {
    p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()
}
FORBIDDEN_OURS = OUR_PACKAGES - {"domain"}
FORBIDDEN_IO = {
    "sqlite3",
    "psycopg",
    "psycopg2",
    "psycopg_pool",
    "kafka",
    "clickhouse_connect",
    "requests",
    "socket",
}


def domain_modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def imported_names(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of ``package``, relative ones resolved."""
    tree = ast.parse(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - (node.level - 1)] if node.level - 1 <= len(parts) else []
                name = ".".join([*base, node.module] if node.module else base) or "<above the root>"
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found.extend((node.lineno, f"{name}.{a.name}") for a in node.names if name in OUR_PACKAGES)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(source: str, label: str, package: str = "domain") -> list[str]:
    bad = []
    for line, name in imported_names(source, package):
        top = name.split(".")[0]
        if top in FORBIDDEN_OURS or name == "<above the root>":
            bad.append(f"{label}:{line} imports {name} (the domain imports only the domain)")
        elif top in FORBIDDEN_IO:
            bad.append(f"{label}:{line} imports {name} (no I/O library in the domain)")
    return bad


def file_violations(path: Path) -> list[str]:
    package = ".".join(path.relative_to(ROOT).parts[:-1])
    return violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)), package)


def test_the_domain_package_has_modules_to_check() -> None:
    names = {p.name for p in domain_modules()}
    assert {"application.py", "task.py", "directive.py", "clocks.py", "calendar.py"} <= names
    assert {"projections", "streams", "connectors"} <= FORBIDDEN_OURS


@pytest.mark.parametrize("path", domain_modules(), ids=lambda p: str(p.relative_to(DOMAIN)))
def test_a_domain_module_imports_nothing_of_ours_but_the_domain_and_no_io_library(
    path: Path,
) -> None:
    assert file_violations(path) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import connectors.eventstore", "imports connectors.eventstore"),
        ("from projections import tasks", "imports projections"),
        ("from ..streams import topics", "imports streams"),
        ("def f():\n    import sqlite3", "imports sqlite3"),
        ("from psycopg import sql", "imports psycopg"),
        ("import kafka.producer", "imports kafka.producer"),
        ("import clickhouse_connect", "imports clickhouse_connect"),
        ("import requests", "imports requests"),
        ("from socket import create_connection", "imports socket"),
        ("import importlib\nimportlib.import_module('connectors.pki')", "imports connectors.pki"),
    ],
)
def test_the_check_catches_a_forbidden_import(source: str, expected: str) -> None:
    # the checker itself is checked on the source of a would-be module of domain/
    found = violations(source, "domain/probe.py")

    assert any(expected in v for v in found), found


def test_the_check_allows_the_domain_and_third_party_libraries() -> None:
    source = "from domain.errors import DomainError\nfrom . import values\nimport eventsourcing\nimport holidays\n"

    assert violations(source, "domain/probe.py") == []
