"""Signed checkpoints over the notification log (SPEC 8: verify that nothing was altered). Pure.

A checkpoint seals a range ``[first_position, last_position]`` of the notification log: the Merkle
root (``domain.audit.merkle_root``) over the chain hashes of *every* event in the range, in log
order, signed with the deployment's Ed25519 audit key. The hash chains show that no aggregate's
history was altered inside; a checkpoint also shows that no event of the range was removed (a
truncated tail leaves valid, shorter chains) and that no chain was rewritten wholesale.

Checkpoints are the events of one aggregate, the seal log ``AuditCheckpoints`` (version 1 opens it,
checkpoint k is version k + 1), which carries the hash chain itself. Ranges follow each other
without overlap: checkpoint k + 1 starts after checkpoint k ends. The connector keeps this
aggregate in a table of its own, so that cutting the tail of the events table cannot take with it
the checkpoints that sealed the cut events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.domain import Aggregate

from domain import audit
from domain.errors import InvariantViolation, ValidationError
from domain.events import NAMESPACE, Chained

CHECKPOINTS_ID = uuid.uuid5(NAMESPACE, "audit:checkpoints")
FORMAT = "taskledger-audit-checkpoint/1"
ALGORITHM = "ed25519"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def key_fingerprint(public_key: str) -> str:
    """SHA-256 (hex) of the raw 32-byte Ed25519 public key given in base64."""
    return hashlib.sha256(_b64(public_key, "public_key")).hexdigest()


def checkpoint_message(
    *,
    sequence: int,
    first_position: int,
    last_position: int,
    count: int,
    merkle_root: str,
    key_fingerprint: str,
    sealed_at: str,
) -> bytes:
    """The bytes a checkpoint's signature is over: compact JSON, sorted keys, ``sealed_at`` in
    canonical UTC text (``audit.utc_text``)."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "sequence": sequence,
            "first_position": first_position,
            "last_position": last_position,
            "count": count,
            "merkle_root": merkle_root,
            "key_fingerprint": key_fingerprint,
            "sealed_at": sealed_at,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def signature_valid(public_key: str, message: bytes, signature: str) -> bool:
    """Does the base64 Ed25519 ``signature`` verify ``message`` under the base64 raw ``public_key``?"""
    try:
        Ed25519PublicKey.from_public_bytes(_b64(public_key, "public_key")).verify(_b64(signature, "signature"), message)
    except (InvalidSignature, ValidationError, ValueError):
        return False
    return True


def _b64(text: Any, field: str) -> bytes:
    if not isinstance(text, str):
        raise ValidationError(field, "must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "must be base64 text") from None


@dataclass(frozen=True)
class Checkpoint:
    """One sealed range, as read from the seal log (stored JSON or domain event)."""

    sequence: int
    first_position: int
    last_position: int
    count: int
    merkle_root: str
    algorithm: str
    public_key: str
    key_fingerprint: str
    signature: str
    sealed_at: str  # canonical UTC text
    actor: dict[str, str]
    version: int  # version of the seal log
    hash: str

    @property
    def range(self) -> str:
        return f"positions {self.first_position}-{self.last_position}"

    def label(self) -> str:
        return f"checkpoint #{self.sequence} ({self.range}, {self.count} events)"

    def message(self) -> bytes:
        return checkpoint_message(
            sequence=self.sequence,
            first_position=self.first_position,
            last_position=self.last_position,
            count=self.count,
            merkle_root=self.merkle_root,
            key_fingerprint=self.key_fingerprint,
            sealed_at=self.sealed_at,
        )

    def signature_problem(self) -> str | None:
        """Why the signature does not hold, or None."""
        if self.algorithm != ALGORITHM:
            return f"algorithm {self.algorithm!r} is not {ALGORITHM}"
        try:
            fingerprint = key_fingerprint(self.public_key)
        except ValidationError:
            return "the recorded public key is not base64"
        if fingerprint != self.key_fingerprint:
            return "the recorded key fingerprint is not the fingerprint of the recorded public key"
        if not signature_valid(self.public_key, self.message(), self.signature):
            return "the signature does not verify (range, count, root or time were changed, or it was forged)"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "count": self.count,
            "merkle_root": self.merkle_root,
            "algorithm": self.algorithm,
            "public_key": self.public_key,
            "key_fingerprint": self.key_fingerprint,
            "signature": self.signature,
            "sealed_at": self.sealed_at,
            "actor": self.actor,
            "version": self.version,
            "hash": self.hash,
        }

    @classmethod
    def from_stored(cls, version: int, state: Mapping[str, Any]) -> Checkpoint:
        """From the decoded stored JSON of a ``Sealed`` event (KeyError/ValueError if malformed)."""
        stamp = state["timestamp"]
        if not isinstance(stamp, dict) or stamp.get("_type_") != "datetime_iso":
            raise ValueError("the checkpoint's timestamp is not a stored instant")
        return cls(
            sequence=int(state["sequence"]),
            first_position=int(state["first_position"]),
            last_position=int(state["last_position"]),
            count=int(state["count"]),
            merkle_root=str(state["merkle_root"]),
            algorithm=str(state["algorithm"]),
            public_key=str(state["public_key"]),
            key_fingerprint=str(state["key_fingerprint"]),
            signature=str(state["signature"]),
            sealed_at=audit.utc_text_from_iso(stamp["_data_"]),
            actor=dict(state.get("actor") or {}),
            version=version,
            hash=str(state["hash"]),
        )


