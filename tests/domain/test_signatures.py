"""Signature bundles of Regular directives are verified with real X.509 cryptography."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from domain.errors import SignatureInvalid, ValidationError
from domain.signatures import (
    BUNDLE_FORMAT,
    SignerInfo,
    document_digest,
    load_trusted_roots,
    parse_bundle,
    verify_bundle,
)

NOW = datetime(2026, 4, 24, 8, 0, tzinfo=UTC)
DOCUMENT = b"Resolution 57-NQ/TW on breakthroughs in science, technology and innovation\n"
ORG = "Central Party Office"


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(**enabled: bool) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(enabled)
    return x509.KeyUsage(**flags)


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    key: object | None = None,
    ca: bool = False,
    path_length: int | None = None,
    basic_constraints: bool = True,
    key_usage: x509.KeyUsage | None = None,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=365),
) -> Issued:
    """A certificate for ``common_name``; self-signed when ``issuer`` is None."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.cert.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if key_usage is None:
        key_usage = (
            _key_usage(key_cert_sign=True, crl_sign=True)
            if ca
            else _key_usage(digital_signature=True, content_commitment=True)
        )
    builder = builder.add_extension(key_usage, critical=True)
    signing_key = issuer.key if issuer else key
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


def make_root(common_name: str = "Root CA") -> Issued:
    return issue(common_name, ca=True, not_after=NOW + timedelta(days=3650))


def sign(
    document: bytes,
    key: object,
    chain: list[Issued],
    *,
    algorithm: str | None = None,
) -> dict:
    """A bundle as a signer would produce it."""
    digest = bytes.fromhex(document_digest(document))
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = algorithm or "ecdsa-sha256"
        signature = key.sign(digest, ec.ECDSA(prehashed))
    elif (algorithm or "rsa-pss-sha256") == "rsa-pss-sha256":
        algorithm = "rsa-pss-sha256"
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(digest, pss, prehashed)
    else:
        signature = key.sign(digest, padding.PKCS1v15(), prehashed)
    return {
        "format": BUNDLE_FORMAT,
        "document_sha256": document_digest(document),
        "algorithm": algorithm,
        "signature": base64.b64encode(signature).decode("ascii"),
        "certificates": [link.pem for link in chain],
        "signed_at": NOW.isoformat(),
    }


@pytest.fixture(scope="module")
def root() -> Issued:
    return make_root()


@pytest.fixture(scope="module")
def signer(root: Issued) -> Issued:
    return issue("Nguyen Van A", issuer=root)


def refusal(excinfo: pytest.ExceptionInfo) -> tuple[str, str]:
    return excinfo.value.field, excinfo.value.rule


# --------------------------------------------------------------------------- accepted


def test_document_digest_is_the_lowercase_hex_sha256_of_the_bytes() -> None:
    assert document_digest(b"abc") == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_a_valid_ecdsa_signature_verifies_and_names_the_signer(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])

    info = verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert info == SignerInfo(
        subject="CN=Nguyen Van A,O=Central Party Office",
        issuer="CN=Root CA,O=Central Party Office",
        serial=format(signer.cert.serial_number, "x"),
        fingerprint_sha256=signer.cert.fingerprint(hashes.SHA256()).hex(),
        not_after=NOW + timedelta(days=365),
    )
    assert info.not_after.tzinfo is UTC


def test_a_bundle_read_from_json_text_verifies(root: Issued, signer: Issued) -> None:
    raw = json.dumps(sign(DOCUMENT, signer.key, [signer]), indent=2).encode("utf-8")

    info = verify_bundle(document_digest(DOCUMENT), parse_bundle(raw), [root.cert], NOW)

    assert info.subject == "CN=Nguyen Van A,O=Central Party Office"


def test_a_signer_under_an_intermediate_ca_verifies_when_the_chain_carries_it(
    root: Issued,
) -> None:
    intermediate = issue("Issuing CA", issuer=root, ca=True, path_length=0)
    leaf = issue("Tran Thi B", issuer=intermediate)

    info = verify_bundle(document_digest(DOCUMENT), sign(DOCUMENT, leaf.key, [leaf, intermediate]), [root.cert], NOW)

    assert info.subject == "CN=Tran Thi B,O=Central Party Office"
    assert info.issuer == "CN=Issuing CA,O=Central Party Office"


def test_a_chain_that_ends_with_the_trusted_root_itself_verifies(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer, root])

    info = verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert info.subject == "CN=Nguyen Van A,O=Central Party Office"


