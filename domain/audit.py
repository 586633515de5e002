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


# -- the same canonical bytes, straight from the stored JSON ---------------------------------
# Verification reads the store without eventsourcing's mapper: the stored state is the event's
# ``__dict__`` (minus originator_id/version) as eventsourcing's JSONTranscoder wrote it, with
# datetimes as {"_type_": "datetime_iso", "_data_": isoformat} and UUIDs as {"_type_": "uuid_hex",
# "_data_": hex}. The functions below turn that decoded JSON into the canonical document directly;
# they must give byte-identical output to ``canonical_bytes`` on the decoded domain event.

# Keys of a stored state that are not canonical attributes: the envelope, and the class version
# the mapper adds for upcast classes (never part of the event's __dict__ when it was hashed).
STORED_SKIP = ENVELOPE | {"class_version"}
_SORT = orjson.OPT_SORT_KEYS
_CONTAINERS = (dict, list)


def utc_text_from_iso(text: str) -> str:
    """``utc_text(datetime.fromisoformat(text))`` for a datetime's ``isoformat()``; the common UTC
    forms are rewritten without parsing."""
    if text.__class__ is str and text.endswith("+00:00") and text[0] != "0":
        size = len(text)
        if size == 25 or (size == 32 and text[19:26] != ".000000"):
            return text[:-6] + "Z"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"stored instant {text!r} carries no time zone")
    return utc_text(moment)


def _uuid_text(data: str) -> str:
    if data.__class__ is str and len(data) == 32 and data.islower():
        return f"{data[:8]}-{data[8:12]}-{data[12:16]}-{data[16:20]}-{data[20:]}"
    return str(UUID(data))


def stored_value(value: Any) -> Any:
    """The canonical form of a value as stored (mirrors JSONTranscoder._decode_obj, then canonical_value)."""
    cls = value.__class__
    if cls is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            kind, data = value["_type_"], value["_data_"]
            if kind == "datetime_iso":
                return utc_text_from_iso(data)
            if kind == "uuid_hex":
                return _uuid_text(data)
            raise ValueError(f"stored value of type {kind!r} has no canonical form")
        return {k: stored_value(v) if v.__class__ in _CONTAINERS else v for k, v in value.items()}
    if cls is list:
        return [stored_value(v) if v.__class__ in _CONTAINERS else v for v in value]
    return value


def canonical_bytes_from_stored(
    aggregate_id: str, version: int, topic: str, state: Mapping[str, Any], raw: bytes | None = None
) -> bytes:
    """``canonical_bytes`` of the event whose stored state (decoded JSON) is ``state``.
    ``aggregate_id`` is the canonical UUID text. Raises KeyError/ValueError/TypeError on a state
    that no event could have been stored as (e.g. no timestamp).

    ``raw``, the JSON bytes ``state`` was decoded from, allows a shortcut: when the only transcoded
    values in it are the ``timestamp`` and ``occurred_at`` instants (``"_type_"`` occurs exactly as
    often as those two need), every other value is plain JSON and is canonical as it is."""
    recorded = _stored_instant(state["timestamp"])
    if raw is not None:
        occurred = state.get("occurred_at")
        transcoded = 1
        if occurred.__class__ is dict:
            transcoded = 2 if len(occurred) == 2 and occurred.get("_type_") == "datetime_iso" else 0
        if transcoded and raw.count(b'"_type_"') == transcoded:
            attributes = dict(state)
            for key in _STORED_SKIP_KEYS:
                attributes.pop(key, None)
            if transcoded == 2:
                attributes["occurred_at"] = _stored_instant(occurred)
            return orjson.dumps(
                {
                    "aggregate_id": aggregate_id,
                    "version": version,
                    "topic": topic,
                    "recorded_at": recorded,
                    "attributes": attributes,
                },
                option=_SORT,
            )
    attributes = {
        key: (value if value.__class__ not in _CONTAINERS else stored_value(value))
        for key, value in state.items()
        if key not in STORED_SKIP
    }
    document = {
        "aggregate_id": aggregate_id,
        "version": version,
        "topic": topic,
        "recorded_at": recorded,
        "attributes": attributes,
    }
    return orjson.dumps(document, option=_SORT)


