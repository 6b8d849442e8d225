"""The append-only, hash-chained event log: the registry's chain of custody.

Each event's ``hash`` is the SHA-256 of the canonical JSON of
``{seq, event_at, actor, action, subject, payload, prev_hash}``; ``prev_hash`` is the previous event's
hash (64 zeros for the first). Changing, removing or reordering any row breaks the chain from there on,
and :func:`verify_chain` names the first broken entry.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from registry.paths import already_clean, clean_obj, clean_text
from registry.store._duck import ARROW_IN, with_arrow

GENESIS = "0" * 64


def actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


#: the encoder ``json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)``
#: builds on every call, built once (the same text; a batch of small files encodes thousands of payloads)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, no whitespace, UTF-8) used for event hashing."""
    return _CANONICAL.encode(obj)


def _timestamp(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(seq: int, event_at: str, who: str, action: str, subject: str | None, payload: Any, prev: str) -> str:
    body = canonical(
        {
            "seq": seq,
            "event_at": event_at,
            "actor": who,
            "action": action,
            "subject": subject,
            "payload": payload,
            "prev_hash": prev,
        }
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def payload_text(payload: Any) -> str:
    """The canonical JSON text an event stores and hashes for ``payload``, with text from file names that
    are not UTF-8 in its display form (registry/paths.py). Re-hashing reads the stored text back, so it
    must be the text of what JSON reads back: it is, as ``clean_obj`` makes every key a string (keys
    that are not strings would sort otherwise once they are) and tuples lists, and every value JSON
    writes (numbers by their ``repr``, other objects as strings) reads back as the same text
    (tests/test_events.py checks every kind against that round trip)."""
    return canonical(payload if already_clean(payload) else clean_obj(payload))


def _enc(value: str | None) -> str:
    return _CANONICAL.encode(value)


def event_hash_of_text(seq: int, event_at: str, who: str, action: str, subject: str | None, payload: str, prev: str) -> str:
    """:func:`event_hash` of an event whose payload is given as its canonical JSON text (``payload_text``):
    the canonical text of the whole event is built around it (its keys in sorted order) instead of
    encoding the payload once more."""
    body = (
        f'{{"action":{_enc(action)},"actor":{_enc(who)},"event_at":{_enc(event_at)},"payload":{payload},'
        f'"prev_hash":{_enc(prev)},"seq":{int(seq)},"subject":{_enc(subject)}}}'
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


class EventLog:
    """Appends events within the caller's transaction, keeping the chain head in memory."""

    def __init__(self, con: duckdb.DuckDBPyConnection, head: tuple[int, str] | None = None) -> None:
        """``head``: the log's last (seq, hash) when the caller knows it (a writer that has held ``con``
        since its own last append: no other process can write meanwhile), else it is read (a scan of the
        events table, which grows with the log)."""
        self.con = con
        if head is None:
            rows = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchall()
            head = (int(rows[0][0]), str(rows[0][1])) if rows else (0, GENESIS)
        self.seq, self.head = head
        self.actor = actor()
        self._pending: list[tuple[Any, ...]] = []
        self._at: tuple[datetime, str] | None = None  # the last time given and its text (a batch shares one)

    def append(self, action: str, subject: str | None, payload: dict[str, Any], at: datetime | None = None) -> str:
        # the payload is stored as its canonical JSON text, so that re-hashing reads back what was hashed
        return self.append_text(action, subject, payload_text(payload), at)

    def append_text(self, action: str, subject: str | None, text: str, at: datetime | None = None) -> str:
        """:meth:`append` of the payload whose :func:`payload_text` is ``text`` (made elsewhere: a scan's
        worker makes its blobs' payload texts)."""
        at = at or datetime.now(UTC)
        if self._at is not None and self._at[0] is at:
            ts = self._at[1]
        else:
            ts = _timestamp(at)
            self._at = (at, ts)
        seq = self.seq + 1
        subject = clean_text(subject) if subject is not None else None
        h = event_hash_of_text(seq, ts, self.actor, action, subject, text, self.head)
        self._pending.append((seq, ts, self.actor, action, subject, text, self.head, h))
        self.seq, self.head = seq, h
        return h

    def flush(self) -> None:
        """Insert pending events (call inside the transaction that made the changes)."""
        if not self._pending:
            return
        import pyarrow as pa

        cols = list(zip(*self._pending, strict=True))
        tbl = pa.table(
            {
                "seq": pa.array(cols[0], pa.int64()),
                "event_at": pa.array(cols[1], pa.string()),
                "actor": pa.array(cols[2], pa.string()),
                "action": pa.array(cols[3], pa.string()),
                "subject": pa.array(cols[4], pa.string()),
                "payload": pa.array(cols[5], pa.string()),
                "prev_hash": pa.array(cols[6], pa.string()),
                "hash": pa.array(cols[7], pa.string()),
            }
        )
        with_arrow(
            self.con,
            "INSERT INTO events SELECT seq, CAST(event_at AS TIMESTAMPTZ), actor, action, subject, "
            f"CAST(payload AS JSON), prev_hash, hash FROM {ARROW_IN}",
            tbl,
        )
        self._pending.clear()

    def rollback(self, seq: int, head: str) -> None:
        self._pending.clear()
        self.seq, self.head = seq, head


def append_event(con: duckdb.DuckDBPyConnection, action: str, subject: str | None, payload: dict[str, Any]) -> str:
    """Append one event now (inside the caller's transaction); return its hash."""
    log = EventLog(con)
    h = log.append(action, subject, payload)
    log.flush()
    return h


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    n_events: int
    head: str
    first_broken_seq: int | None = None
    reason: str | None = None


def verify_chain(con: duckdb.DuckDBPyConnection) -> ChainCheck:
    """Recompute every event's hash in order; report the first entry that does not fit."""
    prev = GENESIS
    expected_seq = 1
    n = 0
    cur = con.execute(
        "SELECT seq, strftime(event_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), actor, action, subject, "
        "CAST(payload AS VARCHAR), prev_hash, hash FROM events ORDER BY seq"
    )
    while True:
        batch = cur.fetchmany(10_000)
        if not batch:
            break
        for seq, at, who, action, subject, payload, prev_hash, h in batch:
            n += 1
            if seq != expected_seq:
                return ChainCheck(False, n, prev, seq, f"sequence jumps from {expected_seq - 1} to {seq} (an entry is missing)")
            if prev_hash != prev:
                return ChainCheck(False, n, prev, seq, f"event {seq} does not link to the hash of event {seq - 1}")
            try:
                payload_obj = json.loads(payload)
            except (TypeError, ValueError):
                return ChainCheck(False, n, prev, seq, f"event {seq} has an unreadable payload")
            if event_hash(seq, at, who, action, subject, payload_obj, prev_hash) != h:
                return ChainCheck(False, n, prev, seq, f"event {seq} ({action}) was altered: its content no longer matches its hash")
            prev = h
            expected_seq += 1
    return ChainCheck(True, n, prev)


EVENT_COLUMNS = ["seq", "event_at", "actor", "action", "subject", "payload", "hash"]


def event_rows(con: duckdb.DuckDBPyConnection, subject_sha256: str | None = None) -> list[dict[str, Any]]:
    """The log in order (``modelreg log``), payloads as their stored JSON text; with ``subject_sha256`` only
    the entries whose subject is that model or whose payload names it."""
    sql = "SELECT seq, event_at, actor, action, subject, CAST(payload AS VARCHAR) AS payload, hash FROM events"
    params: list[Any] = []
    if subject_sha256 is not None:
        sql += " WHERE subject = ? OR CAST(payload AS VARCHAR) LIKE '%' || ? || '%'"
        params += [subject_sha256, subject_sha256]
    sql += " ORDER BY seq"
    cur = con.execute(sql, params)
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
