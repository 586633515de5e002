"""`taskledger audit verify | checkpoint | export`: tamper evidence over the event store (SPEC 8).

* **Hash chains** (domain/audit.py): every event carries ``hash`` = SHA-256(prev_hash ‖ canonical
  bytes). ``verify`` reads the notification log page by page straight from the recorder, decrypts
  and decompresses if configured, decodes the JSON with orjson (not through the mapper), rebuilds the
  canonical bytes from the stored JSON (``audit.canonical_bytes_from_stored``) and checks, per
  aggregate, versions 1..n without gaps, the prev_hash links and every hash. Per aggregate it keeps
  only the last version and the last hash.
* **Signed checkpoints** (domain/checkpoint.py): a Merkle root over the hashes of every event in a
  range of log positions, signed with the deployment's Ed25519 audit key
  (``$TASKLEDGER_HOME/pki/audit.key``), recorded in the seal log. The seal log lives in a table of
  its own in the same database (``stored_audit_checkpoints`` on SQLite,
  ``taskledger_audit_checkpoints`` on PostgreSQL): cutting the tail of the events table must not
  take with it the checkpoints that sealed the cut events. ``verify --all`` recomputes every root
  from the current log and checks every signature.
* **Exports**: ``events.jsonl`` (one stored event per line, plaintext JSON) and ``manifest.json``
  (counts and first/last hash per aggregate, the seal log, the file's SHA-256, signed with the audit
  key); ``verify --export DIR`` checks all of it offline, without the database.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import orjson
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.utils import resolve_topic

from connectors.audit_cli import audit_app
from domain import audit
from domain.application import TaskLedger
from domain.checkpoint import (
    CHECKPOINTS_ID,
    AuditCheckpoints,
    Checkpoint,
    checkpoint_message,
    checkpoint_of,
    key_fingerprint,
    signature_valid,
)
from domain.errors import Conflict, NotAuthorized, NotFound, ValidationError
from domain.events import Chained
from domain.values import Confidentiality

EXPORT_FORMAT = "taskledger-audit-export/1"
KEY_FILE = "audit.key"
PUBLIC_KEY_FILE = "audit.pub"
SEAL_LOG_PURPOSE = "audit_checkpoints"  # table stored_audit_checkpoints / taskledger_audit_checkpoints
PAGE = 10_000  # notifications per select_notifications call
PROGRESS_FROM = 50_000  # show a progress bar from this many events on
MAX_PROBLEMS = 1000  # problems kept in a report (the rest are counted)
AUDIT_ACTOR = {"role": "system", "agency": "taskledger", "user": "audit"}

_SEALED_TOPIC = "domain.checkpoint:AuditCheckpoints.Sealed"
_LEVELS = {c.value: c for c in Confidentiality}
_CREATION_SUFFIXES = (":Task.Assigned", ":Directive.Registered")


# ================================================================================ the audit key
def audit_key_path(pki_dir: Path) -> Path:
    return Path(pki_dir) / KEY_FILE


def load_audit_key(pki_dir: Path) -> Ed25519PrivateKey | None:
    path = audit_key_path(pki_dir)
    if not path.exists():
        return None
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValidationError("audit_key", f"{path} is not an Ed25519 private key")
    return key


def ensure_audit_key(pki_dir: Path) -> Ed25519PrivateKey:
    """The deployment's audit signing key: ``pki_dir/audit.key`` (Ed25519, PKCS8 PEM, mode 0600),
    created with its public key ``pki_dir/audit.pub`` on first use."""
    existing = load_audit_key(pki_dir)
    if existing is not None:
        return existing
    directory = Path(pki_dir)
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new(audit_key_path(directory), pem, 0o600)
    _write_new(directory / PUBLIC_KEY_FILE, public, 0o644)
    return load_audit_key(directory) or key  # another process may have won the race: use its key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not be replaced once it exists (a key): temporary file + link."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        Path(temporary).unlink(missing_ok=True)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The raw 32-byte public key, base64 (as recorded in checkpoints and manifests)."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def deployment_fingerprint(pki_dir: Path) -> str | None:
    """Fingerprint of the deployment's audit key, from audit.key or audit.pub; None if neither exists."""
    key = load_audit_key(pki_dir)
    if key is not None:
        return key_fingerprint(public_key_text(key))
    pub = Path(pki_dir) / PUBLIC_KEY_FILE
    if pub.exists():
        public = serialization.load_pem_public_key(pub.read_bytes())
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return key_fingerprint(base64.b64encode(raw).decode("ascii"))
    return None


def _sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode("ascii")


# ================================================================================ reading the store
Plain = Callable[[bytes], bytes] | None


def plaintext(app: TaskLedger) -> Plain:
    """How a stored state becomes JSON: decrypt, then decompress (as the mapper does); None if neither."""
    cipher = getattr(app.mapper, "cipher", None)
    compressor = getattr(app.mapper, "compressor", None)
    if cipher is None and compressor is None:
        return None

    def plain(state: bytes) -> bytes:
        if cipher is not None:
            state = cipher.decrypt(state)
        if compressor is not None:
            state = compressor.decompress(state)
        return state

    return plain


def log_head(app: TaskLedger) -> int:
    return app.recorder.max_notification_id() or 0


def pages(app: TaskLedger, start: int, stop: int, page: int = PAGE) -> Iterator[Sequence[Any]]:
    """The notification log from position ``start`` to ``stop`` (inclusive), a page at a time."""
    while start <= stop:
        notifications = app.recorder.select_notifications(start=start, limit=page, stop=stop)
        if not notifications:
            return
        yield notifications
        start = notifications[-1].id + 1


Row = tuple[int, Any, int, str, bytes]  # position, originator id (as stored), version, topic, state


def rows(app: TaskLedger, start: int, stop: int, page: int = PAGE, lean: bool = True) -> Iterator[list[Row]]:
    """The notification log from ``start`` to ``stop`` as plain rows, a page at a time.

    ``lean``: on the SQLite and PostgreSQL recorders, one SELECT per page on the recorder's own
    connection and table, returning tuples (positions, ids and states exactly as
    ``select_notifications`` reads them, without building a Notification and a UUID per event,
    which costs more than verifying the event). Otherwise, and for any other recorder,
    ``recorder.select_notifications``."""
    recorder: Any = app.recorder
    module = type(recorder).__module__
    if lean and module == "eventsourcing.sqlite":
        table = recorder.events_table_name
        statement = (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {table} "
            "WHERE rowid>=? AND rowid<=? ORDER BY rowid LIMIT ?"
        )
        while start <= stop:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.sqlite_cursor.row_factory = None
                cursor.execute(statement, (start, stop, page))
                found = cursor.fetchall()
            if not found:
                return
            yield found
            start = found[-1][0] + 1
        return
    if lean and module == "eventsourcing.postgres":
        from psycopg.rows import tuple_row
        from psycopg.sql import SQL, Identifier

        query = SQL(
            "SELECT notification_id, originator_id::text, originator_version, topic, state FROM {}.{} "
            "WHERE notification_id>=%s AND notification_id<=%s ORDER BY notification_id LIMIT %s"
        ).format(Identifier(recorder.datastore.schema or "public"), Identifier(recorder.events_table_name))
        while start <= stop:
            with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
                cursor.execute(query, (start, stop, page))
                found = [(r[0], r[1], r[2], r[3], bytes(r[4])) for r in cursor.fetchall()]
            if not found:
                return
            yield found
            start = found[-1][0] + 1
        return
    for notifications in pages(app, start, stop, page):
        yield [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]


