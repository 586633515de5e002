"""Tamper evidence: the per-aggregate hash chain and Merkle roots over ranges of the log. Pure.

hash = SHA-256(prev_hash ‖ canonical bytes of the event), prev_hash = the previous event's hash in
the same aggregate, or for version 1 a constant derived from the aggregate id. The canonical bytes
are compact JSON with sorted keys and every instant in UTC, so the same fact always hashes the same,
whatever the store, transcoder or cipher."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

# Attributes of a stored event that are not part of its canonical content.
ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "hash", "prev_hash"})


def genesis(aggregate_id: UUID | str) -> str:
    """The prev_hash of version 1: derived from the aggregate id, so a chain cannot be moved."""
    return hashlib.sha256(b"taskledger:genesis:" + str(aggregate_id).encode()).hexdigest()


def utc_text(t: datetime) -> str:
    """An instant as canonical text: UTC, 'Z', microseconds only when non-zero."""
    if t.tzinfo is None:
        raise ValueError("canonical instants must be timezone-aware")
    t = t.astimezone(timezone.utc)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{t.microsecond:06d}Z" if t.microsecond else f"{text}Z"


def canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, (UUID, date)):
        return str(value) if isinstance(value, UUID) else value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): canonical_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [canonical_value(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


def canonical_bytes(
    aggregate_id: UUID | str, version: int, topic: str, recorded_at: datetime, attributes: Mapping[str, Any]
) -> bytes:
    document = {
        "aggregate_id": str(aggregate_id),
        "version": version,
        "topic": topic,
        "recorded_at": utc_text(recorded_at),
        "attributes": {k: canonical_value(v) for k, v in attributes.items() if k not in ENVELOPE},
    }
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def event_hash(
    prev_hash: str,
    aggregate_id: UUID | str,
    version: int,
    topic: str,
    recorded_at: datetime,
    attributes: Mapping[str, Any],
) -> str:
    return chain_hash(prev_hash, canonical_bytes(aggregate_id, version, topic, recorded_at, attributes))


# -- Merkle roots over the hashes of a log range -------------------------------------------
def merkle_root(leaves: Sequence[str]) -> str:
    """Binary Merkle tree over hex leaf hashes (leaf = SHA-256(0x00‖h), node = SHA-256(0x01‖l‖r));
    an odd node is promoted. The root of no leaves is SHA-256 of nothing."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in leaves]
    while len(level) > 1:
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def first_break(chain: Iterable[tuple[int, str, str, str]], aggregate_id: UUID | str) -> tuple[int, str] | None:
    """Walk one aggregate's (version, prev_hash, hash, recomputed_hash) in version order; return the
    first (version, reason) that breaks the chain, or None."""
    expected_prev = genesis(aggregate_id)
    expected_version = 1
    for version, prev_hash, stored, recomputed in chain:
        if version != expected_version:
            return expected_version, f"version {expected_version} is missing (next stored is {version})"
        if prev_hash != expected_prev:
            return version, "prev_hash does not link to the previous event (removed, reordered or rewritten)"
        if recomputed != stored:
            return version, "content does not match its hash (the stored event was altered)"
        expected_prev = stored
        expected_version += 1
    return None
