"""File side of directive signatures: a development PKI, signing files, reading trusted roots.

``init_dev_pki`` makes a throw-away root CA and one signer certificate so that a
developer or a test environment can sign directive documents. Production
deployments configure the ministry's real roots instead
(``TASKLEDGER_TRUSTED_ROOTS``) and sign with the real signer's key.

Verification itself is pure and lives in :mod:`domain.signatures`.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from domain.errors import ValidationError
from domain.signatures import (
    ALGORITHM_ECDSA_SHA256,
    ALGORITHM_RSA_PSS_SHA256,
    BUNDLE_FORMAT,
    document_digest,
    load_trusted_roots,
)

CA_YEARS = 10
SIGNER_YEARS = 5

_CA_CERT = "ca.pem"
_CA_KEY = "ca.key"
_SIGNER_CERT = "signer.pem"
_SIGNER_KEY = "signer.key"
_TRUSTED_ROOTS = "trusted_roots.pem"
_ALL_FILES = (_CA_CERT, _CA_KEY, _SIGNER_CERT, _SIGNER_KEY, _TRUSTED_ROOTS)


@dataclass(frozen=True)
class DevPki:
    """Where ``init_dev_pki`` put its files."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    signer_cert: Path
    signer_key: Path
    trusted_roots: Path


def _dev_pki(directory: Path) -> DevPki:
    return DevPki(
        directory=directory,
        ca_cert=directory / _CA_CERT,
        ca_key=directory / _CA_KEY,
        signer_cert=directory / _SIGNER_CERT,
        signer_key=directory / _SIGNER_KEY,
        trusted_roots=directory / _TRUSTED_ROOTS,
    )


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now", "must be a timezone-aware datetime")
    # X.509 times carry whole seconds.
    return now.astimezone(UTC).replace(microsecond=0)


def _add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February -> 28 February
        return moment.replace(year=moment.year + years, day=28)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` via a temporary file; the file never exists with other modes."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def init_dev_pki(
    directory: Path,
    *,
    organisation: str = "taskledger dev",
    signer_name: str = "taskledger dev signer",
    now: datetime | None = None,
    force: bool = False,
) -> DevPki:
    """Create a development root CA and a signer certificate issued by it.

    Root: EC P-256, basicConstraints CA=true (pathlen 0), keyUsage keyCertSign+cRLSign,
    10 years. Signer: EC P-256, CA=false, keyUsage digitalSignature+contentCommitment,
    5 years. Private keys are written unencrypted with mode 0600.

    If all files already exist and ``force`` is false, nothing is written and the
    existing PKI is returned. A partial PKI (some files missing) is refused unless
    ``force`` is true, so that no existing key is overwritten by accident.
    """
    directory = Path(directory)
    pki = _dev_pki(directory)
    present = [name for name in _ALL_FILES if (directory / name).exists()]
    if not force and len(present) == len(_ALL_FILES):
        return pki
    if not force and present:
        missing = [name for name in _ALL_FILES if name not in present]
        raise ValidationError(
            "pki.directory",
            f"{directory} holds an incomplete dev PKI (missing {', '.join(missing)}); re-run with force to replace it",
        )
    if not organisation.strip() or not signer_name.strip():
        raise ValidationError("pki", "organisation and signer name must not be blank")
    directory.mkdir(parents=True, exist_ok=True)
    start = _utc_now(now)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organisation} root CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_add_years(start, CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                    x509.NameAttribute(NameOID.COMMON_NAME, signer_name),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(_add_years(start, SIGNER_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    # Keys first: a crash half-way leaves a partial PKI, which is refused, never reused.
    _write_atomically(pki.ca_key, _key_pem(ca_key), 0o600)
    _write_atomically(pki.signer_key, _key_pem(signer_key), 0o600)
    _write_atomically(pki.ca_cert, ca_pem, 0o644)
    _write_atomically(pki.signer_cert, signer_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write_atomically(pki.trusted_roots, ca_pem, 0o644)
    return pki


def sign_document(
    data: bytes,
    *,
    key_pem: bytes,
    cert_chain_pem: bytes,
    now: datetime | None = None,
) -> dict:
    """Sign the SHA-256 of ``data``; return the signature bundle (see :mod:`domain.signatures`).

    ``cert_chain_pem`` holds the signer certificate first, then any intermediates.
    EC keys sign with ``ecdsa-sha256``, RSA keys with ``rsa-pss-sha256``.
    """
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValidationError("signer_key", f"is not an unencrypted PEM private key ({exc})") from None
    try:
        chain = x509.load_pem_x509_certificates(cert_chain_pem)
    except ValueError:
        raise ValidationError("signer_cert", "contains no readable PEM certificate") from None
    leaf = chain[0]
    public_der = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public_der) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, public_der
    ):
        raise ValidationError(
            "signer_key",
            f"does not match the signer certificate {leaf.subject.rfc4514_string()!r}",
        )

    hex_digest = document_digest(data)
    digest = bytes.fromhex(hex_digest)
    prehashed = Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ALGORITHM_ECDSA_SHA256
        signature = key.sign(digest, ec.ECDSA(prehashed))
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = ALGORITHM_RSA_PSS_SHA256
        signature = key.sign(
            digest,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH),
            prehashed,
        )
    else:
        raise ValidationError("signer_key", f"{type(key).__name__} is not supported; use an EC or RSA key")
    return {
        "format": BUNDLE_FORMAT,
        "document_sha256": hex_digest,
        "algorithm": algorithm,
        "signature": base64.b64encode(signature).decode("ascii"),
        "certificates": [certificate.public_bytes(serialization.Encoding.PEM).decode("ascii") for certificate in chain],
        "signed_at": _utc_now(now).isoformat(),
    }


def _read(path: Path, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ValidationError(field, f"file {path} does not exist") from None


def sign_file(
    path: Path,
    *,
    key_path: Path,
    cert_path: Path,
    out: Path | None = None,
) -> Path:
    """Sign the file at ``path``; write the bundle to ``out`` (default ``path`` + ".sig")."""
    path = Path(path)
    data = _read(path, "file")
    bundle = sign_document(
        data,
        key_pem=_read(key_path, "signer_key"),
        cert_chain_pem=_read(cert_path, "signer_cert"),
    )
    target = Path(out) if out is not None else path.with_name(path.name + ".sig")
    _write_atomically(target, (json.dumps(bundle, indent=2) + "\n").encode("utf-8"), 0o644)
    return target


def read_trusted_roots(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """Read the trusted root certificates from one or several PEM files."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValidationError(
            "trusted_roots",
            "no file configured; run 'taskledger pki init' or set TASKLEDGER_TRUSTED_ROOTS",
        )
    roots: dict[bytes, x509.Certificate] = {}
    for p in paths:
        if not p.exists():
            raise ValidationError(
                "trusted_roots",
                f"file {p} does not exist; run 'taskledger pki init' or set TASKLEDGER_TRUSTED_ROOTS",
            )
        if not p.is_file():
            raise ValidationError("trusted_roots", f"{p} is not a file")
        try:
            certificates = load_trusted_roots(p.read_bytes())
        except ValidationError as exc:
            raise ValidationError("trusted_roots", f"file {p} {exc.rule}") from None
        for certificate in certificates:
            roots.setdefault(certificate.fingerprint(hashes.SHA256()), certificate)
    return tuple(roots.values())
