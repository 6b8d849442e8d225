"""Probe runs in the registry: one transaction per run (run, samples with embeddings, figures, and a
``probe.run`` event in the hash-chained log). No torch here: reading runs needs only the core."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from registry.store.events import actor, append_event
from registry.store.read import fetch_dicts
from registry.store.write import insert_columns, insert_rows


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def record_run(con: duckdb.DuckDBPyConnection, blob_sha256: str, result: Any, base_sha256: str | None = None) -> int:
    """Write one :class:`registry.probe.run.ProbeResult` for model ``blob_sha256``; returns the run id.
    The caller owns the connection; everything is written in one transaction."""
    cfg = result.config
    level = cfg["metrics"]["level"]
    metrics_digest = hashlib.sha256(
        json.dumps([m.as_dict() for m in result.metrics], sort_keys=True).encode()
    ).hexdigest()
    samples_digest = hashlib.sha256(
        json.dumps([[s.arm, s.prompt_id, s.seed, s.sha256] for s in result.samples]).encode()
    ).hexdigest()
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute("SELECT nextval('probe_run_id_seq')").fetchone()
        assert row is not None
        run_id = int(row[0])
        event = append_event(con, "probe.run", blob_sha256, {
            "run_id": run_id,
            "mode": cfg["mode"],
            "base": cfg["base"],
            "battery": cfg["battery"]["name"],
            "embedder": cfg["embedder"].get("key"),
            "samples_sha256": samples_digest,
            "metrics_sha256": metrics_digest,
            "sheet_sha256": result.sheet_sha256,
        })
        insert_rows(con, "probe_runs", [{
            "id": run_id,
            "blob_sha256": blob_sha256,
            "mode": cfg["mode"],
            "base_ref": cfg["base"]["ref"],
            "base_key": cfg["base"]["key"],
            "base_sha256": base_sha256,
            "battery": cfg["battery"]["name"],
            "n_prompts": len(cfg["prompts"]),
            "n_seeds": len(cfg["seeds"]),
            "embedder": cfg["embedder"].get("key", "?"),
            "started_at": _ts(result.started_at),
            "finished_at": _ts(result.finished_at),
            "config": cfg,
            "versions": result.versions,
            "device": result.device,
            "timings": result.timings,
            "adapter": result.adapter,
            "summary": json.dumps(result.summary),
            "skipped": result.skipped,
            "notes": json.dumps(result.notes),
            "sheet_sha256": result.sheet_sha256,
            "store_root": result.store_root,
            "actor": actor(),
            "event_hash": event,
        }])
        s = result.samples
        emb = [np.asarray(result.embeddings[x.sha256], dtype=np.float32).tolist() for x in s]
        import pyarrow as pa

        insert_columns(con, "probe_samples", pa.table({
            "run_id": pa.array([run_id] * len(s), pa.int64()),
            "blob_sha256": [blob_sha256] * len(s),
            "arm": [x.arm for x in s],
            "prompt_id": [x.prompt_id for x in s],
            "prompt": [x.prompt for x in s],
            "seed": pa.array([x.seed for x in s], pa.int64()),
            "sha256": [x.sha256 for x in s],
            "cond_noise": pa.array([x.cond_noise for x in s], pa.float64()),
            "batch_size": pa.array([x.batch_size for x in s], pa.int32()),
            "cached": [x.cached for x in s],
            "batch_key": pa.array([x.batch_key for x in s], pa.string()),
            "batch_position": pa.array([x.batch_position for x in s], pa.int32()),
            "embedding": pa.array(emb, pa.list_(pa.float32())),
        }))
        ms = result.metrics
        insert_columns(con, "probe_metrics", pa.table({
            "run_id": pa.array([run_id] * len(ms), pa.int64()),
            "blob_sha256": [blob_sha256] * len(ms),
            "name": [m.name for m in ms],
            "grp": [m.group for m in ms],
            "arm": [m.arm for m in ms],
            "value": pa.array([m.value for m in ms], pa.float64()),
            "lo": pa.array([m.lo for m in ms], pa.float64()),
            "hi": pa.array([m.hi for m in ms], pa.float64()),
            "level": pa.array([level] * len(ms), pa.float64()),
            "n_prompts": pa.array([m.n for m in ms], pa.int32()),
        }))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return run_id


def _json(v: Any) -> Any:
    return json.loads(v) if isinstance(v, str) else v


def runs(con: duckdb.DuckDBPyConnection, blob_sha256: str) -> list[dict[str, Any]]:
    """Every run of one model, newest first (without samples)."""
    rows = fetch_dicts(
        con,
        "SELECT id, mode, base_ref, base_key, battery, n_prompts, n_seeds, embedder, started_at, finished_at, "
        "CAST(config AS VARCHAR) AS config, CAST(versions AS VARCHAR) AS versions, CAST(device AS VARCHAR) AS device, "
        "CAST(timings AS VARCHAR) AS timings, CAST(adapter AS VARCHAR) AS adapter, CAST(summary AS VARCHAR) AS summary, "
        "CAST(skipped AS VARCHAR) AS skipped, CAST(notes AS VARCHAR) AS notes, sheet_sha256, store_root, actor, event_hash "
        "FROM probe_runs WHERE blob_sha256 = ? ORDER BY finished_at DESC, id DESC",
        [blob_sha256],
    )
    for r in rows:
        for k in ("config", "versions", "device", "timings", "adapter", "summary", "skipped", "notes"):
            r[k] = _json(r[k])
    return rows


def metrics(con: duckdb.DuckDBPyConnection, run_id: int) -> list[dict[str, Any]]:
    return fetch_dicts(
        con,
        "SELECT name, grp AS \"group\", arm, value, lo, hi, level, n_prompts FROM probe_metrics WHERE run_id = ? "
        "ORDER BY rowid",
        [run_id],
    )


def samples(con: duckdb.DuckDBPyConnection, run_id: int, with_embeddings: bool = False) -> list[dict[str, Any]]:
    cols = "arm, prompt_id, prompt, seed, sha256, cond_noise, batch_size, cached, batch_key, batch_position" + (
        ", embedding" if with_embeddings else ""
    )
    return fetch_dicts(con, f"SELECT {cols} FROM probe_samples WHERE run_id = ? ORDER BY rowid", [run_id])


def sample_path(store_root: str | Path, sha256: str) -> Path:
    return Path(store_root) / "samples" / sha256[:2] / f"{sha256}.png"