class SealLog:
    """The checkpoint aggregate's events, in their own table of the same database."""

    def __init__(self, app: TaskLedger) -> None:
        self.app = app
        self.recorder = app.factory.aggregate_recorder(SEAL_LOG_PURPOSE)

    def stored(self) -> list[StoredEvent]:
        return list(self.recorder.select_events(CHECKPOINTS_ID))

    def load(self) -> AuditCheckpoints | None:
        aggregate = None
        for stored in self.stored():
            aggregate = self.app.mapper.to_domain_event(stored).mutate(aggregate)  # type: ignore[attr-defined]
        return aggregate  # type: ignore[return-value]

    def last_position(self) -> int:
        """The last sealed position (0 if none), from the last seal-log event only."""
        last = self.recorder.select_events(CHECKPOINTS_ID, desc=True, limit=1)
        if not last:
            return 0
        event = self.app.mapper.to_domain_event(last[0])
        return int(getattr(event, "last_position", 0))

    def save(self, aggregate: AuditCheckpoints) -> None:
        events = aggregate.collect_events()
        self.recorder.insert_events([self.app.mapper.to_stored_event(e) for e in events])


def checkpoints(app: TaskLedger) -> list[Checkpoint]:
    """Every checkpoint recorded, in order (through the mapper: for display, not for verification)."""
    found = []
    for stored in SealLog(app).stored():
        event = app.mapper.to_domain_event(stored)
        if isinstance(event, AuditCheckpoints.Sealed):
            found.append(checkpoint_of(event))
    return found


# ================================================================================ sealing
def seal(
    app: TaskLedger,
    key: Ed25519PrivateKey,
    *,
    every: int | None = None,
    actor: dict[str, str] | None = None,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> list[Checkpoint]:
    """Seal the log since the last checkpoint: one checkpoint over everything (``every`` None), or
    one per ``every`` events (a remainder of fewer than ``every`` events waits for the next call).

    Every event sealed must match its own hash (its content is recomputed; links between events
    are ``verify``'s job). Raises Conflict if another process sealed at the same time (nothing
    recorded), ValidationError naming an event that does not match its hash."""
    if every is not None and every < 1:
        raise ValidationError("every", "must be at least 1")
    log = SealLog(app)
    aggregate = log.load() or AuditCheckpoints.open(actor=actor or AUDIT_ACTOR, recorded_at=app.clock())
    head = log_head(app)
    start = aggregate.last_position + 1
    if start > head:
        return []
    public = public_key_text(key)
    fingerprint = key_fingerprint(public)
    plain = plaintext(app)
    chained = _ChainedTopics()
    sealed: list[Checkpoint] = []
    acc = audit.MerkleAccumulator()
    first = last = 0

    def close() -> None:
        at = app.clock()
        root = acc.root()
        message = checkpoint_message(
            sequence=aggregate.sealed + 1,
            first_position=first,
            last_position=last,
            count=acc.count,
            merkle_root=root,
            key_fingerprint=fingerprint,
            sealed_at=audit.utc_text(at.astimezone(timezone.utc)),
        )
        sealed.append(
            aggregate.seal(
                first_position=first,
                last_position=last,
                count=acc.count,
                merkle_root=root,
                public_key=public,
                signature=_sign(key, message),
                actor=actor or AUDIT_ACTOR,
                recorded_at=at,
            )
        )

    for found in rows(app, start, head, page):
        for position, oid, version, topic, state in found:
            leaf, problem = _own_hash(canonical_id(oid), version, topic, state, plain, chained)
            if problem:
                raise ValidationError(
                    "log",
                    f"{_kind(topic)} {canonical_id(oid)} version {version} (position {position}): "
                    f"{problem}; nothing was sealed (run 'taskledger audit verify')",
                )
            if not acc.count:
                first = position
            acc.add_digest(leaf)
            last = position
            if every is not None and acc.count == every:
                close()
                acc = audit.MerkleAccumulator()
        if progress:
            progress(found[-1][0])
    if acc.count and every is None:
        close()
    if not sealed:
        return []
    try:
        log.save(aggregate)
    except IntegrityError:
        raise Conflict("checkpoint", "another process sealed the log at the same time; nothing was recorded") from None
    return sealed


def maybe_checkpoint(
    app: TaskLedger,
    every: int,
    *,
    key: Ed25519PrivateKey | None = None,
    pki_dir: Path | None = None,
    actor: dict[str, str] | None = None,
) -> list[Checkpoint]:
    """Seal every complete range of ``every`` events not sealed yet; cheap when there is none (two
    indexed look-ups). For the CLI and the relay to call after writing. A concurrent sealer wins
    silently (returns [])."""
    if every < 1:
        raise ValidationError("every", "must be at least 1")
    if log_head(app) - SealLog(app).last_position() < every:
        return []
    if key is None:
        if pki_dir is None:
            raise ValidationError("audit_key", "give the key or the pki directory it lives in")
        key = ensure_audit_key(pki_dir)
    try:
        return seal(app, key, every=every, actor=actor)
    except Conflict:
        return []


def _own_hash(
    text: str, version: int, topic: str, state: bytes, plain: Plain, chained: _ChainedTopics
) -> tuple[bytes, str | None]:
    """The event's hash (raw bytes) and why it cannot be sealed, if it cannot."""
    try:
        raw = plain(state) if plain else state
        data = orjson.loads(raw)
    except Exception:  # noqa: BLE001 - any decryption/JSON failure is a finding
        return b"", "the stored state cannot be read"
    try:
        canonical = audit.canonical_bytes_from_stored(text, version, topic, data, raw)
    except Exception as error:  # noqa: BLE001
        return b"", f"the stored state is not an event ({error})"
    if "hash" not in data and not chained(topic):
        return hashlib.sha256(canonical).digest(), None
    try:
        prev, own = bytes.fromhex(data["prev_hash"]), bytes.fromhex(data["hash"])
    except (KeyError, TypeError, ValueError):
        return b"", "the event carries no valid hash"
    if hashlib.sha256(prev + canonical).digest() != own:
        return b"", "content does not match its hash (the stored event was altered)"
    return own, None


# ================================================================================ verifying
@dataclass
class Problem:
    """One finding. ``kind``: chain | checkpoint | seal-log | export."""

    kind: str
    reason: str
    aggregate_id: str | None = None
    aggregate_type: str | None = None
    version: int | None = None
    position: int | None = None
    line: int | None = None
    checkpoint: dict[str, int] | None = None
    found_at: int | None = field(default=None, repr=False)  # position/line where it was found: ordering only

    def __post_init__(self) -> None:
        if self.found_at is None:
            self.found_at = self.position if self.position is not None else self.line

    def describe(self) -> str:
        if self.kind == "seal-log" and self.version is not None:
            where = f"seal log version {self.version}"
            if self.checkpoint is not None:
                c = self.checkpoint
                where += f" (checkpoint #{c['sequence']}, positions {c['first_position']}-{c['last_position']})"
        elif self.checkpoint is not None:
            c = self.checkpoint
            where = (
                f"checkpoint #{c['sequence']} (positions {c['first_position']}-{c['last_position']}, "
                f"{c['count']} events)"
            )
        elif self.aggregate_id is not None:
            where = f"{self.aggregate_type or 'aggregate'} {self.aggregate_id} version {self.version}"
            at = [f"position {self.position}"] if self.position is not None else []
            at += [f"line {self.line}"] if self.line is not None else []
            if at:
                where += f" ({', '.join(at)})"
        elif self.line is not None:
            where = f"line {self.line}"
        else:
            where = self.kind
        return f"{where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v is not None and k != "found_at"}
        data["message"] = self.describe()
        return data


@dataclass
class Report:
    scope: str
    events: int = 0
    aggregates: int = 0
    checkpoints_total: int = 0
    checkpoints_verified: int = 0
    checkpoints_unchecked: list[str] = field(default_factory=list)
    checkpoints_proven: dict[int, int] = field(default_factory=dict)  # partial export: sequence -> events proven
    signers: list[str] = field(default_factory=list)
    unsealed: int = 0
    head: int = 0
    redacted: int = 0  # events whose content the reader may not see (export: links and roots checked only)
    key_pinned: bool = False  # were checkpoint keys checked against trusted fingerprints?
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1

    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "scope": self.scope,
            "events": self.events,
            "aggregates": self.aggregates,
            "checkpoints": {
                "total": self.checkpoints_total,
                "verified": self.checkpoints_verified,
                "unchecked": self.checkpoints_unchecked,
                "inclusion_proven": {str(k): v for k, v in self.checkpoints_proven.items()},
                "signers": self.signers,
            },
            "unsealed_events": self.unsealed,
            "redacted_events": self.redacted,
            "head_position": self.head,
            "first_problem": self.first.to_dict() if self.first else None,
            "problems": [p.to_dict() for p in self.problems],
            "more_problems": self.more_problems,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.rate()),
        }

    def summary(self) -> str:
        if self.ok:
            text = f"OK: {_n(self.events, 'event')} of {_n(self.aggregates, 'aggregate')} verified ({self.scope})"
            if self.checkpoints_total or self.scope != "task":
                text += f"; {self.checkpoints_verified} of {self.checkpoints_total} checkpoints verified"
            if self.signers:
                text += f" (signed by key {', '.join(s[:16] for s in self.signers)}"
                text += ")" if self.key_pinned else "; key not pinned: give --trusted-key FINGERPRINT)"
            if self.unsealed:
                verb = "is" if self.unsealed == 1 else "are"
                text += f"; {_n(self.unsealed, 'event')} after the last checkpoint {verb} not sealed yet"
            if self.redacted:
                text += (
                    f"; {self.redacted:,} events are above the reader's clearance: exported without content, "
                    "their links and checkpoint roots verified"
                )
            if self.checkpoints_proven:
                proven = ", ".join(f"#{k}" for k in sorted(self.checkpoints_proven))
                text += (
                    f"; {sum(self.checkpoints_proven.values()):,} exported events proven included in signed "
                    f"checkpoint{'s' if len(self.checkpoints_proven) > 1 else ''} {proven}"
                )
            if self.checkpoints_unchecked:
                text += f"; not checkable in this export: {'; '.join(self.checkpoints_unchecked)}"
            return text
        first = self.first
        assert first is not None
        return f"TAMPERED: {first.describe()}"


