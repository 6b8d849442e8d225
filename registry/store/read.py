"""Read models: resolving a reference to a model, listing models."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import AmbiguousRef, NotFound, UsageError
from registry.paths import clean_text, display_path

if TYPE_CHECKING:
    import duckdb

_HEX = re.compile(r"^[0-9a-f]+$")
_PREFIXES = {"sha256", "autov1", "autov2", "autov3", "blake3", "crc32", "0x"}


@dataclass(frozen=True)
class Candidate:
    sha256: str
    path: str | None
    matched: str

    def __str__(self) -> str:
        return f"{self.sha256[:16]}  {self.path or '(no path)'}  (matched {self.matched})"


#: hash columns are indexed by their first KEY_LEN hex digits (migration 0200_lookup_indexes); these
#: expressions must match the index expressions exactly, or DuckDB falls back to scanning the table
KEY_LEN = 8
NAME_EXPR = "regexp_extract(path, '[^/]*$')"


def _key_expr(col: str) -> str:
    return f"regexp_extract({col}, '^[0-9a-f]{{{KEY_LEN}}}')"


def _latest_at(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> list[tuple[str, str]]:
    """(blob, path) of the latest sighting at each (host, path) matching ``where`` (an indexed condition
    on ``sightings``): the rows of the ``latest_sightings`` view, without computing it for every path."""
    latest: dict[tuple[str, str], tuple[Any, int, str]] = {}
    for host, path, sha, seen_at, sid in con.execute(
        f"SELECT host, path, blob_sha256, seen_at, id FROM sightings WHERE {where}", params
    ).fetchall():
        cur = latest.get((host, path))
        if cur is None or (seen_at, sid) > cur[:2]:
            latest[(host, path)] = (seen_at, sid, sha)
    return sorted({(sha, path) for (_, path), (_, _, sha) in latest.items()})


def _hex_range(prefix: str) -> tuple[str, str]:
    """[lo, hi) bounds of every hex string starting with ``prefix`` (index-friendly, unlike LIKE)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def resolve_ref(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """Turn a reference into one blob's sha256.

    A reference is a full or unique-prefix SHA-256, an AutoV2 (10 hex), an AutoV1 (8 hex), an AutoV3 or
    BLAKE3 prefix, a CRC32 (8 hex, zlib or Civitai byte order), with or without an ``algo:`` prefix; or a
    path, or a file name. No match raises :class:`NotFound`; several raise :class:`AmbiguousRef`.
    """
    ref = ref.strip()
    if not ref:
        raise UsageError("empty model reference")
    matches: dict[str, Candidate] = {}

    algo = None
    value = ref
    if ":" in ref and ref.split(":", 1)[0].lower() in _PREFIXES:
        algo, value = ref.split(":", 1)
        algo = algo.lower()
    elif ref.lower().startswith("0x") and _HEX.match(ref[2:].lower() or "-"):
        algo, value = "autov3", ref[2:]
    v = value.lower()
    if _HEX.match(v) and len(v) >= 4 and len(v) <= 64:
        lo, hi = _hex_range(v)
        columns = {
            None: ["sha256", "autov3", "blake3", "autov1", "crc32"],
            "sha256": ["sha256"],
            "autov2": ["sha256"],
            "autov1": ["autov1"],
            "autov3": ["autov3"],
            "0x": ["autov3"],
            "blake3": ["blake3"],
            "crc32": ["crc32"],
        }[algo]
        for col in columns:
            if col in ("autov1", "crc32"):
                if len(v) != 8:
                    continue
                vals = [v, bytes.fromhex(v)[::-1].hex() if col == "crc32" else v]
                rows = con.execute(f"SELECT sha256 FROM blobs WHERE {col} IN (?, ?)", vals).fetchall()
            elif len(v) >= KEY_LEN:
                # equality on the indexed 8-hex key (migration 0200), then the whole prefix
                rows = [
                    (sha,)
                    for sha, val in con.execute(
                        f"SELECT sha256, {col} FROM blobs WHERE {_key_expr(col)} = ?", [v[:KEY_LEN]]
                    ).fetchall()
                    if val.startswith(v)
                ][:50]
            else:
                rows = con.execute(
                    f"SELECT sha256 FROM blobs WHERE {col} >= ? AND {col} < ? LIMIT 50", [lo, hi]
                ).fetchall()
            for (sha,) in rows:
                matches.setdefault(sha, Candidate(sha, None, col))
    if algo is None:
        # paths are stored in their display form (registry/paths.py): a name that is not UTF-8, as the OS
        # gives it, and the display form typed by hand both find it
        abs_path = display_path(os.path.abspath(Path(ref).expanduser()))
        rows = _latest_at(con, "path IN (?, ?)", [abs_path, display_path(ref)])
        if not rows and "/" not in ref:
            # a file name: the last path component (what ends_with(path, '/' + ref) means), indexed
            rows = _latest_at(con, f"{NAME_EXPR} = ?", [display_path(ref)])
        for sha, path in rows:
            matches.setdefault(sha, Candidate(sha, path, "path"))
    if not matches:
        raise NotFound(f"no registered model matches {clean_text(ref)!r} (try `modelreg ls`, or `modelreg scan PATH` first)")
    if len(matches) > 1:
        cands = sorted(matches.values(), key=lambda c: c.sha256)
        with_paths = [Candidate(c.sha256, c.path or latest_path(con, c.sha256), c.matched) for c in cands]
        raise AmbiguousRef(f"{clean_text(ref)!r} matches {len(cands)} models; give more of the hash:", with_paths)
    return next(iter(matches))


def latest_path(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    row = con.execute(
        "SELECT path FROM sightings WHERE blob_sha256 = ? ORDER BY seen_at DESC, id DESC LIMIT 1", [sha256]
    ).fetchone()
    return row[0] if row else None


def fetch_dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
