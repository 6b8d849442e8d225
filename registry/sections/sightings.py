"""Section ``sightings``: every place this content was seen (host, path, size, mtime, when, source)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc, ns_to_iso
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]] | None:
    rows = con.execute(
        "SELECT host, path, size, mtime_ns, seen_at, source, CAST(provenance AS VARCHAR) FROM sightings "
        "WHERE blob_sha256 = ? ORDER BY seen_at, id",
        [sha256],
    ).fetchall()
    out = []
    for host, path, size, mtime_ns, seen_at, source, prov in rows:
        out.append(
            {
                "host": host,
                "path": path,
                "size": size,
                "mtime": ns_to_iso(mtime_ns),
                "seen_at": iso_utc(seen_at),
                "source": source,
                "provenance": json.loads(prov) if prov else None,
            }
        )
    return out or None


def render(v: list[dict[str, Any]]) -> list[Line]:
    lines: list[Line] = []
    for s in v:
        extra = f" [{s['source']}]" if s["source"] != "scan" else ""
        lines.append(f"{s['seen_at'][:19]}  {s['host']}:{s['path']}{extra}")
    return lines


SECTION = Section("sightings", 5, load, render, title="Seen at")