def _n(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _kind(topic: str) -> str:
    """'domain.task:Task.Received' -> 'Task'."""
    return topic.partition(":")[2].partition(".")[0] or topic


class _ChainedTopics:
    """Does the aggregate of an event topic carry the hash chain? Unknown topics must (strict)."""

    def __init__(self) -> None:
        self.cache: dict[str, bool] = {}

    def __call__(self, topic: str) -> bool:
        known = self.cache.get(topic)
        if known is None:
            module, _, path = topic.partition(":")
            try:
                owner = resolve_topic(f"{module}:{path.rpartition('.')[0]}") if "." in path else None
                known = not isinstance(owner, type) or issubclass(owner, Chained)
            except Exception:  # noqa: BLE001 - unknown topic: insist on a chain
                known = True
            self.cache[topic] = known
        return known


_UNLINKED = "prev_hash does not link to the previous event (removed, reordered or rewritten)"
_BROKEN = (-(2**62), b"", "")  # per-aggregate state of an aggregate already found broken


def canonical_id(raw: Any) -> str:
    """Canonical UUID text of an originator id as a store returns it (UUID, 32 hex digits, text)."""
    if raw.__class__ is str:
        if len(raw) == 36:
            return raw
        if len(raw) == 32:
            return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    return str(raw if isinstance(raw, UUID) else UUID(str(raw)))


class Verifier:
    """Checks hash chains event by event, in log (or version) order, and recomputes the Merkle root
    of every checkpoint range it is given. Per aggregate it keeps (last version, last hash, id text)."""

    def __init__(self, report: Report, checkpoints: Sequence[Checkpoint] = ()) -> None:
        self.report = report
        self.last: dict[Any, tuple[int, bytes, str]] = {}
        self.chained = _ChainedTopics()
        self.checkpoints = sorted(checkpoints, key=lambda c: c.first_position)
        self.cp = 0  # index of the checkpoint the next positions may fall in
        self.acc = audit.MerkleAccumulator()
        self.acc_last = 0  # last position added to ``acc``
        self.after_sealed = 0
        self.sealed_to = max((c.last_position for c in self.checkpoints), default=0)

    # -- chains ----------------------------------------------------------------------------
    def feed(
        self,
        key: Any,
        version: int,
        topic: str,
        data: Any,
        position: int | None,
        line: int | None = None,
        raw: bytes = b"",
    ) -> None:
        """One stored event, every case. ``key`` is the originator id as the source gives it;
        ``data`` the decoded JSON state, or an Exception if it could not be read (then ``raw`` is
        hashed as its Merkle leaf, so that the range check fails too)."""
        report = self.report
        report.events += 1
        last = self.last
        entry = last.get(key)
        leaf = None
        at_position = position
        found_at = position if position is not None else line
        if entry is not _BROKEN:
            text = entry[2] if entry else canonical_id(key)
            reason = None
            expected = entry[0] + 1 if entry else 1
            if isinstance(data, Exception):
                reason = f"the stored state cannot be read ({_short(data)})"
            elif not isinstance(data, dict):
                reason = "the stored state is not a JSON object"
            elif version != expected:
                at = "".join(
                    part
                    for part, value in ((f", at position {position}", position), (f", line {line}", line))
                    if value is not None
                )
                reason = (
                    f"version {expected} is missing (next stored is {version}{at})"
                    if version > expected
                    else f"version {version} appears again after version {expected - 1} (duplicated or reordered)"
                )
                if version > expected:
                    version, position, line = expected, None, None
            else:
                prev_text = data.get("prev_hash")
                hash_text = data.get("hash")
                try:
                    canonical = audit.canonical_bytes_from_stored(text, version, topic, data)
                except Exception as error:  # noqa: BLE001
                    canonical = None
                    reason = f"the stored state is not an event ({_short(error)})"
                if canonical is not None:
                    if prev_text is None and hash_text is None and not self.chained(topic):
                        leaf = hashlib.sha256(canonical).digest()
                        last[key] = (version, b"", text)
                    else:
                        try:
                            prev = bytes.fromhex(prev_text)  # type: ignore[arg-type]
                            leaf = bytes.fromhex(hash_text)  # type: ignore[arg-type]
                        except (TypeError, ValueError):
                            reason = "the event carries no valid hash/prev_hash"
                        else:
                            if prev != (entry[1] if entry else bytes.fromhex(audit.genesis(text))):
                                reason = _UNLINKED
                            elif hashlib.sha256(prev + canonical).digest() != leaf:
                                reason = "content does not match its hash (the stored event was altered)"
                            else:
                                last[key] = (version, leaf, text)
            if reason is not None:
                last[key] = _BROKEN
                report.add(Problem("chain", reason, text, _kind(topic), version, position, line, found_at=found_at))
        if leaf is None:
            if isinstance(data, dict):
                try:
                    leaf = bytes.fromhex(data.get("hash"))  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    leaf = None
            if leaf is None:
                leaf = hashlib.sha256(b"unreadable:" + (raw or repr(data).encode())).digest()
        if at_position is not None:
            self._leaf(at_position, leaf)

    def feed_redacted(
        self, key: str, version: int, topic: str, prev_text: Any, hash_text: Any, position: int, line: int
    ) -> None:
        """An exported event without its content: check its version and link, take its hash as given."""
        report = self.report
        report.events += 1
        report.redacted += 1
        entry = self.last.get(key)
        try:
            leaf = bytes.fromhex(hash_text)
            prev = bytes.fromhex(prev_text)
        except (TypeError, ValueError):
            leaf, prev = hashlib.sha256(repr((prev_text, hash_text)).encode()).digest(), b""
            reason: str | None = "the event carries no valid hash/prev_hash"
        else:
            reason = None
        if entry is not _BROKEN:
            text = entry[2] if entry else canonical_id(key)
            expected = entry[0] + 1 if entry else 1
            named, where = version, (position, line)  # type: tuple[int, tuple[int | None, int | None]]
            if reason is None and version != expected:
                reason = (
                    f"version {expected} is missing (next stored is {version}, at position {position}, line {line})"
                )
                if version > expected:
                    named, where = expected, (None, None)
            elif reason is None and prev != (entry[1] if entry else bytes.fromhex(audit.genesis(text))):
                reason = _UNLINKED
            if reason is None:
                self.last[key] = (version, leaf, text)
            else:
                self.last[key] = _BROKEN
                report.add(Problem("chain", reason, text, _kind(topic), named, *where, found_at=position))
        self._leaf(position, leaf)

    def feed_rows(self, rows: Iterable[tuple[int, Any, int, str, bytes]], plain: Plain) -> None:
        """Stored rows (position, originator id, version, topic, state) in log order: the fast path
        for intact events, inlined; anything unusual goes through ``feed``, which reports it."""
        last = self.last
        loads = orjson.loads
        fromhex = bytes.fromhex
        sha256 = hashlib.sha256
        canonical_bytes = audit.canonical_bytes_from_stored
        genesis = audit.genesis
        report = self.report
        cps = self.checkpoints
        acc = self.acc
        add = acc.add_digest
        cp = cps[self.cp] if self.cp < len(cps) else None
        cp_first, cp_last = (cp.first_position, cp.last_position) if cp else (0, -1)
        sealed_to = self.sealed_to
        good = 0
        for position, key, version, topic, state in rows:
            try:
                plain_state = state if plain is None else plain(state)
                data = loads(plain_state)
                entry = last.get(key)
                if entry is None:
                    if version != 1:
                        raise LookupError
                    text = canonical_id(key)
                    expected_prev = fromhex(genesis(text))
                else:
                    if entry[0] + 1 != version:
                        raise LookupError
                    expected_prev = entry[1]
                    text = entry[2]
                prev = fromhex(data["prev_hash"])
                if prev != expected_prev:
                    raise LookupError
                digest = sha256(prev + canonical_bytes(text, version, topic, data, plain_state)).digest()
                if digest.hex() != data["hash"]:
                    raise LookupError
            except Exception:  # noqa: BLE001 - the general path finds and reports what it is
                report.events += good
                good = 0
                self.feed(key, version, topic, _decode(state, plain), position, None, state)
                acc = self.acc
                add = acc.add_digest
                cp = cps[self.cp] if self.cp < len(cps) else None
                cp_first, cp_last = (cp.first_position, cp.last_position) if cp else (0, -1)
                continue
            last[key] = (version, digest, text)
            good += 1
            if cp_first <= position <= cp_last:
                add(digest)
                self.acc_last = position
            elif position > sealed_to:
                self.after_sealed += 1
            else:
                self._leaf(position, digest)
                acc = self.acc
                add = acc.add_digest
                cp = cps[self.cp] if self.cp < len(cps) else None
                cp_first, cp_last = (cp.first_position, cp.last_position) if cp else (0, -1)
        report.events += good

    # -- checkpoints -----------------------------------------------------------------------
    def _leaf(self, position: int, leaf: bytes) -> None:
        cps = self.checkpoints
        while self.cp < len(cps) and cps[self.cp].last_position < position:
            self._close()
        if self.cp < len(cps) and cps[self.cp].first_position <= position:
            self.acc.add_digest(leaf)
            self.acc_last = position
        elif position > self.sealed_to:
            self.after_sealed += 1

    def _close(self) -> None:
        c = self.checkpoints[self.cp]
        acc = self.acc
        root = acc.root()
        if acc.count == c.count and root == c.merkle_root:
            self.report.checkpoints_verified += 1
        else:
            if acc.count < c.count:
                if acc.count == 0:
                    reason = f"all {c.count} sealed events of the range are missing from the log"
                else:
                    reason = (
                        f"{c.count - acc.count} of its {c.count} sealed events are missing from the log "
                        f"(the range now holds {acc.count}, the last at position {self.acc_last})"
                    )
                if self.acc_last < c.last_position:
                    reason += "; events were deleted or the log's tail was truncated"
                else:
                    reason += "; events were deleted"
            elif acc.count > c.count:
                reason = (
                    f"the range holds {acc.count} events, {acc.count - c.count} more than sealed (events were inserted)"
                )
            else:
                reason = (
                    "the Merkle root of the range differs from the sealed root "
                    "(an event hash in the range was rewritten, or events were moved)"
                )
            self.report.add(Problem("checkpoint", reason, checkpoint=_cp_ref(c)))
        self.cp += 1
        self.acc = audit.MerkleAccumulator()
        self.acc_last = 0

    def finish(self) -> None:
        while self.cp < len(self.checkpoints):
            self._close()
        self.report.aggregates = len(self.last)
        self.report.unsealed = self.after_sealed


def _cp_ref(c: Checkpoint) -> dict[str, int]:
    return {
        "sequence": c.sequence,
        "first_position": c.first_position,
        "last_position": c.last_position,
        "count": c.count,
    }


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) < 160 else text[:157] + "..."