class AuditCheckpoints(Chained, Aggregate):
    """The seal log: every checkpoint of the deployment, in order, hash-chained."""

    class Opened(Aggregate.Created):
        actor: dict[str, str]
        format: str
        prev_hash: str
        hash: str

        def apply(self, aggregate: AuditCheckpoints) -> None:
            aggregate.last_hash = self.hash
            aggregate.sealed = 0
            aggregate.last_position = 0
            aggregate.last_checkpoint = None

    class Sealed(Aggregate.Event):
        actor: dict[str, str]
        sequence: int
        first_position: int
        last_position: int
        count: int
        merkle_root: str
        algorithm: str
        public_key: str
        key_fingerprint: str
        signature: str
        prev_hash: str
        hash: str

        def apply(self, aggregate: AuditCheckpoints) -> None:
            aggregate.last_hash = self.hash
            aggregate.sealed = self.sequence
            aggregate.last_position = self.last_position
            aggregate.last_checkpoint = checkpoint_of(self)

    if TYPE_CHECKING:  # state set by the events' apply(); real annotations would make a dataclass
        sealed: int
        last_position: int
        last_checkpoint: Checkpoint | None

    @classmethod
    def open(cls, *, actor: Mapping[str, str], recorded_at: datetime) -> AuditCheckpoints:
        return cls._create(
            cls.Opened, id=CHECKPOINTS_ID, timestamp=_aware(recorded_at), actor=dict(actor), format=FORMAT
        )

    def seal(
        self,
        *,
        first_position: int,
        last_position: int,
        count: int,
        merkle_root: str,
        public_key: str,
        signature: str,
        actor: Mapping[str, str],
        recorded_at: datetime,
    ) -> Checkpoint:
        """Record the next checkpoint. The signature must verify over ``checkpoint_message`` of
        this very checkpoint (sequence = checkpoints so far + 1, ``sealed_at`` = ``recorded_at``)."""
        at = _aware(recorded_at)
        if first_position <= self.last_position:
            raise InvariantViolation(
                "first_position",
                f"must follow the last sealed position {self.last_position} (ranges do not overlap)",
            )
        if last_position < first_position:
            raise ValidationError("last_position", "must not precede first_position")
        if not 1 <= count <= last_position - first_position + 1:
            raise ValidationError("count", f"must be 1..{last_position - first_position + 1} for this range")
        if not isinstance(merkle_root, str) or not _HEX64.match(merkle_root):
            raise ValidationError("merkle_root", "must be 64 lowercase hex digits")
        fingerprint = key_fingerprint(public_key)
        sequence = self.sealed + 1
        message = checkpoint_message(
            sequence=sequence,
            first_position=first_position,
            last_position=last_position,
            count=count,
            merkle_root=merkle_root,
            key_fingerprint=fingerprint,
            sealed_at=audit.utc_text(at),
        )
        if not signature_valid(public_key, message, signature):
            raise ValidationError("signature", "does not verify over this checkpoint with the given public key")
        self.trigger_event(
            self.Sealed,
            timestamp=at,
            actor=dict(actor),
            sequence=sequence,
            first_position=first_position,
            last_position=last_position,
            count=count,
            merkle_root=merkle_root,
            algorithm=ALGORITHM,
            public_key=public_key,
            key_fingerprint=fingerprint,
            signature=signature,
        )
        assert self.last_checkpoint is not None
        return self.last_checkpoint


def checkpoint_of(event: AuditCheckpoints.Sealed) -> Checkpoint:
    return Checkpoint(
        sequence=event.sequence,
        first_position=event.first_position,
        last_position=event.last_position,
        count=event.count,
        merkle_root=event.merkle_root,
        algorithm=event.algorithm,
        public_key=event.public_key,
        key_fingerprint=event.key_fingerprint,
        signature=event.signature,
        sealed_at=audit.utc_text(event.timestamp),
        actor=dict(event.actor),
        version=event.originator_version,
        hash=event.hash,
    )


def _aware(t: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
        raise ValidationError("recorded_at", "must be a timezone-aware datetime")
    return t.astimezone(timezone.utc)
