"""Writing scan results: one transaction per batch of whole files, bulk rows through Arrow.

A batch commits atomically: either every row of every file in it is there, or none is (a scan killed at
any moment leaves a consistent registry, and scanning again completes it). Rows never go in by
row-by-row ``execute`` loops: each table gets one Arrow insert per batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import sys
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from registry.findings import Finding
from registry.paths import already_clean, clean_obj, clean_text, display_path, raw_path
from registry.store._duck import ARROW_IN, registered, with_arrow
from registry.store.events import EventLog, canonical, payload_text
from registry.store.listing_table import refresh_listing


@dataclass
class TensorRows:
    """Column lists for the ``tensors`` table of one file (cheap to pickle between processes)."""

    name: list[str] = field(default_factory=list)
    dtype: list[str] = field(default_factory=list)
    shape: list[list[int]] = field(default_factory=list)
    data_begin: list[int | None] = field(default_factory=list)
    data_end: list[int | None] = field(default_factory=list)
    file_offset: list[int | None] = field(default_factory=list)
    nbytes: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.name)


@dataclass
class BlobRecord:
    sha256: str
    size: int
    hashes: dict[str, str | None]
    format: str
    header_len: int | None
    n_tensors: int | None
    metadata_json: str | None
    analyzers: str
    tensors: TensorRows
    findings: list[Finding]
    rows: dict[str, list[dict[str, Any]]]
    #: rows as columns of storable values (``FileContext.add_columns``)
    columns: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    #: instead of ``columns``: this blob's rows are those at ``block_index`` of a block of several blobs'
    #: columns (a worker task's hand-over, :class:`ColumnBlock`)
    block: ColumnBlock | None = None
    block_index: int = 0
    #: the payload text of the blob's event (:func:`blob_event_text`), made by the worker that analysed it
    #: instead of by the one process that commits every file; None: made at commit
    event_text: str | None = None


def join_columns(have: dict[str, dict[str, list[Any]]], table: str, cols: dict[str, list[Any]]) -> None:
    """Append the rows ``cols`` (name -> one value per row) to ``have[table]``: a column that the rows
    before lacked starts with None for them, and one these rows lack gets None for them."""
    n_rows = len(next(iter(cols.values()), []))
    dest = have.get(table)
    if dest is None:
        have[table] = {k: list(v) for k, v in cols.items()}
        return
    before = len(next(iter(dest.values()), []))
    for k, v in cols.items():
        column = dest.get(k)
        if column is None:  # a column the rows before did not have
            column = dest[k] = [None] * before
        column.extend(v)
    if len(dest) != len(cols):  # the rows before had a column these lack
        total = before + n_rows
        for v in dest.values():
            if len(v) < total:
                v.extend([None] * (total - len(v)))


@dataclass
class ColumnBlock:
    """The analyzers' rows of several blobs as one set of columns per table, each with a ``blob_sha256``
    column: what a worker task hands over for all its files (a small LoRA has ~120 columns of one row
    each, so per file that was ~120 short lists to pickle, unpickle and append one by one; per task it is
    as many long lists, joined once per table by the writer). ``counts[table][i]`` is the number of rows
    of the block's ``i``-th blob in that table."""

    tables: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    n: int = 0

    def add(self, sha256: str, columns: dict[str, dict[str, list[Any]]]) -> int:
        """Append one blob's columns (without ``blob_sha256``); its index in the block."""
        i = self.n
        # per table, while its columns are exactly those of the blob before (the usual case): their names
        # and lists in that order, appended to without looking each one up (not pickled)
        fast: dict[str, tuple[tuple[str, ...], list[list[Any]]]] = self.__dict__.setdefault("_fast", {})
        for table, cols in columns.items():
            values = cols.values()
            n_rows = len(next(iter(values), []))
            counts = self.counts.get(table)
            if counts is None:
                counts = self.counts[table] = [0] * i
            counts.append(n_rows)
            names = tuple(cols)
            same = fast.get(table)
            if same is not None and same[0] == names:
                dest = same[1]
                dest[0].extend([sha256] * n_rows)
                deque(map(list.extend, dest[1:], values), maxlen=0)
                continue
            join_columns(self.tables, table, {"blob_sha256": [sha256] * n_rows, **cols})
            have = self.tables[table]
            if len(have) == len(names) + 1:  # exactly these columns: the next blob's may take the fast way
                fast[table] = (names, [have["blob_sha256"], *(have[k] for k in names)])
            else:
                fast.pop(table, None)
        self.n = i + 1
        for counts in self.counts.values():
            if len(counts) < self.n:
                counts.append(0)
        return i

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_fast"}

    def take(self, indices: Sequence[int]) -> dict[str, dict[str, list[Any]]]:
        """The rows of the blobs at ``indices`` (ascending), per table: the block's own lists when that is
        every blob."""
        if len(indices) == self.n:
            return self.tables
        out: dict[str, dict[str, list[Any]]] = {}
        for table, cols in self.tables.items():
            counts = self.counts[table]
            starts = [0] * (self.n + 1)
            for j, c in enumerate(counts):
                starts[j + 1] = starts[j] + c
            rows = [r for i in indices for r in range(starts[i], starts[i + 1])]
            if rows:
                out[table] = {k: [v[r] for r in rows] for k, v in cols.items()}
        return out


