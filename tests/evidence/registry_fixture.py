"""A small real registry for the evidence tests: one LoRA-shaped safetensors file, really scanned.

The scan writes blobs, sightings, tensors and events; one finding (of the kind the training-metadata
analyzer raises) is added with SQL so that reports have a finding to show whatever analyzers exist.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from registry.scan import scan
from registry.store.db import connect
from registry.store.events import append_event
from tests.builders import write_safetensors

MTIME_NS = 1714564800123456789  # 2024-05-01T12:00:00.123456789Z


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


def add_finding(con: Any, sha256: str, path: Path) -> None:
    # the training analyzer raises this finding itself (the fixture's sshs_model_hash is made up): keep
    # exactly the fixture's one, so that the tests do not depend on which analyzers exist
    con.execute("DELETE FROM findings WHERE blob_sha256 = ? AND rule_id = 'training.hash-claim-mismatch'", [sha256])
    con.execute(
        "INSERT INTO findings (blob_sha256, host, path, rule_id, severity, severity_rank, message, evidence, created_at) "
        "VALUES (?, 'lab-1', ?, 'training.hash-claim-mismatch', 'medium', 2, "
        "'embedded sshs_model_hash does not match the tensor data', ?, '2024-05-01 12:00:00+00'::TIMESTAMPTZ)",
        [sha256, str(path), json.dumps({"claimed": "ab" * 32})],
    )
    from registry.store.listing_table import refresh_listing

    refresh_listing(con, [sha256])  # (a direct edit: the list row follows it, as a writer's would)


def make_registry(tmp_path: Path) -> Fixture:
    model = write_safetensors(
        tmp_path / "models" / "some-lora.safetensors",
        lora_tensors(),
        {"ss_network_dim": "4", "ss_network_alpha": "2", "ss_output_name": "some-lora",
         "sshs_model_hash": "ab" * 32, "ss_tag_frequency": json.dumps({"img": {"1girl": 10, "smile": 4}})},
    )  # fmt: skip
    os.utime(model, ns=(MTIME_NS, MTIME_NS))
    db = tmp_path / "registry.duckdb"
    scan(
        [model],
        db,
        provenance=lambda _p: {"repo_id": "someone/some-lora", "revision": "0123abcd", "file": model.name},
    )
    with connect(db) as con:
        row = con.execute("SELECT blob_sha256 FROM sightings").fetchone()
        assert row is not None
        sha = str(row[0])
        con.execute("BEGIN TRANSACTION")
        add_finding(con, sha, model)
        append_event(con, "note.add", sha, {"text": "seen in filing 12"})
        con.execute("COMMIT")
    return Fixture(db=db, model=model, sha256=sha)
