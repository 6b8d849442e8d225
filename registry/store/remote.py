"""Recording what remote services said: Hub catalogs (``hf://``) and Civitai lookups.

Each answer is an observation (source, subject, URL, time, status) in ``remote_observations``; a Hub
catalog also lists its files in ``hub_files`` (LFS SHA-256, the safetensors header read by range
requests). Every write appends to the event log in the same transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import duckdb

from registry.hub import CivitaiObservation, RemoteCatalog
from registry.store.events import EventLog
from registry.store.write import insert_rows


def _observation_id(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT nextval('remote_observation_id_seq')").fetchone()
    assert row is not None
    return int(row[0])


def record_hub_catalog(con: duckdb.DuckDBPyConnection, cat: RemoteCatalog) -> int:
    """Store one catalog (one observation, one row per file) in one transaction; return the observation id."""
    now = datetime.now(UTC)
    con.execute("BEGIN TRANSACTION")
    try:
        oid = _observation_id(con)
        data = cat.as_dict()
        data.pop("files")
        data["n_files"] = len(cat.files)
        insert_rows(
            con,
            "remote_observations",
            [
                {
                    "id": oid,
                    "source": "hf-hub",
                    "subject": data["uri"],
                    "blob_sha256": None,
                    "url": cat.api_url,
                    "observed_at": cat.observed_at,
                    "status": 200,
                    "found": True,
                    "data": json.dumps(data, sort_keys=True, default=str),
                }
            ],
        )
        rows: list[dict[str, Any]] = []
        for f in cat.files:
            h = f.header
            rows.append(
                {
                    "observation_id": oid,
                    "repo_id": cat.repo_id,
                    "revision": cat.commit,
                    "path": f.path,
                    "url": f.url,
                    "size": f.size,
                    "sha256": f.sha256,
                    "blob_id": f.blob_id,
                    "header_len": h.header_len if h else None,
                    "n_tensors": len(h.tensors) if h else None,
                    "metadata": json.dumps(h.raw_metadata, sort_keys=True) if h and h.raw_metadata is not None else None,
                    "tensors": json.dumps([[t.name, t.dtype, list(t.shape)] for t in h.tensors]) if h else None,
                    "findings": json.dumps([x.as_dict() for x in f.findings], sort_keys=True) if f.findings else None,
                    "observed_at": cat.observed_at,
                }
            )
        insert_rows(con, "hub_files", rows)
        log = EventLog(con)
        log.append(
            "remote.observe",
            data["uri"],
            {
                "source": "hf-hub",
                "url": cat.api_url,
                "commit": cat.commit,
                "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in cat.files],
            },
            at=now,
        )
        log.flush()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return oid


def civitai_row(obs: CivitaiObservation, blob_sha256: str | None) -> dict[str, Any]:
    return {
        "source": "civitai",
        "subject": obs.hash,
        "blob_sha256": blob_sha256,
        "url": obs.url,
        "observed_at": obs.observed_at,
        "status": obs.status,
        "found": obs.found,
        "data": json.dumps(obs.as_dict(), sort_keys=True),
    }
