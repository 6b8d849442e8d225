"""Section ``file``: identity of the content — every hash the ecosystem uses, size and format."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT sha256, size, autov1, autov2, autov3, blake3, crc32, git_sha1, format, header_len, n_tensors, "
        "first_seen FROM blobs WHERE sha256 = ?",
        [sha256],
    ).fetchone()
    if row is None:
        return None
    keys = ["sha256", "size", "autov1", "autov2", "autov3", "blake3", "crc32", "git_sha1", "format", "header_len", "n_tensors", "first_seen"]
    d = dict(zip(keys, row, strict=True))
    d["first_seen"] = iso_utc(d["first_seen"]) if d["first_seen"] is not None else None
    d["crc32_civitai"] = bytes.fromhex(d["crc32"])[::-1].hex().upper() if d["crc32"] else None
    d["digests"] = {
        "sha256": f"sha256:{d['sha256']}",
        "blake3": f"blake3:{d['blake3']}",
        **({"autov3": f"sha256:{d['autov3']}"} if d["autov3"] else {}),
    }
    return d


def render(v: dict[str, Any]) -> list[Line]:
    size = v["size"]
    lines: list[Line] = [
        ("SHA256", v["sha256"]),
        ("AutoV2", v["autov2"]),
        ("AutoV1", v["autov1"]),
        ("AutoV3", v["autov3"] or "(not a safetensors file with a valid header length)"),
        ("BLAKE3", v["blake3"]),
        ("CRC32", f"{v['crc32'].upper()} (zlib), {v['crc32_civitai']} (Civitai)"),
    ]
    if v.get("git_sha1"):
        lines.append(("Git blob SHA-1", v["git_sha1"]))
    lines.append(("Size", f"{size:,} bytes"))
    fmt = v["format"]
    if v.get("n_tensors") is not None:
        fmt += f", {v['n_tensors']:,} tensors"
    if v.get("header_len") is not None and v["format"] == "safetensors":
        fmt += f", header {v['header_len']:,} bytes"
    lines.append(("Format", fmt))
    lines.append(("First seen", v["first_seen"]))
    return lines


SECTION = Section("file", 0, load, render, title="File")
