"""Section ``provenance``: where this content came from, by every account the registry holds.

* Hugging Face cache sightings: "downloaded from org/name at commit abc123" (repository, commit, file);
* Hub catalogs (``scan hf://…``) that list a file with this SHA-256: "published on the Hub as …";
* sidecars next to a copy (``.civitai.info``, ``.cm-info.json``): what they claim, and whether their
  hashes match this content;
* Civitai by-hash lookups: what Civitai said, when, at which URL.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from registry.evidence.canonical import iso_utc
from registry.record import Line, Section

if TYPE_CHECKING:
    import duckdb


def load(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    rows = con.execute(
        "SELECT host, path, seen_at, CAST(provenance AS VARCHAR) FROM sightings "
        "WHERE blob_sha256 = ? AND provenance IS NOT NULL ORDER BY seen_at, id",
        [sha256],
    ).fetchall()
    downloads = []
    for host, path, seen_at, prov in rows:
        p = json.loads(prov)
        if not isinstance(p, dict) or not p.get("repo_id"):
            continue
        downloads.append(
            {
                "source": p.get("source", "hf-cache"),
                "repo_id": p["repo_id"],
                "repo_type": p.get("repo_type", "model"),
                "revision": p.get("revision"),
                "refs": p.get("refs") or [],
                "file": p.get("file"),
                "host": host,
                "path": path,
                "seen_at": iso_utc(seen_at),
            }
        )
    if downloads:
        out["downloads"] = downloads
    hub = con.execute(
        "SELECT repo_id, revision, path, url, size, observed_at FROM hub_files WHERE sha256 = ? "
        "ORDER BY observed_at, repo_id, path",
        [sha256],
    ).fetchall()
    if hub:
        out["hub"] = [
            {"repo_id": r, "revision": c, "file": p, "url": u, "size": s, "observed_at": iso_utc(t)}
            for r, c, p, u, s, t in hub
        ]
    side = con.execute(
        "SELECT host, model_path, sidecar_path, kind, verdict, name, version_name, creator, base_model, "
        "model_type, model_id, version_id, trained_words, CAST(hashes AS VARCHAR), read_at "
        "FROM sidecar_claims WHERE blob_sha256 = ? ORDER BY read_at, sidecar_path",
        [sha256],
    ).fetchall()
    if side:
        out["sidecars"] = [
            {
                "host": h,
                "model_path": mp,
                "sidecar": sp,
                "kind": k,
                "verdict": v,
                "name": n,
                "version_name": vn,
                "creator": c,
                "base_model": bm,
                "model_type": mt,
                "model_id": mi,
                "version_id": vi,
                "trained_words": list(tw or []),
                "hashes": json.loads(hs) if hs else {},
                "read_at": iso_utc(ra),
            }
            for h, mp, sp, k, v, n, vn, c, bm, mt, mi, vi, tw, hs, ra in side
        ]
    obs = con.execute(
        "SELECT source, url, observed_at, status, found, CAST(data AS VARCHAR) FROM remote_observations "
        "WHERE blob_sha256 = ? ORDER BY observed_at, id",
        [sha256],
    ).fetchall()
    if obs:
        out["lookups"] = [
            {
                "source": s,
                "url": u,
                "observed_at": iso_utc(t),
                "status": st,
                "found": bool(f),
                "data": json.loads(d) if d else None,
            }
            for s, u, t, st, f, d in obs
        ]
    return out or None


def _claim_text(c: dict[str, Any]) -> str:
    what = repr(c["name"]) if c.get("name") else "a model"
    if c.get("version_name"):
        what += f" {c['version_name']!r}"
    parts = [what]
    if c.get("creator"):
        parts.append(f"by {c['creator']}")
    if c.get("base_model"):
        parts.append(f"base model {c['base_model']}")
    if c.get("trained_words"):
        parts.append("trained words: " + ", ".join(c["trained_words"][:8]))
    verdict = {
        "match": "its hashes match this file",
        "mismatch": "its hashes do NOT match this file",
        "edited": "it matches this file's weights but not its bytes (edited after download)",
        "no-hashes": "it gives no hash to check",
        "unreadable": "it could not be read",
    }.get(c.get("verdict") or "", c.get("verdict") or "")
    return ", ".join(parts) + f"; {verdict}"


def render(v: dict[str, Any]) -> list[Line]:
    lines: list[Line] = []
    for d in v.get("downloads", []):
        refs = f" ({', '.join(d['refs'])})" if d.get("refs") else ""
        lines.append(
            f"downloaded from {d['repo_id']} at commit {(d.get('revision') or '?')[:12]}{refs}, "
            f"file {d.get('file')}  [{d['host']}:{d['path']}]"
        )
    for h in v.get("hub", []):
        lines.append(f"published on the Hub as {h['repo_id']} at commit {h['revision'][:12]}, file {h['file']}  ({h['url']}, seen {h['observed_at'][:19]})")
    for c in v.get("sidecars", []):
        label = c["sidecar"].rsplit("/", 1)[-1]
        lines.append(f"sidecar {label} claims {_claim_text(c)}")
    for o in v.get("lookups", []):
        when = o["observed_at"][:19]
        if not o["found"]:
            err = (o.get("data") or {}).get("error")
            lines.append(f"{o['source']} ({when}): {'no answer: ' + err if err else 'not found'}  ({o['url']})")
            continue
        d = o.get("data") or {}
        desc = repr(d.get("model_name")) if d.get("model_name") else "a model"
        if d.get("version_name"):
            desc += f" {d['version_name']!r}"
        extra = [x for x in (d.get("model_type"), f"base {d['base_model']}" if d.get("base_model") else None) if x]
        if d.get("poi"):
            extra.append("depicts a real person (POI)")
        lines.append(f"{o['source']} ({when}) says {desc}" + (f" ({', '.join(extra)})" if extra else "") + f"  ({o['url']})")
    return lines


SECTION = Section("provenance", 6, load, render, title="Provenance")
