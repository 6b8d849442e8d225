"""Section ``exhibits``: the exhibits issued for this model (folder, time, record hash, signer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]] | None:
    rows = con.execute(
        "SELECT id, created_at, host, folder, record_sha256, manifest_sha256, signer_method, signer_fingerprint, "
        "chain_head_seq FROM exhibits WHERE blob_sha256 = ? ORDER BY created_at, id",
        [sha256],
    ).fetchall()
    keys = ["id", "created_at", "host", "folder", "record_sha256", "manifest_sha256", "signer_method",
            "signer_fingerprint", "chain_head_seq"]  # fmt: skip
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for d in out:
        d["created_at"] = iso_utc(d["created_at"])
    return out or None


def render(v: list[dict[str, Any]]) -> list[Line]:
    lines: list[Line] = []
    for e in v:
        signer = e["signer_method"] + (f" {e['signer_fingerprint'][:16]}…" if e.get("signer_fingerprint") else "")
        lines.append((e["created_at"], f"{e['host']}:{e['folder']}  record sha256:{e['record_sha256'][:16]}…  signed: {signer}"))
    return lines


SECTION = Section("exhibits", 95, load, render, title="Exhibits issued")
