"""Digital signatures of directive documents (SPEC section 2, Art. 5.1).

A Regular directive carries a *signature bundle*: a JSON object holding the
SHA-256 of the document, a signature over that digest and the signer's X.509
certificate chain. Verification is real cryptography: the chain must lead to a
configured trusted root, every certificate must be valid at the checked
instant, and the signature must verify under the leaf certificate's public key.

Pure: no file or network I/O. Callers pass bytes and certificate objects.

Bundle (``BUNDLE_FORMAT``)::

    {
      "format": "taskledger-signature/v1",
      "document_sha256": "<64 hex>",
      "algorithm": "ecdsa-sha256" | "rsa-pss-sha256" | "rsa-pkcs1v15-sha256",
      "signature": "<base64>",
      "certificates": ["<leaf PEM>", "<intermediate PEM>", ...],
      "signed_at": "<ISO 8601 with offset>"
    }

The signature is over the 32-byte SHA-256 digest of the document, made with a
prehashed SHA-256 (``Prehashed(hashes.SHA256())``). ``signed_at`` is the
signer's claim and is not trusted; validity is checked at the caller's ``at``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding

from domain.errors import SignatureInvalid, ValidationError

BUNDLE_FORMAT = "taskledger-signature/v1"

ALGORITHM_ECDSA_SHA256 = "ecdsa-sha256"
ALGORITHM_RSA_PSS_SHA256 = "rsa-pss-sha256"
ALGORITHM_RSA_PKCS1V15_SHA256 = "rsa-pkcs1v15-sha256"
SUPPORTED_ALGORITHMS = (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_PSS_SHA256,
    ALGORITHM_RSA_PKCS1V15_SHA256,
)

MAX_CHAIN_LENGTH = 5
"""At most this many certificates in a bundle (leaf plus intermediates)."""

_REQUIRED_FIELDS = (
    "format",
    "document_sha256",
    "algorithm",
    "signature",
    "certificates",
    "signed_at",
)
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@dataclass(frozen=True, slots=True)
class SignerInfo:
    """Who signed: taken from the verified leaf certificate."""

    subject: str  # RFC 4514 string of the leaf subject
    issuer: str  # RFC 4514 string of the leaf issuer
    serial: str  # lowercase hex, no prefix
    fingerprint_sha256: str  # lowercase hex SHA-256 of the leaf certificate (DER)
    not_after: datetime  # aware UTC

    def to_dict(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "fingerprint_sha256": self.fingerprint_sha256,
            "not_after": self.not_after.isoformat(),
        }


def document_digest(data: bytes) -> str:
    """Lowercase hex SHA-256 of the document bytes."""
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- bundle form


def _malformed(why: str) -> SignatureInvalid:
    return SignatureInvalid("signature", f"is not a taskledger signature bundle: {why}")


def _check_bundle_form(bundle: Any) -> None:
    """Raise ``SignatureInvalid('signature', ...)`` unless ``bundle`` has the v1 form."""
    if not isinstance(bundle, Mapping):
        raise _malformed(f"expected a JSON object, got {type(bundle).__name__}")
    missing = [name for name in _REQUIRED_FIELDS if name not in bundle]
    if missing:
        raise _malformed(f"missing field(s) {', '.join(missing)}")
    if bundle["format"] != BUNDLE_FORMAT:
        raise _malformed(f"format is {bundle['format']!r}, expected {BUNDLE_FORMAT!r}")
    digest = bundle["document_sha256"]
    if not isinstance(digest, str) or not _SHA256_HEX.match(digest):
        raise _malformed("document_sha256 must be 64 hexadecimal characters")
    if not isinstance(bundle["algorithm"], str) or not bundle["algorithm"]:
        raise _malformed("algorithm must be a non-empty string")
    signature = bundle["signature"]
    if not isinstance(signature, str):
        raise _malformed("signature must be a base64 string")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("signature is not valid base64") from None
    if not raw_signature:
        raise _malformed("signature is empty")
    certificates = bundle["certificates"]
    if not isinstance(certificates, list) or not certificates:
        raise _malformed("certificates must be a non-empty list of PEM strings")
    for index, pem in enumerate(certificates):
        if not isinstance(pem, str) or len(_PEM_CERT.findall(pem)) != 1:
            raise _malformed(f"certificates[{index}] must hold exactly one PEM certificate")
        try:
            x509.load_pem_x509_certificate(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise _malformed(f"certificates[{index}] is not a readable X.509 certificate") from None
    signed_at = bundle["signed_at"]
    if not isinstance(signed_at, str):
        raise _malformed("signed_at must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(signed_at)
    except ValueError:
        raise _malformed(f"signed_at {signed_at!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise _malformed(f"signed_at {signed_at!r} has no UTC offset")


def parse_bundle(raw: bytes | str) -> dict:
    """Parse a JSON signature bundle and check its form (not its validity)."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("not UTF-8 text") from None
    if not isinstance(raw, str):
        raise _malformed(f"expected JSON text, got {type(raw).__name__}")
    try:
        bundle = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _malformed(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    _check_bundle_form(bundle)
    return bundle


# --------------------------------------------------------------------------- trusted roots


def load_trusted_roots(pem_bytes: bytes) -> tuple[x509.Certificate, ...]:
    """Read one or several PEM certificates. No certificate -> ``ValidationError``."""
    if isinstance(pem_bytes, str):
        pem_bytes = pem_bytes.encode("ascii", errors="replace")
    if b"-----BEGIN CERTIFICATE-----" not in pem_bytes:
        raise ValidationError("trusted_roots", "contains no PEM certificate")
    try:
        certificates = x509.load_pem_x509_certificates(pem_bytes)
    except ValueError as exc:
        raise ValidationError("trusted_roots", f"is not a readable list of PEM certificates ({exc})") from None
    unique: dict[bytes, x509.Certificate] = {}
    for certificate in certificates:
        unique.setdefault(certificate.fingerprint(hashes.SHA256()), certificate)
    return tuple(unique.values())


# --------------------------------------------------------------------------- verification


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string()


def _check_validity(certificate: x509.Certificate, field: str, at: datetime) -> None:
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    if at < not_before:
        raise SignatureInvalid(
            field,
            f"certificate {_name(certificate)!r} is not yet valid at {at.isoformat()} "
            f"(valid from {not_before.isoformat()})",
        )
    if at > not_after:
        raise SignatureInvalid(
            field,
            f"certificate {_name(certificate)!r} expired at {not_after.isoformat()} (checked at {at.isoformat()})",
        )


def _extension(certificate: x509.Certificate, kind: type) -> Any | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_issuer_is_ca(issuer: x509.Certificate, field: str, cas_below: int) -> None:
    """``issuer`` signs a certificate; ``cas_below`` intermediates sit between it and the leaf."""
    constraints = _extension(issuer, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        raise SignatureInvalid(
            field,
            f"issuer {_name(issuer)!r} is not a certification authority (basicConstraints CA=true missing)",
        )
    if constraints.path_length is not None and cas_below > constraints.path_length:
        raise SignatureInvalid(
            field,
            f"issuer {_name(issuer)!r} allows at most {constraints.path_length} "
            f"intermediate CA(s) below it, the chain has {cas_below}",
        )
    key_usage = _extension(issuer, x509.KeyUsage)
    if key_usage is not None and not key_usage.key_cert_sign:
        raise SignatureInvalid(field, f"issuer {_name(issuer)!r} keyUsage lacks keyCertSign")


def _check_issued_by(certificate: x509.Certificate, issuer: x509.Certificate, field: str) -> None:
    try:
        certificate.verify_directly_issued_by(issuer)
    except ValueError:
        raise SignatureInvalid(
            field,
            f"certificate {_name(certificate)!r} names issuer "
            f"{certificate.issuer.rfc4514_string()!r}, but the next certificate is "
            f"{_name(issuer)!r} (chain out of order or incomplete)",
        ) from None
    except InvalidSignature:
        raise SignatureInvalid(
            field,
            f"certificate {_name(certificate)!r} is not signed by the key of its issuer {_name(issuer)!r}",
        ) from None
    except (TypeError, UnsupportedAlgorithm):
        raise SignatureInvalid(
            field,
            f"certificate {_name(certificate)!r} uses a signature or key type that cannot be checked",
        ) from None


def _find_anchor(last: x509.Certificate, roots: Sequence[x509.Certificate], field: str) -> x509.Certificate | None:
    """The trusted root that issued ``last``; ``None`` when ``last`` is itself a root."""
    last_der = last.public_bytes(Encoding.DER)
    if any(root.public_bytes(Encoding.DER) == last_der for root in roots):
        return None
    named = [root for root in roots if root.subject == last.issuer]
    for root in named:
        try:
            last.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return root
    issuer = last.issuer.rfc4514_string()
    if named:
        rule = (
            f"chain does not lead to a trusted root: a trusted root is named {issuer!r} "
            f"but its key did not sign {_name(last)!r}"
        )
    else:
        rule = (
            f"chain does not lead to a trusted root: issuer {issuer!r} of {_name(last)!r} "
            f"is not among the {len(roots)} configured trusted root(s)"
        )
    raise SignatureInvalid(field, rule)


def _verify_signature(public_key: Any, algorithm: str, signature: bytes, digest: bytes) -> None:
    prehashed = Prehashed(hashes.SHA256())
    key_kind = type(public_key).__name__
    if algorithm == ALGORITHM_ECDSA_SHA256:
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise SignatureInvalid(
                "signature.algorithm",
                f"{algorithm} needs an EC signer key, the certificate holds {key_kind}",
            )
        public_key.verify(signature, digest, ec.ECDSA(prehashed))
        return
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SignatureInvalid(
            "signature.algorithm",
            f"{algorithm} needs an RSA signer key, the certificate holds {key_kind}",
        )
    if algorithm == ALGORITHM_RSA_PSS_SHA256:
        scheme: padding.AsymmetricPadding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    else:
        scheme = padding.PKCS1v15()
    public_key.verify(signature, digest, scheme, prehashed)


def verify_bundle(
    document_sha256: str,
    bundle: Mapping[str, Any],
    trusted_roots: Sequence[x509.Certificate],
    at: datetime,
) -> SignerInfo:
    """Verify ``bundle`` for the document whose SHA-256 is ``document_sha256``, at ``at``.

    Returns the signer; raises ``SignatureInvalid(field, rule)`` naming the failure.
    """
    if not isinstance(document_sha256, str) or not _SHA256_HEX.match(document_sha256):
        raise ValidationError("document_sha256", "must be 64 hexadecimal characters")
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValidationError("at", "must be a timezone-aware datetime")
    at = at.astimezone(UTC)
    _check_bundle_form(bundle)

    if bundle["document_sha256"].lower() != document_sha256.lower():
        raise SignatureInvalid("document", "does not match the signed SHA-256 (file changed or wrong file)")
    roots = tuple(trusted_roots or ())
    if not roots:
        raise SignatureInvalid("trusted_roots", "none configured, so no signature can be trusted")
    algorithm = bundle["algorithm"]
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise SignatureInvalid(
            "signature.algorithm",
            f"{algorithm!r} is not supported; use one of {', '.join(SUPPORTED_ALGORITHMS)}",
        )
    pems: list[str] = bundle["certificates"]
    if len(pems) > MAX_CHAIN_LENGTH:
        raise SignatureInvalid(
            "signature.certificates",
            f"has {len(pems)} certificates, at most {MAX_CHAIN_LENGTH} are allowed",
        )
    chain = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in pems]

    # Each certificate is valid at `at` and directly issued by the next one, a CA.
    for index, certificate in enumerate(chain):
        field = f"signature.certificates[{index}]"
        _check_validity(certificate, field, at)
        if index + 1 < len(chain):
            issuer = chain[index + 1]
            _check_issued_by(certificate, issuer, field)
            _check_issuer_is_ca(issuer, f"signature.certificates[{index + 1}]", index)

    # The last one is a trusted root or directly issued by one.
    anchor = _find_anchor(chain[-1], roots, "signature.certificates")
    if anchor is not None:
        _check_validity(anchor, "trusted_roots", at)
        _check_issuer_is_ca(anchor, "trusted_roots", len(chain) - 1)

    leaf = chain[0]
    key_usage = _extension(leaf, x509.KeyUsage)
    if key_usage is not None and not key_usage.digital_signature:
        raise SignatureInvalid(
            "signature.certificates[0]",
            f"signer certificate {_name(leaf)!r} keyUsage lacks digitalSignature",
        )

    signature = base64.b64decode(bundle["signature"], validate=True)
    digest = bytes.fromhex(bundle["document_sha256"])
    try:
        _verify_signature(leaf.public_key(), algorithm, signature, digest)
    except (InvalidSignature, ValueError):
        raise SignatureInvalid("signature", "does not verify against the signer certificate") from None
    except UnsupportedAlgorithm:
        raise SignatureInvalid(
            "signature.algorithm",
            f"{algorithm} cannot be checked with the signer certificate's key",
        ) from None

    return SignerInfo(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=format(leaf.serial_number, "x"),
        fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex(),
        not_after=leaf.not_valid_after_utc,
    )