def check_seal_log(
    report: Report,
    stored: Iterable[tuple[int, str, Any, int | None]],
    trusted: set[str] | None,
) -> list[Checkpoint]:
    """Verify the seal log's own chain and every checkpoint's signature; return the checkpoints
    whose record is intact (their ranges are then checked against the log). ``stored``: (version,
    topic, decoded state or Exception, line)."""
    verifier = Verifier(Report("seal log"))
    found: list[Checkpoint] = []
    for version, topic, data, line in stored:
        verifier.feed(str(CHECKPOINTS_ID), version, topic, data, None, line)
        if topic != _SEALED_TOPIC or isinstance(data, Exception):
            continue
        try:
            found.append(Checkpoint.from_stored(version, data))
        except (KeyError, TypeError, ValueError) as error:
            report.add(Problem("seal-log", f"seal log version {version} is not a checkpoint ({_short(error)})"))
    by_version = {c.version: c for c in found}
    for problem in verifier.report.problems:
        problem.kind = "seal-log"
        sealed = by_version.get(problem.version or 0)
        if sealed is not None:
            problem.checkpoint = _cp_ref(sealed)
        report.add(problem)
    report.checkpoints_total = len(found)
    report.key_pinned = trusted is not None
    good: list[Checkpoint] = []
    previous_last = 0
    for index, c in enumerate(found, start=1):
        reason = c.signature_problem()
        if reason is None and c.sequence != index:
            reason = f"its sequence number is {c.sequence}, expected {index}"
        if reason is None and c.first_position <= previous_last:
            reason = f"its range overlaps the previous checkpoint (which ends at position {previous_last})"
        if reason is None and trusted is not None and c.key_fingerprint not in trusted:
            reason = f"signed by key {c.key_fingerprint}, which is not a trusted audit key of this deployment"
        if reason is not None:
            report.add(Problem("checkpoint", reason, checkpoint=_cp_ref(c)))
        else:
            good.append(c)
            previous_last = c.last_position
            if c.key_fingerprint not in report.signers:
                report.signers.append(c.key_fingerprint)
    return good


