"""``log --verify``: is the registry's event log complete and unaltered, and do the rows agree with it?

Three checks, each naming what it found:

1. **The chain** (:func:`registry.store.events.verify_chain`): every event's hash recomputed, each linked
   to the previous one. Proves that no entry *between the first and the last* was altered, removed or
   reordered, unless every later hash was recomputed too.
2. **The anchor** (:mod:`registry.store.anchor`): the head file beside the registry names the last
   event's seq and hash at the last commit. Events missing at the end ("events 1361–1363 missing: head
   file says seq 1363"), and a log rewritten from some point on with fresh hashes (the event at the head
   file's seq has another hash), are found only with it.
3. **Agreement**: every blob, sighting and finding written by a scan is compared with the event that
   created it (the blob row's digest, the sighting's path/size/mtime, the digest of the findings), and
   every such event must still have its rows. Rows changed or deleted directly in the database are named.
   Findings written by ``audit`` (sidecars, Civitai) and rows of other tables are covered by their events'
   existence only; registries written before this check have no digests in their older events, and those
   rows are checked for presence only.
4. **The listing**: ``model_listing`` (what ``ls`` and the web list read; derived from the records in the
   transaction of every change) recomputed from the records and compared row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from registry.store.anchor import Head, head_path, read_head
from registry.store.events import ChainCheck, verify_chain
from registry.store.write import BLOB_DIGEST_COLUMNS, blob_digest, findings_digest

#: at most this many problems of one kind are listed (the count is always given)
LIST_LIMIT = 10


@dataclass
class Verification:
    chain: ChainCheck
    head: Head | None
    head_file: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


def _span(a: int, b: int) -> str:
    return f"event {a}" if a == b else f"events {a}–{b}"


def _anchor_problems(con: duckdb.DuckDBPyConnection, chain: ChainCheck, head: Head | None) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    notes: list[str] = []
    if head is None:
        return problems, notes
    row = con.execute("SELECT max(seq) FROM events").fetchone()
    last = int(row[0]) if row and row[0] is not None else 0
    if last < head.seq:
        problems.append(f"{_span(last + 1, head.seq)} missing: head file says seq {head.seq}, the log ends at {last}")
        return problems, notes
    got = con.execute("SELECT hash FROM events WHERE seq = ?", [head.seq]).fetchone()
    if head.seq > 0 and (got is None or str(got[0]) != head.hash):
        problems.append(
            f"event {head.seq} does not match the head file (its hash is {str(got[0])[:16] if got else 'absent'}…, "
            f"the head file says {head.hash[:16]}…): the log was rewritten at or before event {head.seq}"
        )
    if last > head.seq:
        problems.append(
            f"{_span(head.seq + 1, last)} not anchored: the head file says seq {head.seq}, so they were added "
            "without updating it (a crash right after a commit, or a change outside modelreg); the next write "
            "by modelreg anchors them"
        )
    if head.anchored_since > 0:
        notes.append(
            f"the head file was started at event {head.anchored_since} (the registry is older than the head file): "
            "truncation is detectable from there on"
        )
    return problems, notes


def _listed(kind: str, items: list[str]) -> str:
    shown = "; ".join(items[:LIST_LIMIT])
    more = f"; and {len(items) - LIST_LIMIT} more" if len(items) > LIST_LIMIT else ""
    return f"{len(items)} {kind}: {shown}{more}"


def _agreement_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    problems: list[str] = []
    # blobs: the latest blob.add / blob.reanalyze event of each blob
    latest_blob_event: dict[str, tuple[int, dict[str, object]]] = {}
    for seq, subject, payload in con.execute(
        "SELECT seq, subject, CAST(payload AS VARCHAR) FROM events WHERE action IN ('blob.add', 'blob.reanalyze') ORDER BY seq"
    ).fetchall():
        latest_blob_event[str(subject)] = (int(seq), json.loads(payload))
    cols = ", ".join(f'"{c}"' if c != "metadata" else "CAST(metadata AS VARCHAR)" for c in BLOB_DIGEST_COLUMNS)
    blob_rows = {r[0]: r for r in con.execute(f"SELECT {cols} FROM blobs").fetchall()}
    changed, missing, unlogged = [], [], []
    for sha, (seq, p) in latest_blob_event.items():
        row = blob_rows.get(sha)
        if row is None:
            missing.append(f"{sha[:16]}… (event {seq})")
            continue
        want = p.get("blob_row_sha256")
        if want is not None:
            differs = blob_digest(row) != want
        else:  # an event written before blob digests: size and format only
            differs = row[1] != p.get("size") or row[BLOB_DIGEST_COLUMNS.index("format")] != p.get("format")
        if differs:
            changed.append(f"{sha[:16]}… (event {seq})")
    hub = {r[0] for r in con.execute("SELECT DISTINCT subject FROM events WHERE subject IS NOT NULL").fetchall()}
    for sha in blob_rows:
        if sha not in latest_blob_event and sha not in hub:
            unlogged.append(f"{sha[:16]}…")
    if missing:
        problems.append(_listed("blobs recorded by events are missing", missing))
    if changed:
        problems.append(_listed("blob rows differ from the events that created them", changed))
    if unlogged:
        problems.append(_listed("blobs have no event that created them", unlogged))

    # sightings: each (host, path, path_raw, blob) against its latest sighting.add / sighting.update event
    ev: dict[tuple[str, str, str | None, str], tuple[int, dict[str, object]]] = {}
    for seq, payload in con.execute(
        "SELECT seq, CAST(payload AS VARCHAR) FROM events WHERE action IN ('sighting.add', 'sighting.update') ORDER BY seq"
    ).fetchall():
        p = json.loads(payload)
        raw = p.get("path_raw_hex")
        ev[(str(p.get("host")), str(p.get("path")), str(raw) if raw is not None else None, str(p.get("sha256")))] = (int(seq), p)
    rows = con.execute("SELECT host, path, path_raw, blob_sha256, size, mtime_ns, id FROM sightings").fetchall()
    s_changed, s_missing, s_unlogged = [], [], []
    present = set()
    for host, path, raw, sha, size, mtime, sid in rows:
        key = (host, path, bytes(raw).hex() if raw is not None else None, sha)
        present.add(key)
        e = ev.get(key)
        if e is None:
            s_unlogged.append(f"sighting {sid} {path}")
        elif (e[1].get("size"), e[1].get("mtime_ns")) != (size, mtime):
            s_changed.append(f"sighting {sid} {path} (event {e[0]})")
    for key, (seq, _) in ev.items():
        if key not in present:
            s_missing.append(f"{key[1]} (event {seq})")
    if s_missing:
        problems.append(_listed("sightings recorded by events are missing", s_missing))
    if s_changed:
        problems.append(_listed("sightings differ from the events that created them", s_changed))
    if s_unlogged:
        problems.append(_listed("sightings have no event that created them", s_unlogged))

    # findings: the findings each event created, by digest (events with findings_sha256 only)
    by_event: dict[int, list[tuple[str, str, str, str | None]]] = {}
    for seq, rid, sev, msg, evid in con.execute(
        "SELECT event_seq, rule_id, severity, message, CAST(evidence AS VARCHAR) FROM findings WHERE event_seq IS NOT NULL"
    ).fetchall():
        by_event.setdefault(int(seq), []).append((rid, sev, msg, evid))
    f_bad = []
    superseded: set[int] = set()
    latest_seq = {seq for seq, _ in latest_blob_event.values()}
    for seq, action, payload in con.execute(
        "SELECT seq, action, CAST(payload AS VARCHAR) FROM events "
        "WHERE action IN ('blob.add', 'blob.reanalyze', 'path.unreadable') ORDER BY seq"
    ).fetchall():
        p = json.loads(payload)
        want = p.get("findings_sha256")
        if want is None:
            continue
        if action != "path.unreadable" and int(seq) not in latest_seq:
            superseded.add(int(seq))  # re-analysed later: its findings were replaced
            continue
        got = by_event.get(int(seq), [])
        if findings_digest(got) != want:
            f_bad.append(f"event {seq} ({action} {p.get('sha256') or p.get('path')}): {len(got)} rows now")
    stray = sorted(s for s in by_event if s in superseded)
    if f_bad:
        problems.append(_listed("sets of findings differ from the events that created them", f_bad))
    if stray:
        problems.append(_listed("findings belong to superseded analyses", [f"event {s}" for s in stray]))
    return problems


def verify_registry(con: duckdb.DuckDBPyConnection, db_path: Path) -> Verification:
    chain = verify_chain(con)
    head = read_head(db_path)
    v = Verification(chain, head, head_path(db_path))
    anchor_problems, v.notes = _anchor_problems(con, chain, head)
    v.problems.extend(anchor_problems)
    if head is None:
        v.notes.append(
            f"no head file at {v.head_file}: the chain proves that no entry between the first and the last was "
            "altered or removed, but not that the newest entries are all there, nor that the log was not "
            "recomputed from some point on"
        )
    v.problems.extend(_agreement_problems(con))
    v.problems.extend(_listing_problems(con))
    return v


def _listing_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The ``model_listing`` table (what ``ls`` and the web list read) against the records it is computed
    from: it is derived data, written in the transaction of every change, so a difference means a change
    made outside modelreg."""
    from registry.store.listing_table import has_listing, listing_differences

    if not has_listing(con):
        return []
    diff = listing_differences(con)
    if not diff:
        return []
    shown = ", ".join(s[:12] for s in diff[:LIST_LIMIT]) + (", …" if len(diff) > LIST_LIMIT else "")
    return [
        f"{len(diff)} models are listed differently from their records ({shown}): `ls` and the web list read "
        "the listing table, which was changed outside modelreg; `modelreg log --rebuild-listing` recomputes it "
        "from the records"
    ]
