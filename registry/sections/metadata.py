"""Section ``metadata``: the file's embedded ``__metadata__``, verbatim."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

_MAX = 160


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> Any:
    row = con.execute("SELECT CAST(metadata AS VARCHAR) FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
    if row is None or row[0] is None:
        return None
    return json.loads(row[0])


def render(v: Any) -> list[Line]:
    if not isinstance(v, dict):
        return [json.dumps(v)[:_MAX]]
    lines: list[Line] = []
    for k in sorted(v):
        text = v[k] if isinstance(v[k], str) else json.dumps(v[k])
        text = text.replace("\n", " ")
        lines.append((k, text if len(text) <= _MAX else text[: _MAX - 1] + f"… ({len(text):,} chars)"))
    return lines


SECTION = Section("metadata", 60, load, render, title="Embedded metadata")