_STORED_SKIP_KEYS = tuple(sorted(STORED_SKIP))


def _stored_instant(value: Any) -> str:
    """A stored {"_type_": "datetime_iso", "_data_": isoformat} as canonical UTC text."""
    if value.__class__ is not dict or len(value) != 2 or value.get("_type_") != "datetime_iso":
        raise ValueError("a stored instant is not a datetime_iso value")
    text = value["_data_"]
    if (
        text.__class__ is str
        and len(text) == 32
        and text[0] != "0"
        and text.endswith("+00:00")
        and text[19:26] != ".000000"
    ):
        return text[:-6] + "Z"
    return utc_text_from_iso(text)


# -- Merkle roots, incrementally --------------------------------------------------------------
class MerkleAccumulator:
    """``merkle_root`` of a sequence of leaves fed one at a time, in O(log n) memory: the pending
    left node of every level, like a binary counter. ``root()`` promotes odd nodes exactly as
    ``merkle_root`` does, so both give the same root for the same leaves."""

    __slots__ = ("count", "_levels")

    def __init__(self) -> None:
        self.count = 0
        self._levels: list[bytes | None] = []

    def add(self, leaf_hash: str) -> None:
        self.add_digest(bytes.fromhex(leaf_hash))

    def add_digest(self, digest: bytes) -> None:
        """Add a leaf given as the 32 raw bytes of the event hash."""
        self.count += 1
        node = hashlib.sha256(b"\x00" + digest).digest()
        levels = self._levels
        for level, left in enumerate(levels):
            if left is None:
                levels[level] = node
                return
            node = hashlib.sha256(b"\x01" + left + node).digest()
            levels[level] = None
        levels.append(node)

    def root(self) -> str:
        if not self.count:
            return hashlib.sha256(b"").hexdigest()
        carry: bytes | None = None
        for left in self._levels:
            if left is None:
                continue
            carry = left if carry is None else hashlib.sha256(b"\x01" + left + carry).digest()
        assert carry is not None
        return carry.hex()


# -- Merkle inclusion proofs ------------------------------------------------------------------
def merkle_proofs(leaves: Sequence[bytes], indexes: Iterable[int]) -> dict[int, list[str]]:
    """Audit paths of the leaves at ``indexes`` in the tree of ``merkle_root`` (``leaves``: the raw
    32-byte hashes, in order). A path lists, from the leaf up, each sibling as "L<hex>" (it is on
    the left) or "R<hex>"; a level where the node is promoted alone adds nothing."""
    at = {i: i for i in indexes}
    if any(not 0 <= i < len(leaves) for i in at):
        raise IndexError("a proof was asked for a leaf outside the tree")
    paths: dict[int, list[str]] = {i: [] for i in at}
    level = [hashlib.sha256(b"\x00" + h).digest() for h in leaves]
    while len(level) > 1:
        for leaf, i in at.items():
            sibling = i ^ 1
            if sibling < len(level):
                paths[leaf].append(("L" if sibling < i else "R") + level[sibling].hex())
            at[leaf] = i // 2
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return paths


def merkle_path_root(leaf_hash: str, path: Sequence[str]) -> str:
    """The root a leaf (hex event hash) and its audit path lead to (ValueError if malformed)."""
    node = hashlib.sha256(b"\x00" + bytes.fromhex(leaf_hash)).digest()
    for step in path:
        side, sibling = step[:1], bytes.fromhex(step[1:])
        if len(sibling) != 32 or side not in ("L", "R"):
            raise ValueError(f"malformed audit path step {step!r}")
        node = hashlib.sha256(b"\x01" + sibling + node if side == "L" else b"\x01" + node + sibling).digest()
    return node.hex()
