"""Section ``tensors``: a summary of the tensor table (counts by dtype, parameters, bytes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    # tensor_summary (migration 0201) holds these totals per blob and dtype, written with the tensor rows:
    # an indexed read instead of a scan of the whole tensors table
    rows = con.execute(
        "SELECT dtype, tensors, bytes, parameters FROM tensor_summary WHERE blob_sha256 = ? ORDER BY 2 DESC, 1",
        [sha256],
    ).fetchall()
    if not rows:
        return None
    by_dtype = {d: {"tensors": int(n), "bytes": int(b or 0), "parameters": int(p or 0)} for d, n, b, p in rows}
    return {
        "count": sum(v["tensors"] for v in by_dtype.values()),
        "parameters": sum(v["parameters"] for v in by_dtype.values()),
        "bytes": sum(v["bytes"] for v in by_dtype.values()),
        "by_dtype": by_dtype,
    }


def render(v: dict[str, Any]) -> list[Line]:
    lines: list[Line] = [("Tensors", f"{v['count']:,}"), ("Parameters", f"{v['parameters']:,}")]
    for d, x in v["by_dtype"].items():
        lines.append((f"  {d}", f"{x['tensors']:,} tensors, {x['parameters']:,} parameters, {x['bytes']:,} bytes"))
    return lines


SECTION = Section("tensors", 70, load, render, title="Tensors")