def _decode(state: bytes, plain: Plain) -> Any:
    try:
        return orjson.loads(plain(state) if plain else state)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        if plain is not None:
            try:
                plain(state)
            except Exception:  # noqa: BLE001
                return ValueError("it cannot be decrypted: the ciphertext was altered or the key differs")
        return error


def verify_store(
    app: TaskLedger,
    *,
    trusted: set[str] | None = None,
    page: int = PAGE,
    progress: Callable[[int, int], None] | None = None,
    lean: bool = True,
) -> Report:
    """``audit verify --all``: every chain of the notification log, the seal log, every checkpoint.
    ``lean=False`` reads through ``recorder.select_notifications`` (slower; same result)."""
    started = time.perf_counter()
    report = Report("all")
    plain = plaintext(app)
    seal_log = SealLog(app)
    stored_seals = [(s.originator_version, s.topic, _decode(s.state, plain), None) for s in seal_log.stored()]
    good = check_seal_log(report, stored_seals, trusted)
    head = log_head(app)
    report.head = head
    verifier = Verifier(report, good)
    for found in rows(app, 1, head, page, lean):
        verifier.feed_rows(found, plain)
        if progress:
            progress(found[-1][0], head)
    verifier.finish()
    _order(report)
    report.seconds = time.perf_counter() - started
    return report


def _order(report: Report) -> None:
    """Chain breaks first, in log order; then seal-log and checkpoint findings."""
    rank = {"chain": 0, "export": 1, "seal-log": 2, "checkpoint": 3}
    report.problems.sort(
        key=lambda p: (
            rank.get(p.kind, 9),
            p.found_at or 0,
            p.checkpoint["sequence"] if p.checkpoint else 0,
        )
    )


def record_level(app: TaskLedger, aggregate_id: UUID) -> str | None:
    """The confidentiality its creation event records (None: no level, e.g. the calendar)."""
    first = app.recorder.select_events(aggregate_id, lte=1)
    data = _decode(first[0].state, plaintext(app)) if first else None
    level = data.get("confidentiality") if isinstance(data, dict) else None
    return level if isinstance(level, str) else None


def redact(app: TaskLedger, report: Report, reader_level: Confidentiality) -> int:
    """Withhold from ``report`` the ids of records above ``reader_level`` (their findings stay,
    with the record's kind and level). Returns how many findings were redacted."""
    levels: dict[str, str | None] = {}
    redacted = 0
    for problem in report.problems:
        if problem.aggregate_id is None or problem.kind != "chain":
            continue
        text = problem.aggregate_id
        if text not in levels:
            levels[text] = record_level(app, UUID(text))
        if _above(reader_level, levels[text]):
            problem.aggregate_type = f"a {levels[text]} {problem.aggregate_type} (id withheld: above your clearance)"
            problem.aggregate_id = "-"
            redacted += 1
    return redacted


def verify_aggregate(app: TaskLedger, aggregate_id: UUID) -> Report:
    """``audit verify --task ID``: one aggregate's chain, in version order (select_events)."""
    started = time.perf_counter()
    report = Report("task")
    plain = plaintext(app)
    stored = app.recorder.select_events(aggregate_id)
    if not stored:
        raise NotFound("task", f"nothing recorded for {aggregate_id}")
    verifier = Verifier(report)
    for s in stored:
        verifier.feed(s.originator_id, s.originator_version, s.topic, _decode(s.state, plain), None, None, s.state)
    verifier.finish()
    report.seconds = time.perf_counter() - started
    return report


# ================================================================================ export
def _above(reader_level: Confidentiality | None, record_level: str | None) -> bool:
    """Is a record of ``record_level`` above what the reader may read? (None reader: no limit.)"""
    if reader_level is None:
        return False
    from domain.clearance import may_read

    level = _LEVELS.get(record_level or Confidentiality.REGULAR.value)
    return level is None or not may_read(reader_level, level)


def _leaf_of(data: Any, state: bytes) -> bytes:
    """The Merkle leaf input of a stored event: its hash (as verify takes it)."""
    try:
        return bytes.fromhex(data["hash"])
    except (TypeError, KeyError, ValueError):
        return hashlib.sha256(b"unreadable:" + state).digest()


