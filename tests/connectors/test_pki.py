"""The development PKI: files on disk, signing files, reading trusted roots."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from connectors.pki import DevPki, init_dev_pki, read_trusted_roots, sign_document, sign_file
from domain.errors import SignatureInvalid, ValidationError
from domain.signatures import BUNDLE_FORMAT, document_digest, parse_bundle, verify_bundle

NOW = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
DOCUMENT = b"Conclusion 123-KL/TW\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def pki(tmp_path: Path) -> DevPki:
    return init_dev_pki(tmp_path / "pki", now=NOW)


def test_init_dev_pki_writes_the_ca_the_signer_and_the_trusted_roots(tmp_path: Path) -> None:
    pki = init_dev_pki(tmp_path / "pki", now=NOW)

    directory = tmp_path / "pki"
    assert pki == DevPki(
        directory=directory,
        ca_cert=directory / "ca.pem",
        ca_key=directory / "ca.key",
        signer_cert=directory / "signer.pem",
        signer_key=directory / "signer.key",
        trusted_roots=directory / "trusted_roots.pem",
    )
    assert sorted(p.name for p in directory.iterdir()) == [
        "ca.key",
        "ca.pem",
        "signer.key",
        "signer.pem",
        "trusted_roots.pem",
    ]
    assert pki.trusted_roots.read_bytes() == pki.ca_cert.read_bytes()


def test_the_private_keys_are_readable_by_the_owner_only(pki: DevPki) -> None:
    assert mode(pki.ca_key) == 0o600
    assert mode(pki.signer_key) == 0o600


def test_the_dev_ca_is_a_ten_year_ec_certification_authority(pki: DevPki) -> None:
    ca = certificate(pki.ca_cert)

    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca.subject.rfc4514_string() == "CN=taskledger dev root CA,O=taskledger dev"
    assert ca.issuer == ca.subject
    assert constraints.critical and constraints.value.ca is True
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert ca.not_valid_before_utc == NOW
    assert ca.not_valid_after_utc == datetime(2036, 4, 24, 8, 0, tzinfo=UTC)


def test_the_dev_signer_is_a_five_year_non_ca_signing_certificate(pki: DevPki) -> None:
    signer = certificate(pki.signer_cert)

    constraints = signer.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert signer.subject.rfc4514_string() == "CN=taskledger dev signer,O=taskledger dev"
    assert signer.issuer.rfc4514_string() == "CN=taskledger dev root CA,O=taskledger dev"
    assert constraints.ca is False
    assert (usage.digital_signature, usage.content_commitment, usage.key_cert_sign) == (
        True,
        True,
        False,
    )
    assert signer.not_valid_after_utc == datetime(2031, 4, 24, 8, 0, tzinfo=UTC)
    signer.verify_directly_issued_by(certificate(pki.ca_cert))


def test_init_dev_pki_uses_the_given_organisation_and_signer_name(tmp_path: Path) -> None:
    pki = init_dev_pki(tmp_path / "pki", organisation="Central Party Office", signer_name="Nguyen Van A", now=NOW)

    assert certificate(pki.signer_cert).subject.rfc4514_string() == ("CN=Nguyen Van A,O=Central Party Office")
    assert certificate(pki.ca_cert).subject.rfc4514_string() == (
        "CN=Central Party Office root CA,O=Central Party Office"
    )


def test_init_dev_pki_a_second_time_keeps_the_existing_files(pki: DevPki) -> None:
    before = {p.name: p.read_bytes() for p in pki.directory.iterdir()}

    again = init_dev_pki(pki.directory, organisation="something else")

    assert again == pki
    assert {p.name: p.read_bytes() for p in pki.directory.iterdir()} == before


def test_init_dev_pki_with_force_replaces_the_keys(pki: DevPki) -> None:
    old_key = pki.ca_key.read_bytes()

    init_dev_pki(pki.directory, now=NOW, force=True)

    assert pki.ca_key.read_bytes() != old_key
    assert mode(pki.ca_key) == 0o600
    assert mode(pki.signer_key) == 0o600


def test_init_dev_pki_refuses_a_directory_with_a_partial_pki(pki: DevPki) -> None:
    pki.signer_key.unlink()

    with pytest.raises(ValidationError) as excinfo:
        init_dev_pki(pki.directory, now=NOW)

    assert excinfo.value.field == "pki.directory"
    assert excinfo.value.rule == (
        f"{pki.directory} holds an incomplete dev PKI (missing signer.key); re-run with force to replace it"
    )


def test_sign_file_writes_a_sig_file_that_verifies_against_the_trusted_roots(pki: DevPki, tmp_path: Path) -> None:
    document = tmp_path / "57-NQ-TW.pdf"
    document.write_bytes(DOCUMENT)

    written = sign_file(document, key_path=pki.signer_key, cert_path=pki.signer_cert)

    assert written == tmp_path / "57-NQ-TW.pdf.sig"
    bundle = parse_bundle(written.read_bytes())
    assert bundle["format"] == BUNDLE_FORMAT
    assert bundle["algorithm"] == "ecdsa-sha256"
    assert bundle["document_sha256"] == document_digest(DOCUMENT)
    assert written.read_text().startswith('{\n  "format": "taskledger-signature/v1",')
    info = verify_bundle(
        document_digest(document.read_bytes()),
        bundle,
        read_trusted_roots([pki.trusted_roots]),
        LATER,
    )
    assert info.subject == "CN=taskledger dev signer,O=taskledger dev"
    assert info.issuer == "CN=taskledger dev root CA,O=taskledger dev"


def test_sign_file_writes_to_the_given_output_path(pki: DevPki, tmp_path: Path) -> None:
    document = tmp_path / "doc.txt"
    document.write_bytes(DOCUMENT)

    written = sign_file(document, key_path=pki.signer_key, cert_path=pki.signer_cert, out=tmp_path / "x.json")

    assert written == tmp_path / "x.json"
    assert json.loads(written.read_text())["document_sha256"] == document_digest(DOCUMENT)


def test_a_signature_from_another_dev_pki_does_not_verify_against_this_ones_roots(pki: DevPki, tmp_path: Path) -> None:
    other = init_dev_pki(tmp_path / "other", now=NOW)
    document = tmp_path / "doc.txt"
    document.write_bytes(DOCUMENT)
    bundle = parse_bundle(sign_file(document, key_path=pki.signer_key, cert_path=pki.signer_cert).read_bytes())

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, read_trusted_roots([other.trusted_roots]), LATER)

    assert excinfo.value.field == "signature.certificates"
    assert excinfo.value.rule == (
        "chain does not lead to a trusted root: a trusted root is named "
        "'CN=taskledger dev root CA,O=taskledger dev' but its key did not sign "
        "'CN=taskledger dev signer,O=taskledger dev'"
    )


def test_sign_document_refuses_a_key_that_does_not_match_the_certificate(pki: DevPki) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    with pytest.raises(ValidationError) as excinfo:
        sign_document(DOCUMENT, key_pem=stranger, cert_chain_pem=pki.signer_cert.read_bytes())

    assert (excinfo.value.field, excinfo.value.rule) == (
        "signer_key",
        "does not match the signer certificate 'CN=taskledger dev signer,O=taskledger dev'",
    )


def test_sign_document_records_the_signing_instant(pki: DevPki) -> None:
    bundle = sign_document(
        DOCUMENT,
        key_pem=pki.signer_key.read_bytes(),
        cert_chain_pem=pki.signer_cert.read_bytes(),
        now=NOW + timedelta(microseconds=500),
    )

    assert bundle["signed_at"] == "2026-04-24T08:00:00+00:00"


def test_read_trusted_roots_names_the_missing_file_and_the_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"

    with pytest.raises(ValidationError) as excinfo:
        read_trusted_roots([missing])

    assert (excinfo.value.field, excinfo.value.rule) == (
        "trusted_roots",
        (f"file {missing} does not exist; run 'taskledger pki init' or set TASKLEDGER_TRUSTED_ROOTS"),
    )


def test_read_trusted_roots_joins_several_files(pki: DevPki, tmp_path: Path) -> None:
    other = init_dev_pki(tmp_path / "other", organisation="Other Office", now=NOW)

    roots = read_trusted_roots([pki.trusted_roots, other.trusted_roots, pki.ca_cert])

    assert [r.subject.rfc4514_string() for r in roots] == [
        "CN=taskledger dev root CA,O=taskledger dev",
        "CN=Other Office root CA,O=Other Office",
    ]


def test_read_trusted_roots_refuses_a_file_without_certificates(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("")

    with pytest.raises(ValidationError) as excinfo:
        read_trusted_roots([empty])

    assert (excinfo.value.field, excinfo.value.rule) == (
        "trusted_roots",
        f"file {empty} contains no PEM certificate",
    )
