"""Section ``findings``: every finding about this content, most severe first."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]] | None:
    rows = con.execute(
        "SELECT DISTINCT rule_id, severity, severity_rank, message, CAST(evidence AS VARCHAR) FROM findings "
        "WHERE blob_sha256 = ? ORDER BY severity_rank DESC, rule_id, message",
        [sha256],
    ).fetchall()
    out = [
        {"rule_id": r, "severity": s, "message": m, "evidence": json.loads(e) if e else {}}
        for r, s, _rank, m, e in rows
    ]
    return out or None


def render(v: list[dict[str, Any]]) -> list[Line]:
    return [f"[{f['severity'].upper():8}] {f['rule_id']}: {f['message']}" for f in v]


SECTION = Section("findings", 90, load, render, title="Findings")
