"""Section ``images``: images traced to this model (``modelreg trace``), with how each reference matched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

MAX_LISTED = 1000


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    rows = con.execute(
        "SELECT l.image_sha256, i.path, i.host, i.format, i.generator, l.role, l.ref_name, l.ref_hash, l.weight, "
        "l.status, l.match_kind, l.note, l.traced_at FROM image_models l JOIN images i ON i.sha256 = l.image_sha256 "
        "WHERE l.model_sha256 = ? ORDER BY l.traced_at, l.image_sha256, l.role LIMIT ?",
        [sha256, MAX_LISTED + 1],
    ).fetchall()
    if not rows:
        return None
    total_row = con.execute("SELECT count(DISTINCT image_sha256) FROM image_models WHERE model_sha256 = ?", [sha256]).fetchone()
    cols = ["image_sha256", "path", "host", "format", "generator", "role", "ref_name", "ref_hash", "weight",
            "status", "match_kind", "note", "traced_at"]  # fmt: skip
    images = [dict(zip(cols, r, strict=True)) for r in rows[:MAX_LISTED]]
    for d in images:
        d["traced_at"] = d["traced_at"].isoformat()
    return {
        "n_images": int(total_row[0]) if total_row else len(images),
        "by_status": {s: sum(1 for d in images if d["status"] == s) for s in ("matched", "conflict", "weak")},
        "images": images,
        "truncated": len(rows) > MAX_LISTED,
        "method": "image metadata (PNG text, EXIF, XMP) as the generator wrote it, matched by hash or name; "
        "a claim in a file the image's owner controls, not proof of how the image was made",
    }


def render(v: dict[str, Any]) -> list[Line]:
    lines: list[Line] = [("images", v["n_images"]), ("by status", ", ".join(f"{k} {n}" for k, n in v["by_status"].items() if n))]
    for d in v["images"][:50]:
        w = f" weight {d['weight']:g}" if d["weight"] is not None else ""
        lines.append(f"{d['image_sha256'][:12]}  {d['generator'] or '?'}  {d['role']} {d['ref_name'] or ''}{w}  "
                     f"[{d['status']}: {d['match_kind']}]  {d['path']}")  # fmt: skip
    if v["n_images"] > 50:
        lines.append(f"… and {v['n_images'] - 50} more (modelreg show --format json)")
    return lines


SECTION = Section("images", 85, load, render, title="Images attributed to this model")
