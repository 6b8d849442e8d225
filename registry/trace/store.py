"""Recording traces: the ``images`` table (keyed by the image's SHA-256) and ``image_models`` links.

A re-trace of the same image replaces its row and links (the latest reading wins); every recording is
an ``image.trace`` event in the same transaction, so the event log says when and by whom an image was
attributed to a model.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from registry.store.events import EventLog
from registry.store.write import insert_rows
from registry.trace.facts import ImageTrace

LINKED = ("matched", "conflict", "weak")


def record_traces(con: duckdb.DuckDBPyConnection, traces: Sequence[ImageTrace]) -> int:
    """Store every trace that has a SHA-256 in one transaction; return how many images were recorded."""
    now = datetime.now(UTC)
    host = socket.gethostname()
    latest: dict[str, ImageTrace] = {}
    for t in traces:
        if t.sha256 is not None and t.meta.format != "unknown":
            latest[t.sha256] = t
    if not latest:
        return 0
    images: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    for sha, t in latest.items():
        d = t.to_dict()
        first = t.facts[0] if t.facts else None
        images.append(
            {
                "sha256": sha,
                "size": t.size,
                "format": t.meta.format,
                "width": t.meta.width,
                "height": t.meta.height,
                "generator": t.generator,
                "prompt": first.prompt if first else None,
                "seed": first.seed if first else None,
                "steps": first.steps if first else None,
                "sampler": first.sampler if first else None,
                "facts": json.dumps({"facts": d["facts"], "matches": d["matches"], "metadata_keys": d["metadata_keys"]},
                                    default=str),  # fmt: skip
                "c2pa": json.dumps(d["c2pa"]) if d["c2pa"] else None,
                "findings": json.dumps(d["findings"], default=str) if d["findings"] else None,
                "host": host,
                "path": t.path,
                "traced_at": now,
            }
        )
        seen: set[tuple[str, str, str | None]] = set()
        for m in t.matches:
            if m.status not in LINKED or m.model_sha256 is None:
                continue
            key = (m.model_sha256, m.ref.role, m.ref.name)
            if key in seen:
                continue
            seen.add(key)
            links.append(
                {
                    "image_sha256": sha,
                    "model_sha256": m.model_sha256,
                    "role": m.ref.role,
                    "ref_name": m.ref.name,
                    "ref_hash": ", ".join(h.value for h in m.ref.hashes) or None,
                    "weight": m.ref.weight,
                    "status": m.status,
                    "match_kind": m.match_kind,
                    "note": m.note,
                    "traced_at": now,
                }
            )
    shas = list(latest)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM image_models WHERE image_sha256 IN (SELECT unnest(?))", [shas])
        con.execute("DELETE FROM images WHERE sha256 IN (SELECT unnest(?))", [shas])
        insert_rows(con, "images", images)
        insert_rows(con, "image_models", links)
        log = EventLog(con)
        by_image: dict[str, list[dict[str, Any]]] = {}
        for link in links:
            by_image.setdefault(link["image_sha256"], []).append(
                {"model": link["model_sha256"], "status": link["status"], "match_kind": link["match_kind"]}
            )
        for sha, t in latest.items():
            log.append("image.trace", sha, {"path": t.path, "host": host, "generator": t.generator,
                                            "links": by_image.get(sha, [])}, at=now)  # fmt: skip
        log.flush()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(latest)


def resolve_image(con: duckdb.DuckDBPyConnection, ref: str) -> str:
    """A traced image's SHA-256 from its path (the file is hashed) or a unique SHA-256 prefix."""
    import hashlib
    import os
    import re

    from registry.errors import AmbiguousRef, NotFound, UsageError
    from registry.store.read import Candidate

    if os.path.isfile(ref):
        h = hashlib.sha256()
        with open(ref, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        sha = h.hexdigest()
        if con.execute("SELECT 1 FROM images WHERE sha256 = ? LIMIT 1", [sha]).fetchall():
            return sha
        raise NotFound(f"image {ref!r} (sha256 {sha[:16]}…) has not been traced; run `modelreg trace {ref}` first")
    v = ref.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{6,64}", v):
        raise UsageError(f"{ref!r} is neither an image file nor a SHA-256 prefix (6+ hex)")
    rows = con.execute(
        "SELECT DISTINCT sha256, path FROM images WHERE sha256 >= ? AND sha256 < ? ORDER BY sha256 LIMIT 20",
        [v, v[:-1] + chr(ord(v[-1]) + 1)],
    ).fetchall()
    if not rows:
        raise NotFound(f"no traced image matches {ref!r} (run `modelreg trace IMAGE` first)")
    if len(rows) > 1:
        raise AmbiguousRef(f"{ref!r} matches {len(rows)} traced images; give more of the hash:",
                           [Candidate(s, p, "image sha256") for s, p in rows])  # fmt: skip
    return str(rows[0][0])