@dataclass
class SightingRecord:
    sha256: str | None
    host: str
    path: str
    size: int
    mtime_ns: int
    inode: int | None
    device: int | None
    source: str = "scan"
    provenance: dict[str, Any] | None = None
    #: findings about the path (unreadable, not a regular file …) for files without content
    path_findings: list[Finding] = field(default_factory=list)


@dataclass
class FileWrite:
    """Everything one file contributes to a batch. ``blob`` is None when the content is known already
    (and not re-analysed) or could not be read."""

    sighting: SightingRecord
    blob: BlobRecord | None = None
    reanalyze: bool = False


_PLAIN = (int, float, bool, type(None))
#: ``json.dumps(v, sort_keys=True, default=str)``'s encoder, built once instead of for every cell
_JSON = json.JSONEncoder(sort_keys=True, default=str)


def _json_cell(v: Any) -> Any:
    if type(v) in _PLAIN:
        return v
    if isinstance(v, str):
        return clean_text(v)
    if isinstance(v, dict | list | tuple) and not already_clean(v):
        v = clean_obj(v) if not isinstance(v, tuple) else tuple(clean_obj(list(v)))  # type: ignore[arg-type]
    if isinstance(v, dict):
        return _JSON.encode(v)
    if isinstance(v, list | tuple) and any(isinstance(x, dict | list | tuple) for x in v):
        return _JSON.encode(v)
    if isinstance(v, tuple):
        return list(v)
    return v


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict[str, Any]]) -> None:
    """Insert dict rows by column name with a single Arrow insert. Dicts (and lists of dicts) become
    JSON text; lists of scalars stay lists."""
    if not rows:
        return
    insert_columns(con, table, rows_as_columns(rows))


