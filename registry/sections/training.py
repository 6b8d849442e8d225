"""Section ``training``: the file's own account of how it was trained (embedded metadata), its trigger
words, the checks of its embedded hash claims, and the registered base model it names."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb

_TOP_TAGS = 8


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    row = con.execute("SELECT CAST(facts AS VARCHAR) FROM training_facts WHERE blob_sha256 = ? LIMIT 1", [sha256]).fetchone()
    if row is not None and row[0]:
        out["facts"] = json.loads(row[0])
    checks = con.execute(
        "SELECT claim_key, claimed, computed_kind, computed, outcome, reason FROM hash_checks WHERE blob_sha256 = ? "
        "ORDER BY claim_key",
        [sha256],
    ).fetchall()
    if checks:
        out["hash_checks"] = [
            dict(zip(["claim_key", "claimed", "computed_kind", "computed", "outcome", "reason"], c, strict=True)) for c in checks
        ]
    links = con.execute(
        "SELECT base_sha256, matched_on, claimed FROM base_links WHERE adapter_sha256 = ? ORDER BY base_sha256",
        [sha256],
    ).fetchall()
    if links:
        # each base's last-seen path by its own indexed lookup (as one correlated subquery, DuckDB ranked
        # every sighting of the registry: ~140 ms at 100,000 models, even with no link at all)
        out["base_links"] = [
            {"base_sha256": b, "matched_on": m, "claimed": c, "path": _last_path(con, b)} for b, m, c in links
        ]
    return out or None


def _last_path(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    row = con.execute(
        "SELECT path FROM sightings WHERE blob_sha256 = ? ORDER BY seen_at DESC, id DESC LIMIT 1", [sha256]
    ).fetchone()
    return row[0] if row is not None else None


def _num(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:g}"
    return str(x)


def render(v: dict[str, Any]) -> list[Line]:
    f: dict[str, Any] = v.get("facts") or {}
    lines: list[Line] = []
    if f:
        trainer = f.get("trainer") or "not named"
        if f.get("trainer_version"):
            trainer += f" ({f['trainer_version']})"
        lines.append(("Trainer", trainer + (f"; metadata: {', '.join(f['sources'])}" if f.get("sources") else "")))
        for label, key in (("Title", "title"), ("Output name", "output_name"), ("Author", "author"), ("License", "license")):
            if f.get(key) and not (key == "output_name" and f.get(key) == f.get("title")):
                lines.append((label, str(f[key])))
        base = [x for x in (f.get("base_model_name"), f.get("base_model_version") and f"version {f['base_model_version']}") if x]
        if f.get("architecture_claim"):
            base.append(f"modelspec {f['architecture_claim']}")
        hashes = f.get("base_model_hashes") or {}
        if hashes:
            base.append(", ".join(f"{k} {h}" for k, h in sorted(hashes.items())))
        if base:
            lines.append(("Base model", "; ".join(base)))
    for link in v.get("base_links") or []:
        where = link.get("path") or "(no sighting)"
        lines.append(("Linked base", f"{link['base_sha256'][:12]} {where} (matched on {link['matched_on']} {link['claimed']})"))
    if f:
        net = [x for x in (f.get("network_module"),
                           f.get("network_dim") is not None and f"dim {f['network_dim']}",
                           f.get("network_alpha") is not None and f"alpha {_num(f['network_alpha'])}") if x]  # fmt: skip
        if f.get("network_args"):
            net.append("args " + json.dumps(f["network_args"], ensure_ascii=False)[:120])
        if net:
            lines.append(("Network", ", ".join(str(x) for x in net)))
        ds = f.get("datasets") or []
        train = [d for d in ds if not d.get("is_reg")]
        if ds or f.get("num_train_images") is not None:
            distinct = sum(d.get("img_count") or 0 for d in train)
            parts = []
            if train:
                parts.append(f"{distinct} images in {len(train)} folder(s)")
            if f.get("num_train_images") is not None:
                parts.append(f"{f['num_train_images']} with repeats")
            if f.get("num_reg_images"):
                parts.append(f"{f['num_reg_images']} regularisation images")
            lines.append(("Data", ", ".join(parts) or "—"))
            for d in ds[:10]:
                what = f"{d.get('img_count', '?')} images x {d.get('n_repeats', '?')} repeats" + (" (regularisation)" if d.get("is_reg") else "")
                lines.append(("", f"{d['name']}: {what}"))
        sched = [x for x in (f.get("epochs") is not None and f"{f['epochs']} epochs",
                             f.get("epoch") is not None and f"saved at epoch {f['epoch']}",
                             f.get("steps") is not None and f"{f['steps']} steps",
                             f.get("batch_size") is not None and f"batch {f['batch_size']}",
                             f.get("resolution")) if x]  # fmt: skip
        if sched:
            lines.append(("Schedule", ", ".join(str(x) for x in sched)))
        lr = [x for x in (f.get("learning_rate") is not None and f"lr {_num(f['learning_rate'])}",
                          f.get("unet_lr") is not None and f"unet {_num(f['unet_lr'])}",
                          f.get("text_encoder_lr") is not None and f"text encoder {_num(f['text_encoder_lr'])}",
                          f.get("optimizer"), f.get("lr_scheduler")) if x]  # fmt: skip
        if lr:
            lines.append(("Optimisation", ", ".join(str(x) for x in lr)))
        if f.get("started_at") or f.get("finished_at") or f.get("saved_at"):
            when = f"{f.get('started_at') or '?'} → {f.get('finished_at') or '?'}"
            if f.get("saved_at"):
                when += f" (saved {f['saved_at']})"
            lines.append(("Trained", when))
        words = f.get("trigger_words") or []
        src = f.get("trigger_sources") or {}
        named = [w for w in words if not str(src.get(w, "")).startswith("tags:")]
        inferred = [w for w in words if str(src.get(w, "")).startswith("tags:")]
        if named:
            lines.append(("Trigger words", ", ".join(
                f"{w} (named by the file: {_trigger_source(src[w])})" if w in src else w for w in named)))
        if inferred:
            lines.append(("Frequent tags", ", ".join(f"{w} (folder {src[w][5:]})" for w in inferred)
                          + " — inferred by modelreg from caption counts; the file does not name them trigger words"))
        for i, (folder, tags) in enumerate((f.get("tag_frequency") or {}).items()):
            top = sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_TAGS]
            lines.append(("Top tags" if i == 0 else "", f"{folder}: " + ", ".join(f"{t} {n}" for t, n in top)))
        if f.get("merged_from"):
            lines.append(("Merged from", ", ".join(f["merged_from"])))
    for i, c in enumerate(v.get("hash_checks") or []):
        lines.append(("Hash claims" if i == 0 else "", f"{c['claim_key']} {c['claimed']}: {c['outcome'].upper()} — {c['reason']}"))
    out: list[Line] = []
    for ln in lines:
        out.append((ln[0], _clip(str(ln[1]))) if isinstance(ln, tuple) else ln)
    return out


def _trigger_source(source: str) -> str:
    """Where the file names a trigger word, in words."""
    kind, _, rest = source.partition(":")
    if kind == "modelspec.trigger_phrase":
        return "modelspec.trigger_phrase"
    if kind == "class_tokens":
        return f"class tokens of folder {rest}"
    if kind == "folder":
        return f"name of training folder {rest}"
    return source


def _clip(text: str, n: int = 300) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + f"… ({len(text):,} chars)"


SECTION = Section("training", 30, load, render, title="Training (the file's own account)")
