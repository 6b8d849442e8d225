"""The ``model_listing`` table (issue 18) is the ``models`` view's list columns, materialised by the
writers in the transaction of each change: after scans, rescans, moves, touches, replaced and deleted
files, re-analysis and audits (findings added and removed) it must equal the view exactly; the migration
fills it for an older registry; a change of its definition rebuilds it; and every ``ls`` query answers
the same through it as through the view itself."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from registry.listing import ListQuery, list_models
from registry.scan import scan
from registry.store.db import connect
from registry.store.listing_table import listing_differences, rebuild_listing
from tests.builders import write_safetensors
from tests.test_audit import run as cli
from tests.test_audit import world_at_home


def _lora(seed: int, rank: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = "lora_unet_down_blocks_0_attentions_0_proj_in"
    return {
        f"{k}.lora_down.weight": rng.standard_normal((rank, 32)).astype(np.float16),
        f"{k}.lora_up.weight": rng.standard_normal((32, rank)).astype(np.float16),
        f"{k}.alpha": np.asarray(rank / 2, dtype=np.float16),
    }


#: the list columns as the view gives them, each computed here in Python from the view's own columns
VIEW_ROWS = "SELECT sha256, autov2, path, format, kind, arch, arch_variant, size, n_tensors, n_findings, max_severity_rank FROM models"
LISTING_ROWS = "SELECT sha256, autov2, name, path, format, kind, arch, arch_label, size, n_tensors, n_findings, max_severity_rank FROM model_listing"


def agree(db: Path) -> dict[str, dict[str, Any]]:
    """Assert that the listing equals the view (every column, independently for the plain ones); return
    the listing rows by SHA-256."""
    with connect(db, read_only=True) as con:
        assert listing_differences(con) == []
        want = {}
        for sha, av2, path, fmt, kind, arch, variant, size, nt, nf, sev in con.execute(VIEW_ROWS).fetchall():
            want[sha] = {"sha256": sha, "autov2": av2, "name": path.rsplit("/", 1)[-1] if path is not None else None,
                         "path": path, "format": fmt, "kind": kind, "arch": arch,
                         "arch_label": None if arch is None else arch + (f"/{variant}" if variant is not None else ""),
                         "size": size, "n_tensors": nt, "n_findings": nf, "max_severity_rank": sev}  # fmt: skip
        cur = con.execute(LISTING_ROWS)
        cols = [d[0] for d in cur.description]
        got = {r[0]: dict(zip(cols, r, strict=True)) for r in cur.fetchall()}
        n_blobs = con.execute("SELECT count(*) FROM blobs").fetchone()
    assert got == want
    assert n_blobs == (len(got),)
    return got


def test_listing_follows_scans_moves_touches_replacements_deletions_and_reanalysis(tmp_path: Path) -> None:
    db = tmp_path / "registry.duckdb"
    models = tmp_path / "models"
    a = write_safetensors(models / "a" / "Alpha_LoRA.safetensors", _lora(1),
                          {"ss_network_dim": "4", "ss_output_name": "Alpha", "ss_tag_frequency": json.dumps({"10_zqx": {"zqx": 3}})})  # fmt: skip
    b = write_safetensors(models / "b" / "beta.safetensors", _lora(2), {"ss_network_dim": "4"})
    shutil.copy(b, models / "b" / "beta-copy.safetensors")  # one content, two paths
    (models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    scan([models], db)
    rows = agree(db)
    assert len(rows) == 3
    sha_a = hashlib.sha256(a.read_bytes()).hexdigest()
    assert rows[sha_a]["name"] == "Alpha_LoRA.safetensors"

    # moved: the model's last-seen path is the new one
    moved = models / "c" / "Alpha_moved.safetensors"
    moved.parent.mkdir()
    os.rename(a, moved)
    scan([models], db)
    assert agree(db)[sha_a]["path"] == str(moved)

    # touched at the old place of the copy: the sighting is updated (sighting.update), no new row
    copy = models / "b" / "beta-copy.safetensors"
    os.utime(copy, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    scan([copy], db)
    sha_b = hashlib.sha256(b.read_bytes()).hexdigest()
    assert agree(db)[sha_b]["path"] == str(copy)

    # new content at a known path, and a deleted file: both models stay listed as the view says
    write_safetensors(b, _lora(3, rank=8), {"ss_network_dim": "8"})
    moved.unlink()
    scan([models], db)
    rows = agree(db)
    assert len(rows) == 4 and sha_a in rows

    # re-analysis replaces every derived row of every file
    scan([models], db, rehash=True)
    assert len(agree(db)) == 4


def test_listing_follows_audit_findings_added_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "registry.duckdb"
    monkeypatch.setenv("MODELREG_DB", str(db))
    w = world_at_home(tmp_path, monkeypatch)
    loras = str(w["loras"])
    sha = hashlib.sha256(w["other"].read_bytes()).hexdigest()
    cli("audit", loras)
    before = agree(db)[sha]["n_findings"]
    with connect(db, read_only=True) as con:
        n_sidecar = con.execute("SELECT count(*) FROM findings WHERE blob_sha256 = ? AND rule_id LIKE 'sidecar.%'", [sha]).fetchone()
    assert n_sidecar == (1,)
    # the sidecar fixed: its finding goes, and the listing's count with it
    (w["loras"] / "other.cm-info.json").write_text(json.dumps({"ModelName": "Claimed", "Hashes": {"SHA256": sha}}))
    cli("audit", loras)
    assert agree(db)[sha]["n_findings"] == before - 1


def test_migration_fills_the_listing_of_an_older_registry_and_a_new_definition_rebuilds_it(tmp_path: Path) -> None:
    db = tmp_path / "registry.duckdb"
    for i in range(4):
        write_safetensors(tmp_path / "m" / f"m{i}.safetensors", _lora(10 + i), {"ss_network_dim": "4", "ss_output_name": f"M{i}"})
    scan([tmp_path / "m"], db)
    want = agree(db)
    # the registry as modelreg wrote it before issue 18: no listing table, no such migration
    con = duckdb.connect(str(db))
    con.execute("DROP TABLE model_listing")
    con.execute("DELETE FROM migrations WHERE name = '1800_model_listing'")
    con.close()
    assert agree(db) == want  # a read-only open migrated it and filled the table
    # a row changed outside modelreg is named; a changed definition (views digest) rebuilds the table
    con = duckdb.connect(str(db))
    con.execute("UPDATE model_listing SET n_findings = 99 WHERE sha256 = (SELECT min(sha256) FROM model_listing)")
    assert len(listing_differences(con)) == 1
    con.execute("UPDATE meta SET value = 'older' WHERE key = 'views_sha256'")
    con.close()
    assert agree(db) == want
    with connect(db) as con:
        con.execute("UPDATE model_listing SET path = '/elsewhere'")
        rebuild_listing(con)
    assert agree(db) == want


QUERIES = [
    ListQuery(),
    ListQuery(sort="size", descending=True),
    ListQuery(sort="findings"),
    ListQuery(sort="name", limit=2, offset=1),
    ListQuery(sort="path", limit=2, offset=3),  # past the middle: read backwards
    ListQuery(sort="first_seen", descending=True, limit=3, offset=2),
    ListQuery(limit=2, offset=50),  # past the end
    ListQuery(q="ALPHA"),
    ListQuery(q="zqx"),  # inside ss_tag_frequency only
    ListQuery(q='"café'),  # a quote and a non-ASCII letter, matched in the metadata's JSON text
    ListQuery(q="Müller", sort="size"),
    ListQuery(q="/b/"),  # in the path only
    ListQuery(q="nothing matches this", limit=5),
    ListQuery(trigger="ZQ"),
    ListQuery(name_glob="*beta*"),
    ListQuery(kind="adapter", arch="sd1"),
    ListQuery(min_severity="medium"),
    ListQuery(file_format="safetensors", q="m", limit=2, offset=1),
]


def test_every_ls_query_answers_the_same_through_the_listing_as_through_the_view(tmp_path: Path) -> None:
    db = tmp_path / "registry.duckdb"
    models = tmp_path / "models"
    write_safetensors(models / "a" / "Alpha_LoRA.safetensors", _lora(1),
                      {"ss_network_dim": "4", "ss_output_name": "Alpha", "ss_tag_frequency": json.dumps({"10_zqx": {"zqx": 3}})})  # fmt: skip
    write_safetensors(models / "b" / "beta.safetensors", _lora(2), {"ss_network_dim": "4", "ss_training_comment": 'photos of "Café Müller"'})
    write_safetensors(models / "b" / "gamma.safetensors", _lora(3, rank=8), {"modelspec.title": "Gamma", "ss_network_dim": "8"})
    (models / "broken.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    scan([models], db)
    with connect(db, read_only=True) as con:
        for q in QUERIES:
            for count in (False, True):
                fast = list_models(con, q, count=count)
                view = list_models(con, ListQuery(**{**vars(q), "where": "TRUE"}), count=count)  # the view itself
                assert (fast.rows, fast.total) == (view.rows, view.total), q
        assert [r["name"] for r in list_models(con, ListQuery(q='"café')).rows] == ["beta.safetensors"]
        assert [r["name"] for r in list_models(con, ListQuery(q="zqx")).rows] == ["Alpha_LoRA.safetensors"]
        assert list_models(con, ListQuery(limit=2, offset=50), count=True).total == 4


def test_listing_of_a_declared_model_equals_the_view_after_versions_rechecks_and_reanalysis(
    tmp_path: Path, db: Path
) -> None:
    """A writer's refresh leaves out the view's join of ``model_declarations`` (at most one row per model:
    its current version with its latest check); with several versions and checks of a model's declaration
    the view still has one row for it, and the refreshed listing equals the view."""
    from tests.test_declare_cli import consistent, lora
    from tests.test_declare_cli import run as declare_cli

    _, sha = lora(tmp_path)
    scan([tmp_path / "models"], db)
    for n, count in enumerate((15, 30)):
        doc = consistent(sha)
        doc["datasets"][0]["itemCount"] = count
        f = tmp_path / f"v{n}.json"
        f.write_text(json.dumps(doc))
        assert declare_cli("declare", sha[:12], str(f))[0] == 0
    assert declare_cli("declare", "--recheck", sha[:12])[0] == 0
    assert declare_cli("declare", "--recheck", sha[:12])[0] == 0
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM declarations").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM declaration_checks").fetchone() == (4,)
        assert con.execute("SELECT count(*) FROM models WHERE sha256 = ?", [sha]).fetchone() == (1,)
    agree(db)
    scan([tmp_path / "models"], db, rehash=True)  # the model's listing row is computed again
    assert len(agree(db)) == 1
