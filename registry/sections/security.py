"""Section ``security``: the static pickle scan — verdict, the imported names that decided it (with
their byte offsets), what could not be scanned and why, tricks seen, and the tensors recovered."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def _j(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT verdict, reason, format, CAST(deciding AS VARCHAR), CAST(globals AS VARCHAR), "
        "CAST(streams AS VARCHAR), members, unscannable, evasions, CAST(container AS VARCHAR), "
        "tensors_recovered, tensors_readable, state_dict_key FROM pickle_scans WHERE blob_sha256 = ? "
        "ORDER BY verdict_rank DESC LIMIT 1",
        [sha256],
    ).fetchone()
    if row is None:
        fmt = con.execute("SELECT format FROM blobs WHERE sha256 = ?", [sha256]).fetchone()
        if fmt and fmt[0] in ("safetensors", "gguf"):
            return {"verdict": "safe", "reason": f"{fmt[0]} holds tensors and metadata only, no code", "format": fmt[0]}
        return None
    keys = ["verdict", "reason", "format", "deciding", "globals", "streams", "members", "unscannable", "evasions",
            "container", "tensors_recovered", "tensors_readable", "state_dict_key"]  # fmt: skip
    v = dict(zip(keys, row, strict=True))
    for k in ("deciding", "globals", "streams", "container"):
        v[k] = _j(v[k])
    for k in ("members", "unscannable", "evasions"):
        v[k] = list(v[k] or [])
    return v


def _where(g: dict[str, Any]) -> str:
    member = g.get("member")
    if member and not g.get("absolute", True):
        return f"byte {g['offset']:,} of member {member}"
    return f"byte {g['offset']:,} of the file" + (f", in {member}" if member else "")


def render(v: dict[str, Any]) -> list[Line]:
    lines: list[Line] = [("Verdict", f"{v['verdict'].upper()}: {v['reason']}")]
    if "deciding" not in v:
        return lines
    for g in v["deciding"] or []:
        lines.append(("Decided by", f"{g['module']}.{g['name']}: {g['opcode']} at {_where(g)}; {g['reason']}"))
    others = [f"{g['module']}.{g['name']}" for g in v["globals"] or [] if g["safety"] == "safe"]
    if others:
        uniq = sorted(set(others))
        lines.append(("Allowed imports", ", ".join(uniq[:12]) + (f" and {len(uniq) - 12} more" if len(uniq) > 12 else "")))
    streams = v["streams"] or []
    what = f"{len(streams)} pickle stream(s)"
    container = v.get("container") or {}
    if v["format"] == "safetensors" and "unaccounted_bytes" in container:
        what = (f"header and tensors checked; {container['unaccounted_bytes']:,} byte(s) they do not account for; "
                f"{what} from byte 0 or in those bytes")  # fmt: skip
    if v["members"]:
        what += f" in {len(v['members']):,} archive member(s)"
    lines.append(("Scanned", f"{v['format']}: {what}"))
    for u in v["unscannable"][:10]:
        lines.append(("Unscannable", u))
    for e in v["evasions"][:10]:
        lines.append(("Trick", e))
    if v.get("tensors_recovered") is not None:
        where = f" under '{v['state_dict_key']}'" if v.get("state_dict_key") else ""
        lines.append(("Tensors", f"{v['tensors_recovered']:,} recovered{where} without unpickling, "
                                  f"{v['tensors_readable']:,} readable in place"))  # fmt: skip
    return lines


SECTION = Section("security", 15, load, render, title="Security")
