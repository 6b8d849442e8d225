"""resolve_ref through the lookup indexes of migration 0200: every kind of reference, the ambiguity rules,
latest-sighting semantics for paths and names, and that DuckDB really uses the indexes (the index
expressions in the migration and in read.py must match exactly)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from registry.errors import AmbiguousRef, NotFound
from registry.store.db import connect
from registry.store.read import KEY_LEN, NAME_EXPR, Candidate, _key_expr, resolve_ref
from registry.store.write import BlobRecord, FileWrite, SightingRecord, TensorRows, write_batch


def _hex(seed: str, n: int = 64) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _blob(sha: str, autov3: str, blake3: str, autov1: str, crc32: str) -> BlobRecord:
    return BlobRecord(
        sha256=sha, size=100, hashes={"sha256": sha, "autov1": autov1, "autov2": sha[:10], "autov3": autov3,
                                      "blake3": blake3, "crc32": crc32, "git_sha1": None},
        format="safetensors", header_len=8, n_tensors=0, metadata_json=None, analyzers="", tensors=TensorRows(),
        findings=[], rows={},
    )


def _write(db: Path, sha: str, path: str, **kw: str) -> None:
    blob = _blob(sha, kw.get("autov3", _hex("a3" + sha)), kw.get("blake3", _hex("b3" + sha)),
                 kw.get("autov1", _hex("v1" + sha, 8)), kw.get("crc32", _hex("c" + sha, 8)))
    with connect(db) as con:
        write_batch(con, [FileWrite(SightingRecord(sha, "h", path, 100, 1, 1, 1), blob)])


# two blobs whose SHA-256 share the first 9 hex digits (the indexed key and one more)
SHA_A = "abcdef012" + _hex("A", 55)
SHA_B = "abcdef012" + _hex("B", 55)
SHA_C = _hex("C")


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    db = tmp_path / "r.duckdb"
    _write(db, SHA_A, "/m/loras/a.safetensors", autov3="1234567890ab" + _hex("x", 52), crc32="0d4a1185")
    _write(db, SHA_B, "/m/loras/b.safetensors", blake3="fedcba9876" + _hex("y", 54), autov1="5a5a5a5a")
    _write(db, SHA_C, "/m/other/a.safetensors")
    return db


def test_hash_prefixes_of_every_kind(reg: Path) -> None:
    with connect(reg, read_only=True) as con:
        assert resolve_ref(con, SHA_A) == SHA_A
        assert resolve_ref(con, SHA_A[:10]) == SHA_A  # AutoV2
        assert resolve_ref(con, SHA_B[:10].upper()) == SHA_B
        assert resolve_ref(con, "sha256:" + SHA_C[:12]) == SHA_C
        assert resolve_ref(con, "1234567890ab") == SHA_A  # AutoV3, 12 hex as A1111 prints it
        assert resolve_ref(con, "0x1234567890ab") == SHA_A
        assert resolve_ref(con, "autov3:12345678") == SHA_A  # exactly the key length
        assert resolve_ref(con, "blake3:fedcba9876") == SHA_B
        assert resolve_ref(con, "fedcba98") == SHA_B
        assert resolve_ref(con, "5a5a5a5a") == SHA_B  # AutoV1
        assert resolve_ref(con, "0d4a1185") == SHA_A  # CRC32, zlib order
        assert resolve_ref(con, "85114A0D") == SHA_A  # CRC32, Civitai order
        assert resolve_ref(con, SHA_C[:5]) == SHA_C  # shorter than the key: a range scan


def test_shared_key_is_told_apart_by_the_rest_of_the_prefix(reg: Path) -> None:
    with connect(reg, read_only=True) as con:
        for ref in ("abcdef01", "abcdef012", "abcd"):
            with pytest.raises(AmbiguousRef) as err:
                resolve_ref(con, ref)
            assert sorted(c.sha256 for c in err.value.candidates if isinstance(c, Candidate)) == sorted([SHA_A, SHA_B])
        assert resolve_ref(con, SHA_A[:10]) == SHA_A
        with pytest.raises(NotFound):
            resolve_ref(con, "abcdef0129999")


def test_paths_and_file_names_follow_the_latest_sighting(reg: Path) -> None:
    with connect(reg, read_only=True) as con:
        assert resolve_ref(con, "/m/loras/b.safetensors") == SHA_B
        assert resolve_ref(con, "b.safetensors") == SHA_B
        with pytest.raises(AmbiguousRef):  # a.safetensors is in two folders
            resolve_ref(con, "a.safetensors")
        with pytest.raises(NotFound):
            resolve_ref(con, "safetensors")  # not a whole file name
    # new content at the same path: the name and the path now mean the new blob only
    new = _hex("B2")
    _write(reg, new, "/m/loras/b.safetensors")
    with connect(reg, read_only=True) as con:
        assert resolve_ref(con, "b.safetensors") == new
        assert resolve_ref(con, "/m/loras/b.safetensors") == new
        assert resolve_ref(con, SHA_B[:10]) == SHA_B  # the old record stays reachable by hash


def test_the_lookups_use_the_indexes(reg: Path) -> None:
    with connect(reg, read_only=True) as con:
        row = con.execute("SELECT sha256, autov3, blake3 FROM blobs WHERE sha256 = ?", [SHA_A]).fetchone()
        assert row is not None
        plans = [
            con.execute(f"EXPLAIN ANALYZE SELECT sha256 FROM blobs WHERE {_key_expr(col)} = ?", [val[:KEY_LEN]])
            .fetchall()[0][1]
            for col, val in zip(("sha256", "autov3", "blake3"), row, strict=True)
        ]
        plans.append(
            con.execute(f"EXPLAIN ANALYZE SELECT path FROM sightings WHERE {NAME_EXPR} = ?", ["a.safetensors"])
            .fetchall()[0][1]
        )
        plans.append(
            con.execute("EXPLAIN ANALYZE SELECT path FROM sightings WHERE path IN (?, ?)", ["/m/loras/b.safetensors", "y"]).fetchall()[0][1]
        )
        plans.append(
            con.execute("EXPLAIN ANALYZE SELECT sha256 FROM blobs WHERE autov1 IN (?, ?)", ["5a5a5a5a", "x"])
            .fetchall()[0][1]
        )
    for plan in plans:
        assert "Index Scan" in plan, plan