def test_the_right_root_is_found_among_several_trusted_roots(root: Issued, signer: Issued) -> None:
    other = make_root("Other Root CA")

    info = verify_bundle(
        document_digest(DOCUMENT),
        sign(DOCUMENT, signer.key, [signer]),
        [other.cert, root.cert],
        NOW,
    )

    assert info.issuer == "CN=Root CA,O=Central Party Office"


def test_an_rsa_pss_signer_verifies(root: Issued) -> None:
    rsa_signer = issue("RSA Signer", issuer=root, key=rsa.generate_private_key(65537, 2048))
    bundle = sign(DOCUMENT, rsa_signer.key, [rsa_signer], algorithm="rsa-pss-sha256")

    info = verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert bundle["algorithm"] == "rsa-pss-sha256"
    assert info.subject == "CN=RSA Signer,O=Central Party Office"


def test_an_rsa_pkcs1v15_signer_verifies(root: Issued) -> None:
    rsa_signer = issue("RSA Signer", issuer=root, key=rsa.generate_private_key(65537, 2048))
    bundle = sign(DOCUMENT, rsa_signer.key, [rsa_signer], algorithm="rsa-pkcs1v15-sha256")

    info = verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert info.subject == "CN=RSA Signer,O=Central Party Office"


def test_the_document_digest_is_compared_without_regard_to_hex_case(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])

    info = verify_bundle(document_digest(DOCUMENT).upper(), bundle, [root.cert], NOW)

    assert info.subject == "CN=Nguyen Van A,O=Central Party Office"


# --------------------------------------------------------------------------- refused


def test_a_document_changed_by_one_byte_is_refused_naming_the_document(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])
    tampered = bytes([DOCUMENT[0] ^ 0x01]) + DOCUMENT[1:]

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(tampered), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "document",
        "does not match the signed SHA-256 (file changed or wrong file)",
    )
    assert excinfo.value.to_dict()["error"] == "signature"


def test_a_bundle_whose_digest_was_rewritten_to_the_new_document_is_refused(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])
    tampered = DOCUMENT.replace(b"57", b"58")
    bundle["document_sha256"] = document_digest(tampered)

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(tampered), bundle, [root.cert], NOW)

    assert refusal(excinfo) == ("signature", "does not verify against the signer certificate")


def test_a_signer_whose_chain_leads_to_an_untrusted_root_is_refused(root: Issued) -> None:
    foreign_root = make_root("Foreign Root CA")
    foreign_signer = issue("Mallory", issuer=foreign_root)
    bundle = sign(DOCUMENT, foreign_signer.key, [foreign_signer])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates",
        (
            "chain does not lead to a trusted root: issuer 'CN=Foreign Root CA,O=Central Party "
            "Office' of 'CN=Mallory,O=Central Party Office' is not among the 1 configured "
            "trusted root(s)"
        ),
    )


def test_a_root_with_the_trusted_roots_name_but_another_key_is_refused(root: Issued) -> None:
    impostor_root = make_root("Root CA")  # same name as the trusted root, different key
    impostor = issue("Mallory", issuer=impostor_root)
    bundle = sign(DOCUMENT, impostor.key, [impostor, impostor_root])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates",
        (
            "chain does not lead to a trusted root: a trusted root is named "
            "'CN=Root CA,O=Central Party Office' but its key did not sign "
            "'CN=Root CA,O=Central Party Office'"
        ),
    )


def test_a_self_signed_signer_certificate_not_among_the_roots_is_refused(root: Issued) -> None:
    self_signed = issue("Self Signed")
    bundle = sign(DOCUMENT, self_signed.key, [self_signed])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert excinfo.value.field == "signature.certificates"
    assert excinfo.value.rule.startswith(
        "chain does not lead to a trusted root: issuer 'CN=Self Signed,O=Central Party Office'"
    )


def test_an_expired_signer_certificate_is_refused(root: Issued) -> None:
    expired = issue(
        "Expired Signer",
        issuer=root,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
    )
    bundle = sign(DOCUMENT, expired.key, [expired])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates[0]",
        (
            "certificate 'CN=Expired Signer,O=Central Party Office' expired at "
            "2026-04-23T08:00:00+00:00 (checked at 2026-04-24T08:00:00+00:00)"
        ),
    )


