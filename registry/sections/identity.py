"""Section ``identity``: what the file is (kind, adapter type, architecture), how sure, and why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.archs import ARCH_LABELS
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

KIND_LABELS = {
    "checkpoint": "checkpoint (full model)",
    "lora": "LoRA",
    "lycoris": "LyCORIS adapter",
    "embedding": "textual-inversion embedding",
    "vae": "VAE (autoencoder)",
    "text_encoder": "text encoder",
    "controlnet": "ControlNet",
    "ip_adapter": "IP-Adapter",
    "t2i_adapter": "T2I-Adapter",
    "image_encoder": "image encoder (CLIP vision)",
    "motion_module": "motion module (AnimateDiff)",
    "unknown": "unknown",
}
_MAX_EVIDENCE = 8


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    row = con.execute(
        "SELECT kind, adapter_type, key_style, arch, arch_variant, confidence, kind_confidence, source, components, "
        "arch_candidates, CAST(evidence AS VARCHAR), CAST(claims AS VARCHAR), CAST(details AS VARCHAR) "
        "FROM identity WHERE blob_sha256 = ? LIMIT 1",
        [sha256],
    ).fetchone()
    if row is None:
        return None
    keys = ["kind", "adapter_type", "key_style", "arch", "arch_variant", "confidence", "kind_confidence", "source",
            "components", "arch_candidates", "evidence", "claims", "details"]  # fmt: skip
    d: dict[str, Any] = dict(zip(keys, row, strict=True))
    for k in ("evidence", "claims", "details"):
        d[k] = json.loads(d[k]) if d[k] else ([] if k != "details" else {})
    d["components"] = list(d["components"] or [])
    d["arch_candidates"] = list(d["arch_candidates"] or [])
    n = con.execute("SELECT count(*) FROM base_links WHERE base_sha256 = ?", [sha256]).fetchone()
    d["adapters_on_this_base"] = int(n[0]) if n else 0
    d["sha256"] = sha256
    return d


def arch_text(arch: str, variant: str | None) -> str:
    label = ARCH_LABELS.get(arch) or (arch.split(":", 1)[1] if arch.startswith("other:") else arch)
    return f"{label} ({variant})" if variant else label


def render(v: dict[str, Any]) -> list[Line]:
    kind = KIND_LABELS.get(v["kind"], v["kind"])
    extra = [x for x in (v.get("adapter_type"), f"{v['key_style']} keys" if v.get("key_style") else None) if x]
    lines: list[Line] = [("Kind", kind + (f" — {', '.join(extra)}" if extra else ""))]
    if v["arch"] == "unknown":
        arch = "unknown"
        if v.get("arch_candidates"):
            arch += " — could be " + ", ".join(arch_text(a, None) for a in v["arch_candidates"])
    else:
        src = {"shapes": "from tensor shapes", "metadata": "from metadata only", "config": "from config files"}.get(
            v["source"], v["source"]
        )
        arch = f"{arch_text(v['arch'], v.get('arch_variant'))} [{v['arch']}] — {v['confidence']} confidence, {src}"
    lines.append(("Architecture", arch))
    if v.get("components"):
        lines.append(("Components", ", ".join(v["components"])))
    ev = v.get("evidence") or []
    for i, e in enumerate(ev[:_MAX_EVIDENCE]):
        text = e.get("what", "")
        if e.get("key"):
            shape = e.get("shape")
            text += f"  [{e['key']}" + (f" {shape}" if shape is not None else "") + "]"
        lines.append(("Evidence" if i == 0 else "", text))
    if len(ev) > _MAX_EVIDENCE:
        lines.append(("", f"… {len(ev) - _MAX_EVIDENCE} more (show --format json)"))
    for i, c in enumerate(v.get("claims") or []):
        said = ", ".join(x for x in (c.get("arch"), c.get("variant"), c.get("kind")) if x) or "nothing recognisable"
        if c.get("arch") and v["source"] == "shapes" and v["arch"] != "unknown":
            verdict = "agrees" if c["arch"] == v["arch"] else "CONTRADICTS the shapes"
            said += f"; {verdict}"
        value = str(c.get("value"))
        value = value if len(value) <= 120 else value[:119] + "…"
        lines.append(("Metadata says" if i == 0 else "", f"{c.get('key')} = {value!r} ({said})"))
    n = v.get("adapters_on_this_base")
    if n:
        hint = f"modelreg ls --base {str(v.get('sha256', ''))[:12]}"
        lines.append(("Base of", f"{n} registered adapter{'s' if n != 1 else ''} name this file as their base ({hint})"))
    return lines


# named "identify" (the record key and the exhibit report's chapter "Kind and architecture")
SECTION = Section("identify", 10, load, render, title="Identity")