def rows_as_columns(rows: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Dict rows as the columns :func:`insert_rows` inserts (every key of any row, in the order first seen;
    None where a row lacks it; cells made storable as in :func:`_json_cell`). A cell's value does not
    depend on the other cells of its column, so columns of several files' rows joined end to end are
    those of the joined rows (workers convert their rows, the writer joins them)."""
    if len(rows) == 1:  # (most tables: one row per file)
        return {k: [_json_cell(v)] for k, v in rows[0].items()}
    columns: dict[str, None] = {}
    for r in rows:
        for k in r:
            columns.setdefault(k)
    return {c: _json_column([r.get(c) for r in rows]) for c in columns}


_PLAIN_TYPES = frozenset(_PLAIN)
_TEXT_TYPES = frozenset((str, type(None)))
_LIST_TYPES = frozenset((list, type(None)))


def _json_column(values: list[Any]) -> list[Any]:
    """``[_json_cell(v) for v in values]``, without a call per cell when the column holds only numbers,
    booleans and None (kept as they are) or only ASCII text and None (which ``clean_text`` keeps as it is):
    most columns of analyzers' rows."""
    kinds = set(map(type, values))
    if kinds <= _PLAIN_TYPES:
        return values
    if kinds <= _TEXT_TYPES and all(v is None or v.isascii() for v in values):
        return values
    if kinds <= _LIST_TYPES and all(v is None or all(_flat_clean(x) for x in v) for v in values):
        return values  # lists of numbers and ASCII text: stored as lists, as they are
    return [_json_cell(v) for v in values]


def _flat_clean(x: Any) -> bool:
    t = type(x)
    return t in _PLAIN_TYPES or (t is str and x.isascii())


def _remember_missing(name: str) -> None:
    """Make ``import name`` fail at once when the module is not installed. DuckDB's Python client looks
    for ``dateutil`` for every column of every Arrow table it scans once numpy is loaded, and pyarrow for
    ``dateutil.relativedelta`` for every column it builds from Python values; a module that is absent is
    searched for on the whole ``sys.path`` each time (~0.5 ms), and a submodule of a module known to be
    missing still goes through the import machinery (~20 µs, 160 columns a commit of one real-layout
    LoRA). (``None`` in ``sys.modules`` is Python's own "known to be missing" mark.)"""
    if name in sys.modules:
        return
    parent = name.rpartition(".")[0]
    if parent and parent in sys.modules and sys.modules[parent] is None:
        sys.modules[name] = None  # type: ignore[assignment]
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        sys.modules[name] = None  # type: ignore[assignment]


_remember_missing("dateutil")
_remember_missing("dateutil.relativedelta")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def timestamps(values: Sequence[datetime | None]) -> pa.Array:
    """Timezone-aware datetimes as an Arrow ``timestamp[us, tz=UTC]`` column, built from integers: what
    ``pa.array`` infers for them, without its per-value time-zone lookup (which tries to import
    ``dateutil`` for every value when it is not installed: a file-system search each time)."""
    return pa.array([(v - _EPOCH) // _US if v is not None else None for v in values], pa.timestamp("us", tz="UTC"))


def _arrow_columns(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, list):
            first = next((x for x in v if x is not None), None)
            if isinstance(first, datetime) and first.tzinfo is not None and all(
                x is None or (isinstance(x, datetime) and x.tzinfo is not None) for x in v
            ):
                v = timestamps(v)
        out[k] = v
    return out


def insert_columns(con: duckdb.DuckDBPyConnection, table: str, data: dict[str, Any] | pa.Table) -> None:
    tbl = data if isinstance(data, pa.Table) else pa.table(_arrow_columns(data))
    cols = ", ".join(f'"{c}"' for c in tbl.column_names)
    with_arrow(con, f'INSERT INTO "{table}" ({cols}) SELECT {cols} FROM {ARROW_IN}', tbl)


#: per-blob, per-dtype totals of tensor rows (table ``tensor_summary``, migration 0201), read by ``show``
TENSOR_SUMMARY_SQL = (
    "SELECT blob_sha256, dtype, count(*), sum(nbytes), "
    "sum(list_reduce(list_prepend(1, shape), lambda a, b: a * b)) FROM {source} GROUP BY blob_sha256, dtype"
)


def insert_tensor_summary(con: duckdb.DuckDBPyConnection, tensors: pa.Table) -> None:
    """Add the ``tensor_summary`` rows of freshly inserted tensor rows (same columns as ``tensors``)."""
    with_arrow(con, "INSERT INTO tensor_summary " + TENSOR_SUMMARY_SQL.format(source=ARROW_IN), tensors)


def existing_blobs(con: duckdb.DuckDBPyConnection, shas: Iterable[str]) -> set[str]:
    shas = list(set(shas))
    if not shas:
        return set()
    sql = f"SELECT b.sha256 FROM blobs b JOIN {ARROW_IN} p USING (sha256)"
    return {r[0] for r in with_arrow(con, sql, pa.table({"sha256": shas})).fetchall()}


def finding_cells(f: Finding) -> tuple[str, str, str, str]:
    """The stored ``rule_id``, ``severity``, ``message`` and ``evidence`` of ``f`` (what
    :func:`findings_digest` digests): text that came from an undecodable file name made storable, the
    evidence as sorted JSON."""
    return f.rule_id, f.severity.label, clean_text(f.message), json.dumps(clean_obj(f.evidence), sort_keys=True, default=str)


def finding_row(f: Finding, blob: str | None, host: str | None, path: str | None, now: datetime) -> dict[str, Any]:
    """A ``findings`` row; the path is stored in its display form (with ``path_raw`` when that differs
    from the exact bytes) and text that came from an undecodable file name is made storable."""
    rule_id, severity, message, evidence = finding_cells(f)
    return {
        "blob_sha256": blob,
        "host": host,
        "path": display_path(path) if path is not None else None,
        "path_raw": raw_path(path) if path is not None else None,
        "rule_id": rule_id,
        "severity": severity,
        "severity_rank": int(f.severity),
        "message": message,
        "evidence": evidence,
        "created_at": now,
    }


def findings_digest(rows: Iterable[tuple[str, str, str, str | None]]) -> str:
    """SHA-256 over (rule_id, severity, message, evidence) of a set of findings, order-independent.
    An event carries it for the findings it created, so ``log --verify`` can check the rows."""
    items = sorted(
        canonical([r, s, m, json.loads(e) if e else None]) for r, s, m, e in rows
    )
    return hashlib.sha256(("\n".join(items)).encode("utf-8")).hexdigest()


BLOB_DIGEST_COLUMNS = (
    "sha256", "size", "autov1", "autov2", "autov3", "blake3", "crc32", "git_sha1",
    "format", "header_len", "n_tensors", "metadata", "analyzers",
)


def blob_digest(values: Sequence[Any]) -> str:
    """SHA-256 over a ``blobs`` row (``BLOB_DIGEST_COLUMNS``; metadata compared as parsed JSON)."""
    vals = list(values)
    i = BLOB_DIGEST_COLUMNS.index("metadata")
    vals[i] = json.loads(vals[i]) if vals[i] is not None else None
    return hashlib.sha256(canonical(vals).encode("utf-8")).hexdigest()


def blob_row(b: BlobRecord) -> list[Any]:
    """The ``blobs`` row of ``b`` in the order of ``BLOB_DIGEST_COLUMNS`` (``first_seen`` apart)."""
    hs = b.hashes
    return [
        b.sha256, b.size, hs.get("autov1"), hs.get("autov2"), hs.get("autov3"), hs.get("blake3"),
        hs.get("crc32"), hs.get("git_sha1"), b.format, b.header_len, b.n_tensors, b.metadata_json,
        b.analyzers,
    ]  # fmt: skip


def blob_event_text(b: BlobRecord, row: Sequence[Any] | None = None) -> str:
    """The payload text (:func:`~registry.store.events.payload_text`) of the ``blob.add`` or
    ``blob.reanalyze`` event of ``b``: it depends on the blob alone (its findings' digest is over the
    columns of their rows that do not depend on where or when the file was seen)."""
    return payload_text(
        {
            "sha256": b.sha256,
            "size": b.size,
            "format": b.format,
            "autov3": b.hashes.get("autov3"),
            "blake3": b.hashes.get("blake3"),
            "findings": len(b.findings),
            "findings_sha256": findings_digest(finding_cells(f) for f in b.findings),
            "blob_row_sha256": blob_digest(row if row is not None else blob_row(b)),
            "analyzers": b.analyzers,
        }
    )


def sighting_payload(s: SightingRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sha256": s.sha256,
        "host": s.host,
        "path": display_path(s.path),
        "size": s.size,
        "mtime_ns": s.mtime_ns,
        "source": s.source,
    }
    raw = raw_path(s.path)
    if raw is not None:
        out["path_raw_hex"] = raw.hex()
    return out


def _existing_sightings(
    con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str, bytes | None]]
) -> dict[tuple[str, str, bytes | None], list[tuple[int, str, int, int, int | None, int | None, bool]]]:
    """Sightings already recorded at these (host, path, path_raw): per key, (id, blob, size, mtime_ns,
    inode, device, is_latest). Read inside the writing transaction, so concurrent scans see each other."""
    if not keys:
        return {}
    rows = _rows_at_keys(
        con,
        keys,
        "SELECT s.host, s.path, s.path_raw, s.id, s.blob_sha256, s.size, s.mtime_ns, s.inode, s.device, "
        "row_number() OVER (PARTITION BY s.host, s.path, s.path_raw ORDER BY s.seen_at DESC, s.id DESC) = 1 "
        "FROM sightings s JOIN {keys} p ON s.host = p.host AND s.path = p.path "
        "AND s.path_raw IS NOT DISTINCT FROM p.path_raw",
    )
    out: dict[tuple[str, str, bytes | None], list[tuple[int, str, int, int, int | None, int | None, bool]]] = {}
    for host, path, raw, sid, sha, size, mtime, inode, dev, latest in rows:
        out.setdefault((host, path, bytes(raw) if raw is not None else None), []).append(
            (sid, sha, size, mtime, inode, dev, bool(latest))
        )
    return out


def _rows_at_keys(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str, bytes | None]], sql: str) -> list[Any]:
    """Run ``sql`` with the (host, path, path_raw) ``keys`` as the table ``{keys}`` (named once)."""
    keys_tbl = pa.table(
        {
            "host": pa.array([k[0] for k in keys], pa.string()),
            "path": pa.array([k[1] for k in keys], pa.string()),
            "path_raw": pa.array([k[2] for k in keys], pa.binary()),
        }
    )
    return list(with_arrow(con, sql.replace("{keys}", ARROW_IN), keys_tbl).fetchall())


