"""Section ``declaration``: the current training-data declaration, its history, the contradictions
with the evidence found by its latest check, and the overfitting indicators with their formulas."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def _iso(v: Any) -> Any:
    return iso_utc(v) if isinstance(v, datetime) else v


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    # most models have no declaration: answer that without importing the validator (jsonschema)
    if con.execute("SELECT 1 FROM declarations WHERE blob_sha256 = ? LIMIT 1", [sha256]).fetchone() is None:
        return None
    from registry.store.declarations import current_declaration, history, latest_check

    cur = current_declaration(con, sha256)
    if cur is None:
        return None
    check = latest_check(con, cur["id"])
    return {
        "current": {
            "version": cur["version"],
            "declared_at": _iso(cur["declared_at"]),
            "sha256": cur["sha256"],
            "source_path": cur["source_path"],
            "actor": cur["actor"],
            "event_hash": cur["event_hash"],
            "document": cur["document"],
        },
        "history": [{k: _iso(v) for k, v in h.items()} for h in history(con, sha256)],
        "checked_at": _iso(check["checked_at"]) if check else None,
        "contradictions": check["contradictions"] if check else [],
        "indicators": check["indicators"] if check else [],
        "inputs": check["inputs"] if check else {},
    }


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if not v.is_integer() else str(int(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_num(x)}" for k, x in v.items()) + "}"
    return "?" if v is None else str(v)


def render_indicator(i: dict[str, Any]) -> str:
    """``exposures_per_image (embedded) = 71.58 = images_per_epoch × epochs / distinct_images [170, 8, 19]``"""
    head = f"{i['id']} ({i['source']}) = {_num(i['value'])}"
    inputs = ", ".join(f"{k}={_num(v)}" for k, v in i["inputs"].items() if not isinstance(v, dict))
    text = f"{head}  ← {i['formula']}" + (f"; {inputs}" if inputs else "")
    if i.get("missing"):
        text += f"  (missing: {', '.join(i['missing'])})"
    return text


def render(v: dict[str, Any]) -> list[Line]:
    cur = v["current"]
    doc = cur["document"]
    dec = doc.get("declarant", {})
    who = dec.get("name", "?") + (f" ({dec['organization']})" if dec.get("organization") else "")
    training = doc.get("training", {})
    method = training.get("method", "?") + (f" / {training['lycorisAlgorithm']}" if training.get("lycorisAlgorithm") else "")
    if training.get("baseArchitecture"):
        method += f", {training['baseArchitecture']}"
    lines: list[Line] = [
        ("Version", f"{cur['version']} of {len(v['history'])}, recorded {cur['declared_at']} by {cur['actor']}"),
        ("Declarant", f"{who}, dated {doc.get('date', '?')}"),
        ("Document", f"sha256:{cur['sha256']}" + (f" from {cur['source_path']}" if cur.get("source_path") else "")),
        ("Covers", ", ".join(f"{k} {val}" for k, val in doc.get("model", {}).items() if k in ("sha256", "autov3"))),
        ("Method", method),
    ]
    for b in doc.get("baseModels", []):
        lines.append(("Base model", b.get("name", "?") + (f" ({', '.join(f'{k} {h}' for k, h in b.get('hashes', {}).items())})" if b.get("hashes") else "")))
    for ds in doc.get("datasets", []):
        role = "" if ds.get("role", "training") == "training" else f" [{ds['role']}]"
        reps = f" × {ds['repeats']} repeats" if ds.get("repeats") else ""
        lines.append(("Dataset", f"{ds.get('name')}{role}: {ds.get('itemCount')} items{reps}, licence {ds.get('license')}"))
    if doc.get("model", {}).get("license"):
        lines.append(("Model licence", doc["model"]["license"]))
    n = len(v["contradictions"])
    lines.append(("Contradictions", f"{n} (checked {v['checked_at']})" if n else f"none found (checked {v['checked_at']})"))
    for c in v["contradictions"]:
        lines.append(f"  [{c['severity'].upper():6}] {c['rule_id']}: {c['message']}")
    shown = [i for i in v["indicators"] if i.get("value") is not None]
    if shown:
        lines.append(("Indicators", f"{len(shown)} computed (formula ← inputs; no single score)"))
        for i in shown:
            lines.append(f"  {render_indicator(i)}")
    if len(v["history"]) > 1:
        lines.append(("History", ""))
        for h in v["history"]:
            lines.append(f"  v{h['version']}  {h['declared_at']}  sha256:{h['sha256'][:16]}…  {h.get('source_path') or ''}".rstrip())
    return lines


SECTION = Section("declaration", 80, load, render, title="Training-data declaration")