class _Proofs:
    """While a partial export scans the log: the leaves of every sealed range that holds an
    exported event, and at the end the inclusion proof (audit path) of each exported event."""

    def __init__(self, checkpoints: Sequence[Checkpoint]) -> None:
        self.checkpoints = sorted(checkpoints, key=lambda c: c.first_position)
        self.index = 0
        self.leaves = bytearray()
        self.exported: list[tuple[int, int]] = []  # (leaf index, position)
        self.done: list[dict[str, Any]] = []

    def sealed(self, position: int) -> bool:
        cps = self.checkpoints
        while self.index < len(cps) and cps[self.index].last_position < position:
            self._close()
        return self.index < len(cps) and cps[self.index].first_position <= position

    def add(self, position: int, leaf: bytes, exported: bool) -> None:
        if exported:
            self.exported.append((len(self.leaves) // 32, position))
        self.leaves += leaf

    def _close(self) -> None:
        c = self.checkpoints[self.index]
        if self.exported:
            leaves = [bytes(self.leaves[k : k + 32]) for k in range(0, len(self.leaves), 32)]
            paths = audit.merkle_proofs(leaves, [i for i, _ in self.exported])
            self.done += [{"position": p, "checkpoint": c.sequence, "path": paths[i]} for i, p in self.exported]
        self.index += 1
        self.leaves = bytearray()
        self.exported = []

    def finish(self) -> list[dict[str, Any]]:
        while self.index < len(self.checkpoints):
            self._close()
        return self.done


def export(
    app: TaskLedger,
    out: Path,
    *,
    task: UUID | None = None,
    directive: UUID | None = None,
    key: Ed25519PrivateKey,
    reader_level: Confidentiality | None = None,
    page: int = PAGE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``out/events.jsonl`` and ``out/manifest.json`` for one task, one directive with all
    its tasks (subtasks included), or the whole log (neither given). Written to a temporary
    directory and moved into place at the end: a refused or failed export leaves nothing.

    ``reader_level`` (the reader's clearance; None: no limit): a task or directive asked for by id
    that is above it is refused (NotAuthorized), as any single-record read is. In a whole-log
    export, the events of records above it are written *redacted*: position, id, version, topic,
    hash and prev_hash, without the state; their links and the checkpoint roots stay verifiable."""
    if task is not None and directive is not None:
        raise ValidationError("scope", "give --task or --directive, not both")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValidationError("out", f"{out} exists and is not empty")
    if task:
        scope: dict[str, str] = {"kind": "task", "id": str(task)}
    elif directive:
        scope = {"kind": "directive", "id": str(directive)}
    else:
        scope = {"kind": "all"}
    plain = plaintext(app)
    seal_events = [
        {"version": s.originator_version, "topic": s.topic, "state": _decode(s.state, plain)}
        for s in SealLog(app).stored()
    ]
    for entry in seal_events:
        if not isinstance(entry["state"], dict):
            raise ValidationError(
                "seal_log", f"seal log version {entry['version']} cannot be read; run 'taskledger audit verify'"
            )
    sealed = [Checkpoint.from_stored(e["version"], e["state"]) for e in seal_events if e["topic"] == _SEALED_TOPIC]
    head = log_head(app)  # after the seal log: every checkpoint read ends at or before it
    proofs = _Proofs(sealed) if scope["kind"] != "all" else None
    wanted: set[str] | None = None if scope["kind"] == "all" else {scope["id"]}
    directive_hex = directive.hex if directive else None
    aggregates: dict[str, dict[str, Any]] = {}
    levels: dict[str, str] = {}
    redacted: dict[str, int] = {}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        digest = hashlib.sha256()
        count = 0
        with (staging / "events.jsonl").open("wb") as handle:
            for found in rows(app, 1, head, page):
                lines = []
                for position, oid, version, topic, state in found:
                    text = canonical_id(oid)
                    if wanted is not None and text not in wanted:
                        data = None
                        if directive_hex and topic.endswith(":Task.Assigned"):
                            data = _decode(state, plain)
                            ref = data.get("directive_id") if isinstance(data, dict) else None
                            if isinstance(ref, dict) and ref.get("_data_") == directive_hex:
                                wanted.add(text)
                        if text not in wanted:
                            if proofs is not None and proofs.sealed(position):
                                if data is None:
                                    data = _decode(state, plain)
                                proofs.add(position, _leaf_of(data, state), exported=False)
                            continue
                    else:
                        data = _decode(state, plain)
                    if isinstance(data, Exception) or not isinstance(data, dict):
                        raise ValidationError(
                            "log",
                            f"{_kind(topic)} {text} version {version} (position {position}) cannot be read "
                            f"({_short(data) if isinstance(data, Exception) else 'not an object'}); "
                            "run 'taskledger audit verify'",
                        )
                    if topic.endswith(_CREATION_SUFFIXES):
                        levels[text] = str(data.get("confidentiality"))
                    line: dict[str, Any] = {
                        "position": position,
                        "aggregate_id": text,
                        "version": version,
                        "topic": topic,
                        "hash": data.get("hash"),
                        "prev_hash": data.get("prev_hash"),
                    }
                    if _above(reader_level, levels.get(text)):
                        if wanted is not None:
                            raise NotAuthorized(
                                "clearance",
                                f"{_kind(topic)} {text} is {levels.get(text)}; the reader is cleared for "
                                f"{reader_level.value if reader_level else '?'} only; nothing was exported",
                            )
                        line["redacted"] = True
                        redacted[text] = redacted.get(text, 0) + 1
                    else:
                        line["state"] = data
                    lines.append(orjson.dumps(line))
                    if proofs is not None and proofs.sealed(position):
                        proofs.add(position, _leaf_of(data, state), exported=True)
                    entry = aggregates.get(text)
                    if entry is None:
                        entry = aggregates[text] = {
                            "type": _kind(topic),
                            "events": 0,
                            "first_version": version,
                            "first_hash": data.get("hash"),
                        }
                    entry["events"] += 1
                    entry["last_version"] = version
                    entry["last_hash"] = data.get("hash")
                if lines:
                    blob = b"\n".join(lines) + b"\n"
                    handle.write(blob)
                    digest.update(blob)
                    count += len(lines)
                if progress:
                    progress(found[-1][0], head)
        if not aggregates:
            raise NotFound(scope["kind"], f"nothing recorded for {scope.get('id', 'the store')}")
        proof_file = None
        if proofs is not None:
            blob = b"".join(orjson.dumps(p) + b"\n" for p in proofs.finish())
            (staging / "proofs.jsonl").write_bytes(blob)
            proof_file = {
                "file": "proofs.jsonl",
                "count": blob.count(b"\n"),
                "sha256": hashlib.sha256(blob).hexdigest(),
            }
        public = public_key_text(key)
        manifest: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "tool": {"name": "taskledger", "version": _tool_version()},
            "scope": scope,
            "exported_at": audit.utc_text(app.clock().astimezone(timezone.utc)),
            "reader_level": reader_level.value if reader_level else None,
            "head_position": head,
            "events": {"file": "events.jsonl", "count": count, "sha256": digest.hexdigest()},
            "proofs": proof_file,
            "redacted": {"events": sum(redacted.values()), "aggregates": dict(sorted(redacted.items()))},
            "aggregates": dict(sorted(aggregates.items())),
            "checkpoints": [
                {**c.to_dict(), "complete_in_export": scope["kind"] == "all" and c.last_position <= head}
                for c in sealed
            ],
            "seal_log": seal_events,
        }
        manifest["signature"] = {
            "algorithm": "ed25519",
            "public_key": public,
            "key_fingerprint": key_fingerprint(public),
            "value": _sign(key, _manifest_message(manifest)),
        }
        (staging / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _manifest_message(manifest: dict[str, Any]) -> bytes:
    """What the manifest's signature is over: the manifest without its signature, canonical JSON."""
    return orjson.dumps({k: v for k, v in manifest.items() if k != "signature"}, option=orjson.OPT_SORT_KEYS)


def _tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("taskledger")
    except Exception:  # noqa: BLE001 - not installed: the source tree
        return "0.1.0"


# ================================================================================ offline verification
def _read_proofs(directory: Path, manifest: dict[str, Any], report: Report) -> dict[int, tuple[int, list[str]]]:
    """position -> (checkpoint sequence, audit path), from proofs.jsonl after checking its SHA-256."""
    meta = manifest.get("proofs")
    if not isinstance(meta, dict):
        return {}
    try:
        blob = (directory / str(meta.get("file") or "proofs.jsonl")).read_bytes()
    except OSError as error:
        report.add(Problem("export", f"proofs.jsonl cannot be read ({_short(error)})"))
        return {}
    if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
        report.add(Problem("export", "proofs.jsonl was changed after the export: its SHA-256 is not the manifest's"))
    found: dict[int, tuple[int, list[str]]] = {}
    for number, raw in enumerate(blob.splitlines(), start=1):
        try:
            entry = orjson.loads(raw)
            found[int(entry["position"])] = (int(entry["checkpoint"]), [str(step) for step in entry["path"]])
        except (ValueError, KeyError, TypeError):
            report.add(Problem("export", f"proofs.jsonl line {number} is not an inclusion proof"))
    return found


def _check_inclusion(
    checkpoint: Checkpoint,
    proof: tuple[int, list[str]] | None,
    hash_text: Any,
    proven: dict[int, int],
    failed: dict[int, list[str]],
    where: str,
) -> None:
    """Is this exported event's hash in the signed root of the checkpoint whose range holds it?"""
    if proof is not None and proof[0] == checkpoint.sequence:
        try:
            root = audit.merkle_path_root(str(hash_text), proof[1])
        except ValueError:
            root = None
        if root == checkpoint.merkle_root:
            proven[checkpoint.sequence] = proven.get(checkpoint.sequence, 0) + 1
            return
        failed.setdefault(checkpoint.sequence, []).append(where)
    else:
        failed.setdefault(checkpoint.sequence, []).append(where + " (no proof)")


def _inclusion_problems(
    report: Report, partial: Sequence[Checkpoint], proven: dict[int, int], failed: dict[int, list[str]]
) -> None:
    for c in partial:
        bad = failed.get(c.sequence)
        if not bad:
            continue
        total = len(bad) + proven.get(c.sequence, 0)
        report.add(
            Problem(
                "checkpoint",
                f"{len(bad)} of the {total} exported events in its range are not proven included in its signed root "
                f"(first: {bad[0]}): the log's events in the range changed after it was sealed",
                checkpoint=_cp_ref(c),
            )
        )


def verify_export(directory: Path, *, trusted: set[str] | None = None) -> Report:
    """``audit verify --export DIR``: the export alone, no database. Recomputes every hash and chain
    from the exported JSON, the SHA-256 of events.jsonl, the manifest's signature, counts and first/
    last hashes, the seal log, every checkpoint's signature, and the Merkle root of every checkpoint
    whose whole range is in the export."""
    started = time.perf_counter()
    directory = Path(directory)
    report = Report("export")
    try:
        manifest = orjson.loads((directory / "manifest.json").read_bytes())
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:
        report.add(Problem("export", f"manifest.json cannot be read ({_short(error)})"))
        return report
    if manifest.get("format") != EXPORT_FORMAT:
        report.add(Problem("export", f"manifest.json is not a {EXPORT_FORMAT} manifest"))
        return report
    scope = manifest.get("scope") or {}
    report.scope = f"export of {scope.get('kind', '?')}" + (f" {scope['id']}" if scope.get("id") else "")
    report.head = int(manifest.get("head_position") or 0)

    # the manifest's own signature
    signature = manifest.get("signature") or {}
    public = str(signature.get("public_key"))
    try:
        fingerprint: str | None = key_fingerprint(public)
    except ValidationError:
        fingerprint = None
    if fingerprint is None or fingerprint != signature.get("key_fingerprint"):
        report.add(Problem("export", "manifest.json: the signing key and its fingerprint do not match"))
    elif not signature_valid(public, _manifest_message(manifest), str(signature.get("value"))):
        report.add(Problem("export", "manifest.json was edited: its signature does not verify"))
    elif trusted is not None and fingerprint not in trusted:
        report.add(Problem("export", f"manifest.json is signed by key {fingerprint}, which is not trusted"))

    # the seal log and checkpoint signatures
    seal_entries = manifest.get("seal_log") or []
    good = check_seal_log(
        report,
        [
            (e.get("version"), e.get("topic"), e.get("state"), None)  # type: ignore[misc]
            for e in seal_entries
            if isinstance(e, dict)
        ],
        trusted,
    )
    complete = [c for c in good if scope.get("kind") == "all" and c.last_position <= report.head]
    partial = [c for c in good if c not in complete]
    proof_index = _read_proofs(directory, manifest, report) if partial else {}
    if partial and manifest.get("proofs") is None:  # an export without inclusion proofs
        report.checkpoints_unchecked = [f"{c.label()}: its range is not wholly in this export" for c in partial]
        partial = []
    starts = [c.first_position for c in partial]
    proven: dict[int, int] = {}
    failed: dict[int, list[str]] = {}

    # the events
    verifier = Verifier(report, complete)
    expected = manifest.get("events") or {}
    digest = hashlib.sha256()
    previous_position = 0
    counts: dict[str, dict[str, Any]] = {}
    redacted_listed: dict[str, int] = dict((manifest.get("redacted") or {}).get("aggregates") or {})
    redacted_seen: dict[str, int] = {}
    try:
        handle = (directory / str(expected.get("file") or "events.jsonl")).open("rb")
    except OSError as error:
        report.add(Problem("export", f"events.jsonl cannot be read ({_short(error)})"))
        return report
    with handle:
        for number, raw in enumerate(handle, start=1):
            digest.update(raw)
            try:
                line = orjson.loads(raw)
                position = int(line["position"])
                text = str(line["aggregate_id"])
                version = int(line["version"])
                topic = str(line["topic"])
                data = None if line.get("redacted") is True and "state" not in line else line["state"]
            except (ValueError, KeyError, TypeError) as error:
                report.add(Problem("export", f"line {number} is not an exported event ({_short(error)})", line=number))
                continue
            if partial:
                k = bisect.bisect_right(starts, position) - 1
                if k >= 0 and position <= partial[k].last_position:
                    _check_inclusion(
                        partial[k],
                        proof_index.get(position),
                        line.get("hash"),
                        proven,
                        failed,
                        f"{_kind(topic)} {text} version {version}, line {number}",
                    )
            if data is None:  # redacted: above the reader's clearance when exported
                if redacted_listed.get(text, 0) <= redacted_seen.get(text, 0):
                    report.add(
                        Problem(
                            "export",
                            "a redacted event the manifest does not list as redacted",
                            text,
                            _kind(topic),
                            version,
                            position,
                            number,
                        )
                    )
                redacted_seen[text] = redacted_seen.get(text, 0) + 1
                verifier.feed_redacted(text, version, topic, line.get("prev_hash"), line.get("hash"), position, number)
                entry = counts.setdefault(text, {"events": 0, "first_hash": line.get("hash")})
                entry["events"] += 1
                entry["last_hash"] = line.get("hash")
                previous_position = max(previous_position, position)
                continue
            if position <= previous_position:
                report.add(
                    Problem("export", f"position {position} does not follow position {previous_position}", line=number)
                )
            previous_position = max(previous_position, position)
            if not isinstance(data, dict):
                data = ValueError("the state is not a JSON object")
            elif data.get("hash") != line.get("hash") or data.get("prev_hash") != line.get("prev_hash"):
                report.add(
                    Problem(
                        "chain",
                        "the line's hash/prev_hash differ from its state's",
                        text,
                        _kind(topic),
                        version,
                        position,
                        number,
                    )
                )
            verifier.feed(text, version, topic, data, position, number, raw)
            own = data.get("hash") if isinstance(data, dict) else None
            entry = counts.setdefault(text, {"events": 0, "first_hash": own})
            entry["events"] += 1
            entry["last_hash"] = own
    verifier.finish()
    report.checkpoints_proven = proven
    _inclusion_problems(report, partial, proven, failed)
    if digest.hexdigest() != expected.get("sha256"):
        report.add(
            Problem(
                "export",
                f"events.jsonl was changed after the export: its SHA-256 {digest.hexdigest()} is "
                f"not the manifest's {expected.get('sha256')}",
            )
        )
    if report.events != expected.get("count"):
        report.add(
            Problem("export", f"events.jsonl holds {report.events} events, the manifest says {expected.get('count')}")
        )
    if redacted_seen != {k: v for k, v in redacted_listed.items() if v}:
        report.add(Problem("export", "the redacted events in events.jsonl are not those the manifest lists"))
    listed = manifest.get("aggregates") or {}
    for text in sorted(set(listed) | set(counts)):
        have, want = counts.get(text), listed.get(text)
        if want is None:
            report.add(Problem("export", f"aggregate {text} is in events.jsonl but not in the manifest"))
        elif have is None:
            report.add(Problem("export", f"aggregate {text} is in the manifest but has no event in events.jsonl"))
        else:
            for name in ("events", "first_hash", "last_hash"):
                if have.get(name) != want.get(name):
                    report.add(
                        Problem(
                            "export",
                            f"aggregate {text}: the manifest says {name} {want.get(name)}, "
                            f"events.jsonl gives {have.get(name)}",
                        )
                    )
    if scope.get("kind") != "all":
        report.unsealed = 0
    _order(report)
    report.seconds = time.perf_counter() - started
    return report


# ================================================================================ command line
def _cli() -> Any:
    """connectors.cli, imported when a command runs (it imports this module while being built)."""
    from connectors import cli

    return cli


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return _cli().guarded(fn)(*args, **kwargs)

    return wrapper


JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on large stores")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="ROLE:AGENCY:USER (or env TASKLEDGER_ACTOR)")]
TrustedOpt = Annotated[
    list[str] | None,
    typer.Option("--trusted-key", help="fingerprint of an audit key to accept (repeatable; default: this home's key)"),
]


class _Bar:
    """A rich progress bar on stderr, shown only for large stores."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.progress = None
        if enabled and total >= PROGRESS_FROM:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.job = self.progress.add_task(label, total=total)
            self.progress.start()

    def __call__(self, done: int, total: int | None = None) -> None:
        if self.progress is not None:
            self.progress.update(self.job, completed=done)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()


def _settings() -> Any:
    return _cli()._settings()


def _trusted(given: list[str] | None) -> set[str] | None:
    if given:
        return {g.strip().lower() for g in given}
    own = deployment_fingerprint(_settings().pki_dir)
    return {own} if own else None


def _print_report(report: Report, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict()).decode() + "\n")
        return
    if report.ok:
        print(report.summary())
        print(f"{report.events:,} events in {report.seconds:.2f} s ({report.rate():,.0f} events/s)")
        return
    print(report.summary())
    rest = report.problems[1:]
    if rest:
        print(f"{len(rest) + report.more_problems} more problem(s):")
        for problem in rest[:20]:
            print(f"  - {problem.describe()}")
        if len(rest) > 20 or report.more_problems:
            print("  ... (--json lists them all)")
    print(f"{report.events:,} events read in {report.seconds:.2f} s")


@audit_app.command("verify")
@guarded
def verify_cmd(
    task: Annotated[str | None, typer.Option("--task", help="verify one task's (or any aggregate's) chain")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="every chain, the seal log and every checkpoint (default)")
    ] = False,
    export_dir: Annotated[Path | None, typer.Option("--export", help="verify an export directory offline")] = None,
    trusted_key: TrustedOpt = None,
    actor: ActorOpt = None,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Recompute hash chains and signed checkpoints. Exit 0 with the count verified, 1 naming the
    first broken aggregate and version (or checkpoint range). With an actor (--actor or
    TASKLEDGER_ACTOR), the ids of records above its clearance are withheld from the findings."""
    if sum(bool(x) for x in (task, all_, export_dir)) > 1:
        raise ValidationError("scope", "give one of --task, --all, --export")
    if export_dir is not None:
        report = verify_export(export_dir, trusted={k.lower() for k in trusted_key} if trusted_key else None)
    else:
        app = _cli()._ledger()
        level = _reader_level(app, actor, "verify audit records")
        if task is not None:
            task_id = _uuid(task, "task")
            if level is not None and _above(level, record_level(app, task_id)):
                raise NotAuthorized(
                    "clearance",
                    f"{task_id} is {record_level(app, task_id)}; the reader is cleared for {level.value} only",
                )
            report = verify_aggregate(app, task_id)
        else:
            with _Bar("verifying", log_head(app), progress and not as_json) as bar:
                report = verify_store(app, trusted=_trusted(trusted_key), progress=bar)
            if level is not None:
                redact(app, report, level)
    _print_report(report, as_json)
    if not report.ok:
        raise typer.Exit(1)


def _reader_level(app: TaskLedger, actor: str | None, what: str) -> Confidentiality | None:
    """The clearance of the acting reader, or None when no actor is given (the operator's run)."""
    cli = _cli()
    if not (actor or _settings().actor):
        return None
    from connectors.audit_timeline import reader_level
    from domain.clearance import require_reader

    reader = cli.actor_of(actor)
    require_reader(reader, what)
    return reader_level(app, reader)  # type: ignore[no-any-return]


@audit_app.command("checkpoint")
@guarded
def checkpoint_cmd(
    every: Annotated[
        int | None,
        typer.Option("--every", help="seal in ranges of N events (a remainder of fewer waits); default: one range"),
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="ROLE:AGENCY:USER recorded on the checkpoint")] = None,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Seal the log since the last checkpoint: Merkle root of the event hashes, signed with the
    deployment's audit key ($TASKLEDGER_HOME/pki/audit.key, created on first use)."""
    cli = _cli()
    app = cli._ledger()
    key = ensure_audit_key(_settings().pki_dir)
    who = cli.actor_of(actor).to_dict() if actor or _settings().actor else None
    with _Bar("sealing", log_head(app), progress and not as_json) as bar:
        made = seal(app, key, every=every, actor=who, progress=lambda done: bar(done))
    data = {"sealed": [c.to_dict() for c in made], "key_fingerprint": key_fingerprint(public_key_text(key))}
    if as_json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    elif not made:
        print("nothing to seal: no event since the last checkpoint" + (f" fills a range of {every}" if every else ""))
    else:
        for c in made:
            print(f"sealed {c.label()}: root {c.merkle_root} signed by {c.key_fingerprint[:16]}")


@audit_app.command("export")
@guarded
def export_cmd(
    out: Annotated[Path, typer.Option("--out", help="directory to write events.jsonl and manifest.json to")],
    task: Annotated[str | None, typer.Option("--task", help="one task")] = None,
    directive: Annotated[
        str | None, typer.Option("--directive", help="a directive (id or symbol) and all its tasks")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="the whole log")] = False,
    actor: ActorOpt = None,
    progress: ProgressOpt = True,
    as_json: JsonOpt = False,
) -> None:
    """Export events (plaintext JSON lines) and a signed manifest that 'audit verify --export DIR'
    checks offline. Readers (auditor, inspector, central office) only, within their clearance."""
    if sum(bool(x) for x in (task, directive, all_)) != 1:
        raise ValidationError("scope", "give exactly one of --task ID, --directive ID, --all")
    cli = _cli()
    reader = cli.actor_of(actor)  # required: an export is a read
    app = cli._ledger()
    level = _reader_level(app, str(reader), "export audit records")
    directive_id = None
    if directive:
        directive_id = cli.directive_ref(directive) if hasattr(cli, "directive_ref") else _uuid(directive, "directive")
    key = ensure_audit_key(_settings().pki_dir)
    with _Bar("exporting", log_head(app), progress and not as_json) as bar:
        manifest = export(
            app,
            out,
            task=_uuid(task, "task") if task else None,
            directive=directive_id,
            key=key,
            reader_level=level,
            progress=bar,
        )
    data = {
        "out": str(out),
        "events": manifest["events"]["count"],
        "aggregates": len(manifest["aggregates"]),
        "checkpoints": len(manifest["checkpoints"]),
        "redacted": manifest["redacted"]["events"],
        "sha256": manifest["events"]["sha256"],
    }
    if as_json:
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
    else:
        print(
            f"exported {data['events']:,} events of {data['aggregates']:,} aggregates and {data['checkpoints']} "
            f"checkpoints to {out} (events.jsonl sha256 {data['sha256'][:16]}...)"
            + (
                f"; {data['redacted']:,} events above your clearance exported without content"
                if data["redacted"]
                else ""
            )
        )


def _uuid(text: str, field: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ValidationError(field, f"{text!r} is not an id (UUID)") from None