def _existing_path_findings(con: duckdb.DuckDBPyConnection, keys: list[tuple[str, str, bytes | None]]) -> set[tuple[Any, ...]]:
    if not keys:
        return set()
    rows = _rows_at_keys(
        con,
        keys,
        "SELECT f.host, f.path, f.path_raw, f.rule_id, f.message FROM findings f JOIN {keys} p "
        "ON f.host = p.host AND f.path = p.path AND f.path_raw IS NOT DISTINCT FROM p.path_raw "
        "WHERE f.blob_sha256 IS NULL",
    )
    return {(h, p, bytes(r) if r is not None else None, rid, m) for h, p, r, rid, m in rows}


def write_batch(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[FileWrite],
    derived_tables: Iterable[str] = (),
    head: tuple[int, str] | None = None,
) -> tuple[int, str] | None:
    """Write a batch of files in one transaction (rolled back entirely on any error). ``head``: the event
    log's last (seq, hash) when the caller knows it (see :class:`EventLog`); returns the log's last (seq,
    hash) after the batch (None for an empty batch).

    A path gains a sighting only for content it has not been seen with: the existing sightings are read
    inside this transaction (DuckDB admits one writing process at a time), so any number of concurrent
    scans of the same or overlapping folders leave exactly one sighting per (host, path, content). A
    file seen again with the same content but a new size/mtime/inode (touched, or back to an earlier
    content) updates that sighting, with a ``sighting.update`` event.
    """
    if not items:
        return head
    now = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        log = EventLog(con, head)
        known = existing_blobs(con, [i.blob.sha256 for i in items if i.blob is not None])
        keys = sorted(
            {(i.sighting.host, display_path(i.sighting.path), raw_path(i.sighting.path)) for i in items},
            key=lambda k: (k[0], k[1], k[2] or b""),
        )
        seen_paths = _existing_sightings(con, keys)
        seen_path_findings = _existing_path_findings(
            con, [(i.sighting.host, display_path(i.sighting.path), raw_path(i.sighting.path)) for i in items if i.sighting.sha256 is None]
        )
        blob_rows: dict[str, list[Any]] = {
            k: []
            for k in (
                "sha256", "size", "autov1", "autov2", "autov3", "blake3", "crc32", "git_sha1",
                "format", "header_len", "n_tensors", "metadata", "analyzers", "first_seen",
            )
        }
        tensor_cols: dict[str, list[Any]] = {
            k: [] for k in ("blob_sha256", "idx", "name", "dtype", "shape", "data_begin", "data_end", "file_offset", "nbytes")
        }
        finding_rows: list[dict[str, Any]] = []
        extra_rows: dict[str, list[dict[str, Any]]] = {}
        extra_cols: dict[str, dict[str, list[Any]]] = {}
        sighting_cols: dict[str, list[Any]] = {
            k: []
            for k in ("blob_sha256", "host", "path", "path_raw", "size", "mtime_ns", "inode", "device", "seen_at", "source", "provenance")
        }
        blob_columns = [blob_rows[k] for k in BLOB_DIGEST_COLUMNS]
        sighting_columns = list(sighting_cols.values())
        updates: list[tuple[int, SightingRecord]] = []
        run: tuple[ColumnBlock, list[int]] | None = None

        def flush_run() -> None:
            nonlocal run
            if run is not None:
                for table, cols in run[0].take(run[1]).items():
                    join_columns(extra_cols, table, cols)
                run = None

        written: set[str] = set()
        replace: set[str] = set()
        for item in items:
            b = item.blob
            s = item.sighting
            spath, sraw = display_path(s.path), raw_path(s.path)
            if b is not None and b.sha256 not in written and (b.sha256 not in known or item.reanalyze):
                if b.sha256 in known:
                    replace.add(b.sha256)
                written.add(b.sha256)
                row = blob_row(b)
                for column, v in zip(blob_columns, row, strict=True):
                    column.append(v)
                blob_rows["first_seen"].append(now)
                t = b.tensors
                n = len(t)
                tensor_cols["blob_sha256"].extend([b.sha256] * n)
                tensor_cols["idx"].extend(range(n))
                for k in ("name", "dtype", "shape", "data_begin", "data_end", "file_offset", "nbytes"):
                    tensor_cols[k].extend(getattr(t, k))
                fr = [finding_row(f, b.sha256, s.host, s.path, now) for f in b.findings]
                for table, rows in b.rows.items():
                    extra_rows.setdefault(table, []).extend({**r, "blob_sha256": b.sha256} for r in rows)
                if b.block is not None:
                    # consecutive blobs of one block are joined as one run (in the files' order)
                    if run and run[0] is b.block:
                        run[1].append(b.block_index)
                    else:
                        flush_run()
                        run = (b.block, [b.block_index])
                else:
                    flush_run()
                    for table, cols in b.columns.items():
                        join_columns(extra_cols, table, {"blob_sha256": [b.sha256] * len(next(iter(cols.values()), [])), **cols})
                action = "blob.reanalyze" if b.sha256 in known else "blob.add"
                text = b.event_text if b.event_text is not None else blob_event_text(b, row)
                log.append_text(action, b.sha256, text, at=now)
                finding_rows.extend({**r, "event_seq": log.seq} for r in fr)
            if s.sha256 is None:
                fr = [
                    finding_row(f, None, s.host, s.path, now)
                    for f in s.path_findings
                    if (s.host, spath, sraw, f.rule_id, clean_text(f.message)) not in seen_path_findings
                ]
                if not fr:
                    continue  # another scan recorded the same problem meanwhile
                seen_path_findings.update((s.host, spath, sraw, r["rule_id"], r["message"]) for r in fr)
                payload: dict[str, Any] = {"host": s.host, "path": spath, "findings": [r["rule_id"] for r in fr]}
                if sraw is not None:
                    payload["path_raw_hex"] = sraw.hex()
                payload["findings_sha256"] = findings_digest((r["rule_id"], r["severity"], r["message"], r["evidence"]) for r in fr)
                log.append("path.unreadable", None, payload, at=now)
                finding_rows.extend({**r, "event_seq": log.seq} for r in fr)
                continue
            for f in s.path_findings:
                finding_rows.append(finding_row(f, s.sha256, s.host, s.path, now))
            key = (s.host, spath, sraw)
            prior = [r for r in seen_paths.get(key, []) if r[1] == s.sha256]
            if prior:
                sid, _, size, mtime, inode, dev, latest = prior[0]
                if latest and (size, mtime, inode, dev) == (s.size, s.mtime_ns, s.inode, s.device):
                    continue  # this very observation is recorded already (e.g. by a concurrent scan)
                updates.append((sid, s))
                seen_paths[key] = [
                    (r[0], r[1], s.size, s.mtime_ns, s.inode, s.device, True) if r[0] == sid else (*r[:6], False)
                    for r in seen_paths[key]
                ]
                log.append("sighting.update", s.sha256, {**sighting_payload(s), "sighting_id": sid}, at=now)
                continue
            seen_paths[key] = [(*r[:6], False) for r in seen_paths.get(key, [])] + [
                (-1, s.sha256, s.size, s.mtime_ns, s.inode, s.device, True)
            ]
            for column, v in zip(
                sighting_columns,
                (s.sha256, s.host, spath, sraw, s.size, s.mtime_ns, s.inode, s.device, now, s.source,
                 json.dumps(clean_obj(s.provenance), sort_keys=True) if s.provenance else None),
                strict=True,
            ):  # fmt: skip
                column.append(v)
            log.append("sighting.add", s.sha256, sighting_payload(s), at=now)
        flush_run()

        if replace:
            with registered(con, "_replace", pa.table({"sha256": sorted(replace)})):
                for table in {"tensors", "tensor_summary", *derived_tables, *extra_rows, *extra_cols}:
                    con.execute(f'DELETE FROM "{table}" WHERE blob_sha256 IN (SELECT sha256 FROM _replace)')
                con.execute("DELETE FROM findings WHERE blob_sha256 IN (SELECT sha256 FROM _replace)")
                con.execute("DELETE FROM blobs WHERE sha256 IN (SELECT sha256 FROM _replace)")
        for sid, s in updates:
            con.execute(
                "UPDATE sightings SET size = ?, mtime_ns = ?, inode = ?, device = ?, seen_at = ?, source = ? WHERE id = ?",
                [s.size, s.mtime_ns, s.inode, s.device, now, s.source, sid],
            )
        if blob_rows["sha256"]:
            insert_columns(
                con,
                "blobs",
                pa.table(
                    {
                        **{k: v for k, v in blob_rows.items() if k not in ("metadata", "first_seen")},
                        "metadata": pa.array(blob_rows["metadata"], pa.string()),
                        "first_seen": timestamps(blob_rows["first_seen"]),
                    }
                ),
            )
        if tensor_cols["name"]:
            tensor_tbl = pa.table(
                {
                    "blob_sha256": pa.array(tensor_cols["blob_sha256"], pa.string()),
                    "idx": pa.array(tensor_cols["idx"], pa.int32()),
                    "name": pa.array(tensor_cols["name"], pa.string()),
                    "dtype": pa.array(tensor_cols["dtype"], pa.string()),
                    "shape": pa.array(tensor_cols["shape"], pa.list_(pa.int64())),
                    "data_begin": pa.array(tensor_cols["data_begin"], pa.int64()),
                    "data_end": pa.array(tensor_cols["data_end"], pa.int64()),
                    "file_offset": pa.array(tensor_cols["file_offset"], pa.int64()),
                    "nbytes": pa.array(tensor_cols["nbytes"], pa.int64()),
                }
            )
            insert_columns(con, "tensors", tensor_tbl)
            insert_tensor_summary(con, tensor_tbl)
        if sighting_cols["path"]:
            insert_columns(
                con,
                "sightings",
                pa.table(
                    {
                        **{k: v for k, v in sighting_cols.items() if k not in ("provenance", "inode", "device", "path_raw", "seen_at")},
                        "seen_at": timestamps(sighting_cols["seen_at"]),
                        "path_raw": pa.array(sighting_cols["path_raw"], pa.binary()),
                        "inode": pa.array(sighting_cols["inode"], pa.int64()),
                        "device": pa.array(sighting_cols["device"], pa.int64()),
                        "provenance": pa.array(sighting_cols["provenance"], pa.string()),
                    }
                ),
            )
        insert_rows(con, "findings", finding_rows)
        for table, rows in extra_rows.items():
            insert_rows(con, table, rows)
        for table, cols in extra_cols.items():
            if cols["blob_sha256"]:
                insert_columns(con, table, cols)
        # the list rows of every model this batch touched (content, sightings, findings), in this transaction
        refresh_listing(con, [i.sighting.sha256 for i in items] + [i.blob.sha256 for i in items if i.blob is not None])
        log.flush()
        con.execute("COMMIT")
        return log.seq, log.head
    except BaseException:
        # a failed COMMIT (disk full …) may have ended the transaction already: the original error matters
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise
