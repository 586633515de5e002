"""Fixtures of the projection tests: one recorded history (built through the domain) per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.projections.support import History, record_history


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    built = record_history(tmp_path_factory.mktemp("history"))
    yield built
    built.app.close()