def test_a_signer_certificate_not_yet_valid_is_refused(root: Issued) -> None:
    future = issue("Future Signer", issuer=root, not_before=NOW + timedelta(hours=1))
    bundle = sign(DOCUMENT, future.key, [future])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates[0]",
        (
            "certificate 'CN=Future Signer,O=Central Party Office' is not yet valid at "
            "2026-04-24T08:00:00+00:00 (valid from 2026-04-24T09:00:00+00:00)"
        ),
    )


def test_an_expired_trusted_root_is_refused() -> None:
    old_root = issue("Old Root CA", ca=True, not_before=NOW - timedelta(days=800), not_after=NOW - timedelta(1))
    leaf = issue("Nguyen Van A", issuer=old_root)

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), sign(DOCUMENT, leaf.key, [leaf]), [old_root.cert], NOW)

    assert excinfo.value.field == "trusted_roots"
    assert excinfo.value.rule.startswith("certificate 'CN=Old Root CA,O=Central Party Office'")


def test_a_signature_made_with_another_key_than_the_certificates_is_refused(root: Issued, signer: Issued) -> None:
    other_key = ec.generate_private_key(ec.SECP256R1())
    bundle = sign(DOCUMENT, other_key, [signer])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == ("signature", "does not verify against the signer certificate")


def test_a_signer_certificate_issued_by_a_non_ca_is_refused(root: Issued, signer: Issued) -> None:
    under_leaf = issue("Sub Signer", issuer=signer)
    bundle = sign(DOCUMENT, under_leaf.key, [under_leaf, signer])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates[1]",
        (
            "issuer 'CN=Nguyen Van A,O=Central Party Office' is not a certification authority "
            "(basicConstraints CA=true missing)"
        ),
    )


def test_an_issuer_without_basic_constraints_is_refused(root: Issued) -> None:
    no_constraints = issue(
        "Unconstrained",
        issuer=root,
        basic_constraints=False,
        key_usage=_key_usage(key_cert_sign=True),
    )
    leaf = issue("Nguyen Van A", issuer=no_constraints)

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(
            document_digest(DOCUMENT),
            sign(DOCUMENT, leaf.key, [leaf, no_constraints]),
            [root.cert],
            NOW,
        )

    assert excinfo.value.field == "signature.certificates[1]"
    assert "(basicConstraints CA=true missing)" in excinfo.value.rule


def test_an_intermediate_below_a_path_length_zero_root_is_refused() -> None:
    strict_root = issue("Strict Root CA", ca=True, path_length=0)
    intermediate = issue("Issuing CA", issuer=strict_root, ca=True)
    leaf = issue("Nguyen Van A", issuer=intermediate)

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(
            document_digest(DOCUMENT),
            sign(DOCUMENT, leaf.key, [leaf, intermediate]),
            [strict_root.cert],
            NOW,
        )

    assert refusal(excinfo) == (
        "trusted_roots",
        (
            "issuer 'CN=Strict Root CA,O=Central Party Office' allows at most 0 intermediate "
            "CA(s) below it, the chain has 1"
        ),
    )


def test_a_signer_certificate_without_digital_signature_key_usage_is_refused(
    root: Issued,
) -> None:
    encipher_only = issue("Encryption Only", issuer=root, key_usage=_key_usage(key_agreement=True))
    bundle = sign(DOCUMENT, encipher_only.key, [encipher_only])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates[0]",
        ("signer certificate 'CN=Encryption Only,O=Central Party Office' keyUsage lacks digitalSignature"),
    )


def test_a_chain_given_out_of_order_is_refused(root: Issued) -> None:
    intermediate = issue("Issuing CA", issuer=root, ca=True)
    leaf = issue("Nguyen Van A", issuer=intermediate)
    bundle = sign(DOCUMENT, leaf.key, [intermediate, leaf])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates[0]",
        (
            "certificate 'CN=Issuing CA,O=Central Party Office' names issuer "
            "'CN=Root CA,O=Central Party Office', but the next certificate is "
            "'CN=Nguyen Van A,O=Central Party Office' (chain out of order or incomplete)"
        ),
    )


def test_a_chain_of_more_than_five_certificates_is_refused(root: Issued) -> None:
    chain = [root]
    for level in range(5):
        chain.insert(0, issue(f"CA {level}", issuer=chain[0], ca=True))
    leaf = issue("Deep Signer", issuer=chain[0])
    bundle = sign(DOCUMENT, leaf.key, [leaf, *chain[:-1]])  # six certificates, root left out

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.certificates",
        "has 6 certificates, at most 5 are allowed",
    )


