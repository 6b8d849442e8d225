"""A small real registry for the evidence tests: one LoRA-shaped safetensors file, scanned by hand.

Until the scan lands on this branch the rows are written with plain SQL, with digests computed here
independently (hashlib, blake3, zlib).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import numpy as np

from registry.files.safetensors import read_header
from registry.store.db import connect
from tests.builders import write_safetensors

GENESIS = "0" * 64


@dataclass
class Fixture:
    db: Path
    model: Path
    sha256: str


def lora_tensors(rank: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for block, dim in (("down_blocks_0", 32), ("mid_block", 48), ("up_blocks_1", 32)):
        base = f"lora_unet_{block}_attentions_0_proj_in"
        out[f"{base}.lora_down.weight"] = rng.standard_normal((rank, dim)).astype(np.float16)
        out[f"{base}.lora_up.weight"] = rng.standard_normal((dim, rank)).astype(np.float16)
        out[f"{base}.alpha"] = np.array(rank / 2, dtype=np.float16)
    return out


def digests(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "autov1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
        "autov2": hashlib.sha256(data).hexdigest()[:10],
        "autov3": hashlib.sha256(data[8 + n :]).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
        "crc32": f"{zlib.crc32(data):08X}",
        "header_len": n,
    }


def append_event(con: Any, action: str, subject: str | None, payload: dict[str, Any], at: str) -> None:
    row = con.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
    body = json.dumps([seq, at, "test", action, subject, payload, prev], sort_keys=True).encode()
    h = hashlib.sha256(body).hexdigest()
    con.execute(
        "INSERT INTO events VALUES (?, ?::TIMESTAMPTZ, 'test', ?, ?, ?, ?, ?)",
        [seq, at, action, subject, json.dumps(payload), prev, h],
    )


def register(con: Any, model: Path, host: str = "lab-1", seen_at: str = "2024-05-01 12:00:00+00") -> str:
    d = digests(model)
    h = read_header(model)
    meta = h.raw_metadata if getattr(h, "raw_metadata", None) is not None else h.metadata
    st = os.stat(model)
    con.execute(
        "INSERT INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 'safetensors', ?, ?, ?, 'test=1', ?::TIMESTAMPTZ)",
        [d["sha256"], st.st_size, d["autov1"], d["autov2"], d["autov3"], d["blake3"], d["crc32"],
         d["header_len"], len(h.tensors), json.dumps(meta) if meta is not None else None, seen_at],
    )
    con.execute(
        "INSERT INTO sightings (blob_sha256, host, path, size, mtime_ns, inode, device, seen_at, source, provenance) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?::TIMESTAMPTZ, 'scan', ?)",
        [d["sha256"], host, str(model), st.st_size, 1714564800123456789, st.st_ino, st.st_dev, seen_at,
         json.dumps({"repo_id": "someone/some-lora", "revision": "0123abcd", "file": model.name})],
    )
    for i, t in enumerate(h.tensors):
        con.execute(
            "INSERT INTO tensors VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [d["sha256"], i, t.name, t.dtype, list(t.shape), t.begin, t.end, t.offset, t.nbytes],
        )
    con.execute(
        "INSERT INTO findings (blob_sha256, host, path, rule_id, severity, severity_rank, message, evidence, created_at) "
        "VALUES (?, ?, ?, 'training.hash-claim-mismatch', 'medium', 2, "
        "'embedded sshs_model_hash does not match the tensor data', ?, ?::TIMESTAMPTZ)",
        [d["sha256"], host, str(model), json.dumps({"claimed": "ab" * 32, "computed": d["autov3"]}), seen_at],
    )
    append_event(con, "blob.add", d["sha256"], {"size": st.st_size, "format": "safetensors"}, seen_at)
    append_event(con, "sighting.add", d["sha256"], {"host": host, "path": str(model)}, seen_at)
    return str(d["sha256"])


def make_registry(tmp_path: Path) -> Fixture:
    model = write_safetensors(
        tmp_path / "models" / "some-lora.safetensors",
        lora_tensors(),
        {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_output_name": "some-lora",
         "sshs_model_hash": "ab" * 32, "ss_tag_frequency": json.dumps({"img": {"1girl": 10, "smile": 4}})},
    )
    db = tmp_path / "registry.duckdb"
    with connect(db) as con:
        sha = register(con, model)
        append_event(con, "scan.done", None, {"files": 1}, "2024-05-01 12:00:01+00")
    return Fixture(db=db, model=model, sha256=sha)
