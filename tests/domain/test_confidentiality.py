"""Confidentiality levels (SPEC 6) and signatures of Regular directives (SPEC 2, Art. 5.1)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.eventstore import persistence_env
from connectors.pki import init_dev_pki
from connectors.settings import Settings
from domain import commands as c
from domain.actors import Actor
from domain.application import TaskLedger
from domain.errors import ConfidentialityViolation, SignatureInvalid
from tests.conftest import (
    OFFICE,
    Backend,
    assign_command,
    directive_command,
    event_count,
    expect_refusal,
    new_cipher_key,
    sign_with,
)


@pytest.fixture
def app(ledger: TaskLedger) -> TaskLedger:
    return ledger


@pytest.fixture
def key() -> str:
    return new_cipher_key()


def classified(symbol: str = "99-NQ/TW", level: str = "confidential", **overrides: object) -> c.RegisterDirective:
    fields: dict[str, object] = {
        "title": "Secret-Title-XYZ",
        "signer": "Secret-Signer-XYZ",
        "summary": None,
    }
    fields.update(overrides)
    return directive_command(None, symbol, confidentiality=level, **fields)


# -- what may not be held at all -------------------------------------------------------------
def test_an_absolute_secret_directive_is_refused_and_nothing_is_written(app: TaskLedger, signed: Callable) -> None:
    expect_refusal(
        app,
        OFFICE,
        classified(level="absolute_secret"),
        ConfidentialityViolation,
        "confidentiality",
        "absolute_secret (Tuyệt mật) may not be held by this system at all",
    )
    # not even with a valid signature, nor in a store encrypted at rest
    sha, bundle = signed(b"absolute secret document")
    command = classified(level="absolute_secret", document_sha256=sha, signature=bundle)
    expect_refusal(app, OFFICE, command, ConfidentialityViolation, "confidentiality", "nothing was written")
    assert app.list_directives() == []


def test_an_absolute_secret_directive_is_refused_even_with_encryption(make_ledger: Callable, key: str) -> None:
    app = make_ledger(cipher_key=key)

    expect_refusal(
        app,
        OFFICE,
        classified(level="absolute_secret"),
        ConfidentialityViolation,
        "confidentiality",
        "may not be held",
    )


# -- signatures of Regular directives --------------------------------------------------------
def test_an_unsigned_regular_directive_is_refused(app: TaskLedger) -> None:
    expect_refusal(
        app,
        OFFICE,
        directive_command(None, "57-NQ/TW"),
        SignatureInvalid,
        "signature",
        "a regular directive must carry a digital signature",
    )


def test_a_regular_directive_whose_document_changed_after_signing_is_refused(app: TaskLedger, signed: Callable) -> None:
    _, bundle = signed(b"Resolution 57-NQ/TW, final text")
    tampered_sha, _ = signed(b"Resolution 57-NQ/TW, final text, with one more paragraph")

    expect_refusal(
        app,
        OFFICE,
        directive_command(None, "57-NQ/TW", document_sha256=tampered_sha, signature=bundle),
        SignatureInvalid,
        "document",
        "does not match the signed SHA-256",
    )


def test_a_regular_directive_signed_under_an_untrusted_root_is_refused(app: TaskLedger, tmp_path: Path) -> None:
    stranger = init_dev_pki(tmp_path / "stranger-pki", now=datetime(2026, 1, 1, tzinfo=UTC))
    sha, bundle = sign_with(stranger, b"Resolution 57-NQ/TW")

    expect_refusal(
        app,
        OFFICE,
        directive_command(None, "57-NQ/TW", document_sha256=sha, signature=bundle),
        SignatureInvalid,
        "signature.certificates",
        "chain does not lead to a trusted root",
    )


def test_a_properly_signed_regular_directive_is_registered_with_its_verified_signer(
    app: TaskLedger, signed: Callable
) -> None:
    before = event_count(app)
    sha, bundle = signed(b"Resolution 57-NQ/TW")

    result = app.execute(OFFICE, directive_command(None, "57-NQ/TW", document_sha256=sha, signature=bundle))

    assert (result.event, result.version, event_count(app)) == ("Registered", 1, before + 1)
    [view] = app.list_directives()
    assert view["document_sha256"] == sha
    assert view["signature_verified_by"]["subject"] == "CN=taskledger dev signer,O=taskledger dev"


# -- Confidential / Top Secret ---------------------------------------------------------------
@pytest.mark.parametrize("level", ["confidential", "top_secret"])
def test_a_classified_directive_needs_encryption_at_rest(app: TaskLedger, level: str) -> None:
    expect_refusal(
        app,
        OFFICE,
        classified(level=level),
        ConfidentialityViolation,
        "confidentiality",
        "accepted only with encryption at rest",
    )


def test_a_classified_directive_may_not_carry_a_summary(make_ledger: Callable, key: str) -> None:
    app = make_ledger(cipher_key=key)

    expect_refusal(
        app,
        OFFICE,
        classified(summary="what the resolution says"),
        ConfidentialityViolation,
        "summary",
        "a confidential record may not carry 'summary'",
    )


def test_a_task_of_a_classified_directive_may_not_carry_content(make_ledger: Callable, key: str) -> None:
    app = make_ledger(cipher_key=key)
    directive = app.execute(OFFICE, classified()).aggregate_id

    expect_refusal(
        app,
        OFFICE,
        assign_command(directive, content="build the secret thing"),
        ConfidentialityViolation,
        "content",
        "may not carry 'content'",
    )


def test_a_classified_directive_and_task_are_stored_encrypted(
    make_ledger: Callable, key: str, backend: Backend
) -> None:
    app = make_ledger(cipher_key=key)
    before = event_count(app)

    directive = app.execute(OFFICE, classified()).aggregate_id
    task = app.execute(OFFICE, assign_command(directive, content=None, assignee="HN-Secret-Unit")).aggregate_id
    app.execute(Actor.parse("assignee:HN-Secret-Unit:binh"), c.ReceiveTask(task_id=task))

    assert event_count(app) == before + 3
    view = app.task_view(task)
    assert (view["confidentiality"], view["content"], view["lifecycle"]) == (
        "confidential",
        None,
        "received",
    )
    [d] = app.list_directives()
    assert (d["title"], d["signer"], d["summary"]) == (
        "Secret-Title-XYZ",
        "Secret-Signer-XYZ",
        None,
    )
    states = backend.raw_states()
    assert len(states) == before + 3
    for plaintext in (b"Secret-Title-XYZ", b"Secret-Signer-XYZ", b"HN-Secret-Unit"):
        assert not any(plaintext in state for state in states), plaintext


def test_a_regular_store_without_a_key_holds_plaintext(app: TaskLedger, register: Callable, backend: Backend) -> None:
    # the counterpart of the test above: the raw check does see plaintext when there is some
    register(app, "57-NQ/TW", title="Regular-Title-XYZ")

    assert any(b"Regular-Title-XYZ" in state for state in backend.raw_states())


def test_a_directive_registered_with_a_key_is_read_back_by_a_new_ledger_with_the_key(
    make_ledger: Callable, key: str
) -> None:
    directive = make_ledger(cipher_key=key).execute(OFFICE, classified()).aggregate_id

    again = make_ledger(cipher_key=key)

    assert again.get_directive(directive).title == "Secret-Title-XYZ"


def test_the_connector_cipher_settings_open_a_ledger(
    backend: Backend, clock: Callable, tmp_path: Path, key: str
) -> None:
    """TASKLEDGER_CIPHER_KEY, wired by connectors.eventstore.persistence_env, must give a working ledger."""
    wiring = persistence_env(Settings(home=tmp_path / "home", database_url=None, cipher_key=key))
    env = {**backend.env, **{k: v for k, v in wiring.items() if k.startswith("CIPHER_")}}

    app = TaskLedger(env=env, clock=clock)
    try:
        result = app.execute(OFFICE, classified())
        assert (result.event, event_count(app)) == ("Registered", 2)
        assert not any(b"Secret-Title-XYZ" in state for state in backend.raw_states())
    finally:
        app.close()