def test_an_unsupported_algorithm_is_refused(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])
    bundle["algorithm"] = "dsa-sha1"

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.algorithm",
        ("'dsa-sha1' is not supported; use one of ecdsa-sha256, rsa-pss-sha256, rsa-pkcs1v15-sha256"),
    )


def test_an_rsa_algorithm_on_an_ec_signer_certificate_is_refused(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])
    bundle["algorithm"] = "rsa-pss-sha256"

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    assert refusal(excinfo) == (
        "signature.algorithm",
        (f"rsa-pss-sha256 needs an RSA signer key, the certificate holds {type(signer.cert.public_key()).__name__}"),
    )


def test_no_configured_trusted_root_refuses_every_signature(signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])

    with pytest.raises(SignatureInvalid) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [], NOW)

    assert refusal(excinfo) == (
        "trusted_roots",
        "none configured, so no signature can be trusted",
    )


def test_a_naive_verification_instant_is_refused(root: Issued, signer: Issued) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])

    with pytest.raises(ValidationError) as excinfo:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW.replace(tzinfo=None))

    assert refusal(excinfo) == ("at", "must be a timezone-aware datetime")


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON (Expecting value at line 1 column 1)"),
        (b"[1, 2]", "expected a JSON object, got list"),
        (b"\xff\xfe", "not UTF-8 text"),
        (
            b'{"format": "taskledger-signature/v1"}',
            "missing field(s) document_sha256, algorithm, signature, certificates, signed_at",
        ),
    ],
)
def test_text_that_is_not_a_bundle_is_refused(raw: bytes, why: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        parse_bundle(raw)

    assert refusal(excinfo) == ("signature", f"is not a taskledger signature bundle: {why}")


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("format", "pkcs7", "format is 'pkcs7', expected 'taskledger-signature/v1'"),
        ("document_sha256", "abc", "document_sha256 must be 64 hexadecimal characters"),
        ("signature", "***", "signature is not valid base64"),
        ("signature", "", "signature is empty"),
        ("certificates", [], "certificates must be a non-empty list of PEM strings"),
        ("certificates", ["hello"], "certificates[0] must hold exactly one PEM certificate"),
        (
            "certificates",
            ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
            "certificates[0] is not a readable X.509 certificate",
        ),
        ("signed_at", "yesterday", "signed_at 'yesterday' is not ISO 8601"),
        ("signed_at", "2026-04-24T08:00:00", "signed_at '2026-04-24T08:00:00' has no UTC offset"),
    ],
)
def test_a_malformed_bundle_is_refused_with_the_reason(
    root: Issued, signer: Issued, field: str, value: object, why: str
) -> None:
    bundle = sign(DOCUMENT, signer.key, [signer])
    bundle[field] = value

    with pytest.raises(SignatureInvalid) as parsed:
        parse_bundle(json.dumps(bundle))
    with pytest.raises(SignatureInvalid) as verified:
        verify_bundle(document_digest(DOCUMENT), bundle, [root.cert], NOW)

    expected = ("signature", f"is not a taskledger signature bundle: {why}")
    assert refusal(parsed) == expected
    assert refusal(verified) == expected


# --------------------------------------------------------------------------- trusted roots


def test_load_trusted_roots_reads_every_certificate_of_a_pem_bundle() -> None:
    first, second = make_root("Root One"), make_root("Root Two")

    roots = load_trusted_roots(f"{first.pem}{second.pem}".encode("ascii"))

    assert [r.subject.rfc4514_string() for r in roots] == [
        "CN=Root One,O=Central Party Office",
        "CN=Root Two,O=Central Party Office",
    ]


def test_load_trusted_roots_refuses_text_without_a_certificate() -> None:
    with pytest.raises(ValidationError) as excinfo:
        load_trusted_roots(b"# no roots here\n")

    assert refusal(excinfo) == ("trusted_roots", "contains no PEM certificate")


def test_a_self_signed_signer_certificate_pinned_among_the_roots_verifies(root: Issued) -> None:
    pinned = issue("Pinned Signer")

    info = verify_bundle(
        document_digest(DOCUMENT),
        sign(DOCUMENT, pinned.key, [pinned]),
        [root.cert, pinned.cert],
        NOW,
    )

    assert info.subject == "CN=Pinned Signer,O=Central Party Office"
    assert info.issuer == "CN=Pinned Signer,O=Central Party Office"
